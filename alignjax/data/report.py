"""What the data pipeline did with the rows it read, for the log of a run.

A run that silently dropped a third of its data, or spent most of its compute on padding, looks healthy in its
loss curve; the report makes both visible at the start of training.
"""

from __future__ import annotations

import dataclasses

_MESSAGES_KEPT = 100  # skip messages kept per reason: enough to find the bad rows, bounded for huge datasets


@dataclasses.dataclass
class DataReport:
    """Counts from `build_sft_data` and `build_preference_data`.

    Attributes:
        source: the source and path read, e.g. "json:/data/train.jsonl".
        format: the example format built (`data.format`).
        examples_read: rows read (training split, plus a builtin's held-out split), bad ones included.
        train_examples: examples in the training stream (for preference formats: pairs, ranked lists or unpaired
            examples, which binarising or splitting pairs can make more numerous than rows).
        eval_examples: examples in the eval batches.
        skipped: rows left out, by reason (see `errors`); `response_truncated` counts SFT examples that cutting
            to `seq_len` left without a response token, `prompt_too_long` preference examples whose prompt filled
            it. Problems found after a preference row became several examples (binarised, or split into unpaired
            ones) count once per example.
        skip_messages: per reason, the errors of the first skipped rows, which name them.
        truncated: kept examples that were longer than `seq_len` and were cut (for preference formats: had a
            response cut).
        first_truncated: the first cut example's origin and length, for messages.
        longest_example: tokens of the longest example before cutting (for preference formats: its prompt and its
            longest response).
        responses_per_example: K of the [B, K, L] batches of preference formats; 0 for SFT batches.
        packed_rows: rows in one epoch of training (equal to `train_examples` without packing).
        padding_fraction: share of the training rows' token slots that are padding (epoch 0).
        train_tokens: tokens in one epoch of training.
        target_tokens: tokens in one epoch that carry loss (assistant tokens after a row's first token).
        batches_per_epoch: packed_rows / batch_size.
    """

    source: str
    format: str = "sft"
    examples_read: int = 0
    train_examples: int = 0
    eval_examples: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    skip_messages: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    truncated: int = 0
    first_truncated: str = ""
    longest_example: int = 0
    responses_per_example: int = 0
    packed_rows: int = 0
    padding_fraction: float = 0.0
    train_tokens: int = 0
    target_tokens: int = 0
    batches_per_epoch: float = 0.0

    def count_epoch(
        self,
        *,
        train_examples: int,
        eval_examples: int,
        rows: int,
        row_slots: int,
        train_tokens: int,
        target_tokens: int,
        batch_size: int,
        responses_per_example: int = 0,
    ) -> None:
        """Fills in the counts of the examples built and of one training epoch (every batch format alike).

        Args:
            train_examples: examples in the training stream.
            eval_examples: examples in the eval batches.
            rows: rows in one epoch of training (packed rows, or one per example).
            row_slots: token slots per row: L for SFT rows, K * L for [B, K, L] batches.
            train_tokens: tokens in one epoch of training.
            target_tokens: tokens in one epoch that carry loss.
            batch_size: rows per batch.
            responses_per_example: K of [B, K, L] batches; 0 for SFT batches.
        """
        self.train_examples, self.eval_examples = train_examples, eval_examples
        self.responses_per_example = responses_per_example
        self.packed_rows = rows
        self.train_tokens, self.target_tokens = train_tokens, target_tokens
        self.padding_fraction = 1.0 - train_tokens / (rows * row_slots)
        self.batches_per_epoch = rows / batch_size

    def count_skip(self, reason: str, message: str | None = None) -> None:
        """Counts a skipped row under `reason`, keeping `message` (its error, naming the row) among the first."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        messages = self.skip_messages.setdefault(reason, [])
        if message is not None and len(messages) < _MESSAGES_KEPT:
            messages.append(message)

    def count_truncated(self, message: str) -> None:
        """Counts a kept example that was cut to seq_len; `message` names it and is kept when it is the first."""
        self.truncated += 1
        self.first_truncated = self.first_truncated or message

    def __str__(self) -> str:
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(self.skipped.items())) or "none"
        responses = f", {self.responses_per_example} responses each" if self.responses_per_example else ""
        first_skips = [f"    e.g. {messages[0]}" for _, messages in sorted(self.skip_messages.items()) if messages]
        return "\n".join(
            [
                (
                    f"data {self.source} ({self.format}): read {self.examples_read} rows -> "
                    f"{self.train_examples} train, {self.eval_examples} eval examples{responses}"
                ),
                (
                    f"  skipped: {skipped}; truncated to seq_len: {self.truncated} "
                    f"(the longest example has {self.longest_example} tokens)"
                ),
                *first_skips,
                (
                    f"  train epoch: {self.packed_rows} rows ({self.batches_per_epoch:.1f} batches), "
                    f"{self.train_tokens} tokens, {self.target_tokens} with loss, "
                    f"{100 * self.padding_fraction:.1f}% padding"
                ),
            ]
        )
