"""Packing tokenised examples into fixed-length rows, and laying a row's examples out as arrays.

Fixed shapes let the jitted train step compile once. Packing puts several short examples into one row of
`seq_len` tokens so less compute goes to padding. Segment ids (1..k within a row, 0 for padding) and per-segment
positions keep packed examples independent: the model attends only within a segment (same non-zero segment and
causal), and RoPE sees every example start at position 0, so a packed example's loss equals its unpacked loss.

Row arrays, all [R, seq_len]:
    tokens       int32    token ids; the pad id after the last segment
    positions    int32    0, 1, ... within each segment; 0 on padding
    segment_ids  int32    1..k for the k examples of the row; 0 on padding
    targets      int32    the next token of the same segment; 0 at each segment's last token and on padding
    loss_mask    float32  1.0 where `targets` is an assistant token, else 0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignjax.data.tokenization import TokenizedExample


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
    return dict(tokens=tokens, positions=positions, segment_ids=segment_ids, targets=targets, loss_mask=loss_mask)
