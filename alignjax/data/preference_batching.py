"""Batches of K responses per prompt, [B, K, L]: what sequence-level losses (`alignjax.losses.Responses`) take.

Each response is a row of its own, the prompt followed by the response and right-padded to L = seq_len, laid out
by `packing.layout_rows` (so positions, segment ids, targets and the loss mask follow the SFT conventions: the mask
covers exactly the targets that are response tokens). Rows are never packed: a sequence-level loss sums each
response's log-probs, and K responses of one prompt side by side keep that sum a plain reduction over L.

Batch arrays (`layout_preferences`):
    tokens, positions, segment_ids, targets  int32    [B, K, L]
    loss_mask                                float32  [B, K, L]
    valid_BK                                 float32  [B, K]  1 for a response that exists; 0 for the padding of a
                                                              ranked list shorter than K and for filler rows
    scores_BK                                float32  [B, K]  higher is better: [1, 0] for pairs; unpaired: the
                                                              label for response 0, 0 for the KL completion
    labels_B                                 float32  [B]     unpaired: 1 if response 0 is desirable; else 0
    example_index                            int32    [B]     the row's index into the split's examples; -1 for
                                                              filler rows (eval batches), whose valid_BK are 0

Unpaired (KTO) batches have K = 2: response 0 is the row's completion and response 1 the completion of the real
row half a batch away ((b + n // 2) mod n, TRL's shifted-completion trick) under this row's prompt, whose
log-ratio only enters KTO's KL estimate. Half a batch rather than the next row: pairs become a desirable and an
undesirable example side by side, and in ordered (eval) batches the next row would answer the same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import functools

import numpy as np

from alignjax.data.batching import Layout, eval_batches
from alignjax.data.packing import layout_rows
from alignjax.data.preference_tokenization import PreferenceTokens, join
from alignjax.data.tokenization import TokenizedExample


def layout_preferences(
    rows: Sequence[Sequence[int]],
    examples: Sequence[PreferenceTokens],
    seq_len: int,
    pad_id: int,
    *,
    k: int,
    kl_completions: bool = False,
) -> dict[str, np.ndarray]:
    """Lays out one example per row as the arrays of a [B, K, L] batch (see the module docstring).

    Has `packing.layout_rows`' signature once `k` and `kl_completions` are bound, so that `batching.BatchIterator`
    and `batching.eval_batches` serve these batches too.

    Args:
        rows: per batch row, [index into `examples`], or [] for a filler row.
        examples: tokenised examples whose prompt + each response fits in `seq_len`.
        seq_len: L.
        pad_id: the token id of padding.
        k: responses per row, at least the longest list of `examples`; shorter lists get invalid responses.
        kl_completions: unpaired (KTO) batches: response 1 of each row is the completion of the real row half a
            batch away.

    Returns:
        The batch's arrays.
    """
    real = [b for b, row in enumerate(rows) if row]
    pieces: list[TokenizedExample] = []
    flat_rows: list[list[int]] = [[] for _ in range(len(rows) * k)]
    valid_BK = np.zeros((len(rows), k), dtype=np.float32)
    scores_BK = np.zeros((len(rows), k), dtype=np.float32)
    labels_B = np.zeros(len(rows), dtype=np.float32)
    index_B = np.full(len(rows), -1, dtype=np.int32)
    for n, b in enumerate(real):
        (index,) = rows[b]
        example = examples[index]
        responses = list(example.responses)
        if kl_completions:
            shift = max(1, len(real) // 2)
            responses.append(examples[rows[real[(n + shift) % len(real)]][0]].responses[0])
        if len(responses) > k:
            raise ValueError(f"example {index} has {len(responses)} responses; the batch holds k={k}")
        for j, response_R in enumerate(responses):
            flat_rows[b * k + j] = [len(pieces)]
            pieces.append(join(example.prompt_P, response_R, seq_len))
        valid_BK[b, : len(responses)] = 1.0
        scores_BK[b, : len(example.scores)] = example.scores
        labels_B[b] = float(bool(example.label))
        index_B[b] = index
    batch = {
        key: value.reshape(len(rows), k, seq_len)
        for key, value in layout_rows(flat_rows, pieces, seq_len, pad_id).items()
    }
    batch.update(valid_BK=valid_BK, scores_BK=scores_BK, labels_B=labels_B, example_index=index_B)
    return batch


def preference_layout(examples: Sequence[PreferenceTokens], k: int | None = None) -> Layout:
    """The layout of batches of `examples`: K responses per row (KL completions for unpaired examples).

    Args:
        examples: all the examples whose batches must share a shape (train and eval).
        k: responses per row; None takes the longest list, plus one for unpaired examples' KL completions.

    Returns:
        `layout_preferences` with `k` and `kl_completions` bound, for `BatchIterator` and `eval_batches`.
    """
    k = responses_per_example(examples) if k is None else k
    return functools.partial(layout_preferences, k=k, kl_completions=_unpaired(examples))


def responses_per_example(examples: Sequence[PreferenceTokens]) -> int:
    """K for batches of `examples`: the longest list, plus one for unpaired examples' KL completions."""
    return max(len(e.responses) for e in examples) + _unpaired(examples)


def _unpaired(examples: Sequence[PreferenceTokens]) -> bool:
    return any(e.label is not None for e in examples)


def preference_eval_batches(
    examples: Sequence[PreferenceTokens], *, seq_len: int, batch_size: int, pad_id: int = 0, k: int | None = None
) -> list[dict[str, np.ndarray]]:
    """Fixed-shape batches over `examples` in order, the last one filled with filler rows (`batching.eval_batches`).

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
