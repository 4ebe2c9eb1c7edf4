"""Batches of fixed shape: an endless, resumable training stream and a fixed list of eval batches.

Training data are an endless stream of rows. Epoch e visits every example once, in the order of a permutation
drawn from (seed, e); with packing, the permuted examples are first-fit packed into rows, otherwise each example is
a row of its own. A batch takes the next `batch_size` rows and runs on across epoch boundaries, so no row is ever
dropped and every epoch holds every example exactly once. The stream's whole state is (epoch, row within the
epoch): `state()` returns it and `restore()` jumps back to it by recomputing that epoch's rows from the seed,
so a resumed run sees exactly the batches an uninterrupted one would have.

What a row holds and how it becomes arrays is the layout's business (`packing`): by default `layout_rows`, whose
arrays are all [B, L] (B = batch_size, L = seq_len), over SFT examples; preference data pass a
`preference_layout`, [B, K, L], over preference examples (never packed). Eval batches are the same layouts over a
split's examples in order, with `example_index`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from alignjax.data.errors import DataError
from alignjax.data.packing import Layout, first_fit, layout_rows, preference_layout
from alignjax.data.tokenization import PreferenceTokens

_STATE_KEYS = ("epoch", "position", "seed", "fingerprint")


def _fingerprint(examples: Sequence[Any], seq_len: int, pack: bool) -> str:
    """A short digest of everything that decides the rows, so a state cannot be restored onto other data.

    Examples are dataclasses (`TokenizedExample`, `PreferenceTokens`); every field goes into the digest.
    """
    digest = hashlib.sha256(f"{seq_len}/{pack}/{len(examples)}".encode())
    for example in examples:
        for field in dataclasses.fields(example):
            _digest_value(digest, getattr(example, field.name))
    return digest.hexdigest()[:16]


def _digest_value(digest, value: Any) -> None:
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    elif isinstance(value, (tuple, list)):
        digest.update(f"[{len(value)}]".encode())
        for item in value:
            _digest_value(digest, item)
    else:
        digest.update(repr(value).encode())


class BatchIterator:
    """An endless, deterministic, resumable iterator of training batches (dicts of numpy arrays).

    Attributes:
        examples: the tokenised training examples, each fitting a row of `seq_len` tokens.
        seq_len: tokens per row.
        batch_size: rows per batch (the global batch).
        pack: whether rows hold several examples (first-fit by `len(example)`).
        seed: the seed of the per-epoch shuffles.
        pad_id: token id written on padding.
        layout: turns a batch's rows into its arrays (`packing`); `layout_rows` (SFT) unless given. It must be decided
            by the examples, which the state's fingerprint covers.
        length_bucket: 0 gives every batch `seq_len` columns; b > 0 cuts each batch to its longest row rounded up
            to a multiple of b (`trim_to_bucket`).
    """

    def __init__(
        self,
        examples: Sequence[Any],
        *,
        seq_len: int,
        batch_size: int,
        pack: bool,
        seed: int,
        pad_id: int = 0,
        layout: Layout = layout_rows,
        length_bucket: int = 0,
    ):
        if not examples:
            raise DataError("no training examples to batch")
        self.examples = examples
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.pack = pack
        self.seed = seed
        self.pad_id = pad_id
        self.layout = layout
        self.length_bucket = length_bucket
        self._fingerprint = _fingerprint(examples, seq_len, pack)
        self._lengths = np.array([len(e) for e in examples]) if pack else None
        self._epoch = 0
        self._position = 0
        self._rows_epoch, self._rows = -1, []

    def epoch_rows(self, epoch: int) -> list[list[int]]:
        """The rows of `epoch` in order, each a list of indices into `examples` (one index unless packing)."""
        if epoch != self._rows_epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))
            if self.pack:
                rows = first_fit(self._lengths[order].tolist(), self.seq_len)
                self._rows = [[int(order[i]) for i in row] for row in rows]
            else:
                self._rows = [[int(i)] for i in order]
            self._rows_epoch = epoch
        return self._rows

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch_rows: list[list[int]] = []
        while len(batch_rows) < self.batch_size:
            rows = self.epoch_rows(self._epoch)
            taken = rows[self._position : self._position + self.batch_size - len(batch_rows)]
            batch_rows.extend(taken)
            self._position += len(taken)
            if self._position == len(rows):
                self._epoch, self._position = self._epoch + 1, 0
        return trim_to_bucket(self.layout(batch_rows, self.examples, self.seq_len, self.pad_id), self.length_bucket)

    def state(self) -> dict:
        """Where the stream stands, as a JSON-serialisable dict: the epoch and the next row of its order.

        The seed and a fingerprint of the data ride along so that `restore` refuses a state from other data.
        """
        return {"epoch": self._epoch, "position": self._position, "seed": self.seed, "fingerprint": self._fingerprint}

    def restore(self, state: dict) -> None:
        """Continues from `state` (from `state()`): the next batches equal those that followed it originally.

        Args:
            state: a dict from `state()`, possibly after a JSON round trip. The batch size may differ from the one
                it was saved with; the rows continue where they stopped.
        """
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise DataError(f"data iterator state {state!r} lacks {missing}; expected the dict from state()")
        if state["seed"] != self.seed or state["fingerprint"] != self._fingerprint:
            raise DataError(
                f"data iterator state (seed={state['seed']}, fingerprint={state['fingerprint']}) was saved for other "
                f"data or settings than these (seed={self.seed}, fingerprint={self._fingerprint}); the examples, "
                "seq_len, pack and seed must be the same to resume"
            )
        epoch, position = int(state["epoch"]), int(state["position"])
        if not (epoch >= 0 and 0 <= position < len(self.epoch_rows(epoch))):
            raise DataError(f"data iterator state {state!r} points outside epoch {epoch}")
        self._epoch, self._position = epoch, position


def trim_to_bucket(batch: dict[str, np.ndarray], bucket: int) -> dict[str, np.ndarray]:
    """`batch` cut to its longest row rounded up to a multiple of `bucket` tokens (unchanged for bucket 0).

    Why: rows of preference pairs and unpacked SFT examples vary in length, and a batch padded to `seq_len` spends
    most of its compute on padding when its rows are short. Cutting to a bucket keeps the shapes to a few
    (seq_len / bucket, each compiled once) while computing on little more than the longest row. Only padding
    columns are cut: their segment ids are 0 and they carry no loss.
    """
    if not bucket:
        return batch
    seq_len = batch["segment_ids"].shape[-1]
    real_L = np.any(batch["segment_ids"].reshape(-1, seq_len) > 0, axis=0)
    longest = int(np.nonzero(real_L)[0].max()) + 1 if real_L.any() else 1
    keep = min(seq_len, -(-longest // bucket) * bucket)
    return {k: v[..., :keep] if v.ndim >= 2 and v.shape[-1] == seq_len else v for k, v in batch.items()}


def eval_batches(
    examples: Sequence[Any],
    *,
    seq_len: int,
    batch_size: int,
    pad_id: int = 0,
    layout: Layout = layout_rows,
    length_bucket: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Fixed-shape, unpacked batches over `examples` in order; the last batch is filled with padding rows.

    Args:
        examples: tokenised eval examples, each fitting a row of `seq_len` tokens.
        seq_len: tokens per row.
        batch_size: rows per batch.
        pad_id: token id written on padding.
        layout: as for `BatchIterator`.
        length_bucket: as for `BatchIterator`.

    Returns:
        Batches of the layout's arrays plus `example_index` int32 [batch_size]: the row's index into `examples`,
        -1 for filler rows (whose segment ids are all 0).
    """
    batches = []
    for start in range(0, len(examples), batch_size):
        indices = list(range(start, min(start + batch_size, len(examples))))
        filler = batch_size - len(indices)
        batch = layout([[i] for i in indices] + [[]] * filler, examples, seq_len, pad_id)
        batch["example_index"] = np.array(indices + [-1] * filler, dtype=np.int32)
        batches.append(trim_to_bucket(batch, length_bucket))
    return batches


def preference_eval_batches(
    examples: Sequence[PreferenceTokens], *, seq_len: int, batch_size: int, pad_id: int = 0, k: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Fixed-shape batches over `examples` in order, the last one filled with filler rows (`eval_batches`).

    Args:
        examples: tokenised examples, e.g. a `BatchIterator`'s, to go over once in order.
        seq_len: L.
        batch_size: B.
        pad_id: the token id of padding.
        k: K; None takes it from `examples` (see `preference_layout`). Pass the training batches' K (or use
            `eval_batches(..., layout=train_iter.layout)`) when other examples' lists may be longer.
    """
    layout = preference_layout(examples, k)
    return eval_batches(examples, seq_len=seq_len, batch_size=batch_size, pad_id=pad_id, layout=layout)
