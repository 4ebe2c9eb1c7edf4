"""What the data pipeline did with the rows it read, for the log of a run.

A run that silently dropped a third of its data, or spent most of its compute on padding, looks healthy in its
loss curve; the report makes both visible at the start of training.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class DataReport:
    """Counts from `build_sft_data`.

    Attributes:
        source: the source and path read, e.g. "json:/data/train.jsonl".
        examples_read: rows read (training split, plus a builtin's held-out split), bad ones included.
        train_examples: examples in the training stream.
        eval_examples: examples in the eval batches.
        skipped: rows left out, by reason (see `errors`); `response_truncated` counts examples whose whole
            response lay beyond `seq_len`.
        truncated: kept examples that were longer than `seq_len` and lost their end.
        packed_rows: rows in one epoch of training (equal to `train_examples` without packing).
        padding_fraction: share of the training rows' token slots that are padding (epoch 0).
        train_tokens: tokens in one epoch of training.
        target_tokens: tokens in one epoch that carry loss (assistant tokens after a row's first token).
        batches_per_epoch: packed_rows / batch_size.
    """

    source: str
    examples_read: int = 0
    train_examples: int = 0
    eval_examples: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    truncated: int = 0
    packed_rows: int = 0
    padding_fraction: float = 0.0
    train_tokens: int = 0
    target_tokens: int = 0
    batches_per_epoch: float = 0.0

    def count_skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def __str__(self) -> str:
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items())) or "none"
        return "\n".join(
            [
                f"data {self.source}: read {self.examples_read} rows -> {self.train_examples} train, "
                f"{self.eval_examples} eval examples",
                f"  skipped: {skipped}; truncated to seq_len: {self.truncated}",
                f"  train epoch: {self.packed_rows} rows ({self.batches_per_epoch:.1f} batches), "
                f"{self.train_tokens} tokens, {self.target_tokens} with loss, "
                f"{100 * self.padding_fraction:.1f}% padding",
            ]
        )
