"""How a batch's rows become arrays: SFT rows, packed or not, [B, L], and K responses per prompt, [B, K, L].

Fixed shapes let the jitted train step compile once. Packing (`first_fit`) puts several short SFT examples into
one row of `seq_len` tokens so less compute goes to padding. Segment ids (1..k within a row, 0 for padding) and
per-segment positions keep packed examples independent: the model attends only within a segment (same non-zero
segment and causal), and RoPE sees every example start at position 0, so a packed example's loss equals its
unpacked loss.

SFT row arrays (`layout_rows`), all [B, L] with L = seq_len:
    tokens       int32    token ids; the pad id after the last segment
    positions    int32    0, 1, ... within each segment; 0 on padding
    segment_ids  int32    1..k for the k examples of the row; 0 on padding
    targets      int32    the next token of the same segment; 0 at each segment's last token and on padding
    loss_mask    float32  1.0 where `targets` is an assistant token, else 0.0

Preference batches (`layout_preferences`), what sequence-level losses (`alignjax.losses.Responses`) take: each
response is a row of its own, the prompt followed by the response and right-padded to L, laid out by `layout_rows`
(so the mask covers exactly the targets that are response tokens). Rows are never packed: a sequence-level loss
sums each response's log-probs, and K responses of one prompt side by side keep that sum a plain reduction over L.

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

A layout has the signature `layout(rows, examples, seq_len, pad_id) -> arrays`, rows being lists of indices into
`examples` ([] for a filler row), so that `batching` serves every kind of batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from alignjax.data.tokenization import PreferenceTokens, TokenizedExample
from alignjax.data.truncation import join

# layout(rows, examples, seq_len, pad_id) -> batch arrays; rows are lists of indices into examples, [] for filler.
Layout = Callable[[Sequence[Sequence[int]], Sequence[Any], int, int], dict[str, np.ndarray]]


def first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Greedy first-fit: each item, in order, goes into the first row with room left for it.

    A max-tree over the rows' free space finds that row in O(log n), so a million examples pack in seconds.

    Args:
        lengths: the items' sizes, each at most `capacity`.
        capacity: the size of a row.

    Returns:
        Rows as lists of item indices, rows in the order they were opened, items in the order they were placed.
    """
    size = 1
    while size < max(len(lengths), 1):
        size *= 2
    # free[size + r] is row r's free space (all rows start empty); free[node] is the max over node's subtree.
    free = [capacity] * (2 * size)
    rows: list[list[int]] = []
    for item, length in enumerate(lengths):
        if not 0 < length <= capacity:
            raise ValueError(f"item {item} has length {length}; expected 1..{capacity}")
        node = 1
        while node < size:  # descend to the leftmost row with room; empty rows follow all opened ones
            node = 2 * node if free[2 * node] >= length else 2 * node + 1
        row = node - size
        if row == len(rows):
            rows.append([])
        rows[row].append(item)
        free[node] -= length
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return rows


def layout_rows(
    rows: Sequence[Sequence[int]], examples: Sequence[TokenizedExample], seq_len: int, pad_id: int
) -> dict[str, np.ndarray]:
    """Lays out rows of examples as the arrays of a batch (see the module docstring).

    Args:
        rows: per row, the indices into `examples` of its segments, in order; an empty row is all padding.
        examples: tokenised examples, each at most `seq_len` tokens.
        seq_len: the row length.
        pad_id: the token id of padding.

    Returns:
        {"tokens", "positions", "segment_ids", "targets", "loss_mask"}, each [len(rows), seq_len].
    """
    shape = (len(rows), seq_len)
    tokens = np.full(shape, pad_id, dtype=np.int32)
    positions = np.zeros(shape, dtype=np.int32)
    segment_ids = np.zeros(shape, dtype=np.int32)
    targets = np.zeros(shape, dtype=np.int32)
    loss_mask = np.zeros(shape, dtype=np.float32)
    for r, row in enumerate(rows):
        start = 0
        for segment, index in enumerate(row, start=1):
            example = examples[index]
            end = start + len(example)
            if end > seq_len:
                raise ValueError(f"row {r} holds {end} tokens, more than seq_len={seq_len}")
            tokens[r, start:end] = example.tokens_L
            positions[r, start:end] = np.arange(len(example))
            segment_ids[r, start:end] = segment
            targets[r, start : end - 1] = example.tokens_L[1:]
            loss_mask[r, start : end - 1] = example.assistant_L[1:]
            start = end
    return {
        "tokens": tokens,
        "positions": positions,
        "segment_ids": segment_ids,
        "targets": targets,
        "loss_mask": loss_mask,
    }


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

    Has `layout_rows`' signature once `k` and `kl_completions` are bound, so that `batching.BatchIterator` and
    `batching.eval_batches` serve these batches too.

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
