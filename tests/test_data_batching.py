"""Batches: fixed shapes, deterministic by seed, exact resumption, and packing that keeps examples intact.

Examples here are synthetic: example i is i + 1 repeated, so every token of a batch tells which example it came
from, and its assistant tokens are its second half.
"""

import json

import numpy as np
import pytest

from alignjax.data import BatchIterator, DataError, TokenizedExample, eval_batches
from alignjax.data.packing import first_fit

SEQ_LEN = 16


def _examples(count, seed=0):
    lengths = np.random.default_rng(seed).integers(2, SEQ_LEN + 1, size=count)
    return [TokenizedExample(np.full(n, i + 1, dtype=np.int32), np.arange(n) >= n // 2) for i, n in enumerate(lengths)]


def _iterator(examples, pack, seed=0, batch_size=4):
    return BatchIterator(examples, seq_len=SEQ_LEN, batch_size=batch_size, pack=pack, seed=seed, pad_id=0)


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def _segments(batch):
    """(row, segment id, start, end) of every example in a batch."""
    found = []
    for r, ids in enumerate(batch["segment_ids"]):
        for segment in np.unique(ids[ids > 0]):
            where = np.flatnonzero(ids == segment)
            found.append((r, int(segment), int(where[0]), int(where[-1]) + 1))
    return found


@pytest.mark.parametrize("pack", [False, True])
def test_batches_have_fixed_shapes_and_dtypes(pack):
    batch = next(_iterator(_examples(20), pack))
    dtypes = dict(tokens=np.int32, positions=np.int32, segment_ids=np.int32, targets=np.int32, loss_mask=np.float32)
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {k: ((4, SEQ_LEN), d) for k, d in dtypes.items()}


@pytest.mark.parametrize("pack", [False, True])
def test_same_seed_same_batches(pack):
    examples = _examples(30)
    first = _take(_iterator(examples, pack), 12)
    _assert_batches_equal(first, _take(_iterator(examples, pack), 12))
    other = _take(_iterator(examples, pack, seed=1), 12)
    assert any((a["tokens"] != b["tokens"]).any() for a, b in zip(first, other))


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("taken", [0, 3, 11])  # 11 batches of 4 rows cross an epoch boundary of 30 examples
def test_restore_resumes_exactly(pack, taken):
    examples = _examples(30)
    original = _iterator(examples, pack)
    _take(original, taken)
    saved = json.loads(json.dumps(original.state()))
    resumed = _iterator(examples, pack)
    resumed.restore(saved)
    _assert_batches_equal(_take(resumed, 10), _take(original, 10))


def test_restore_continues_with_another_batch_size():
    examples = _examples(30)
    original = _iterator(examples, pack=False, batch_size=2)
    _take(original, 3)
    resumed = _iterator(examples, pack=False, batch_size=6)
    resumed.restore(original.state())
    two = _take(original, 3)
    np.testing.assert_array_equal(next(resumed)["tokens"], np.concatenate([b["tokens"] for b in two]))


def test_restore_refuses_a_state_from_other_data():
    state = _iterator(_examples(30), pack=True).state()
    with pytest.raises(DataError, match="was saved for other data or settings"):
        _iterator(_examples(30, seed=1), pack=True).restore(state)
    with pytest.raises(DataError, match="was saved for other data or settings"):
        _iterator(_examples(30), pack=False).restore(state)
    with pytest.raises(DataError, match=r"lacks \['fingerprint'\]"):
        _iterator(_examples(30), pack=True).restore({"epoch": 0, "position": 0, "seed": 0})


@pytest.mark.parametrize("pack", [False, True])
def test_every_example_once_per_epoch(pack):
    examples = _examples(50)
    iterator = _iterator(examples, pack)
    for epoch in range(3):
        rows = iterator.epoch_rows(epoch)
        assert sorted(i for row in rows for i in row) == list(range(50))
        assert all(sum(len(examples[i]) for i in row) <= SEQ_LEN for row in rows)
    assert iterator.epoch_rows(0) != iterator.epoch_rows(1)
    # The stream of batches walks the epochs' rows in order, across epoch boundaries.
    rows = iterator.epoch_rows(0) + iterator.epoch_rows(1)
    stream = [sorted(set(r[r > 0] - 1)) for b in _take(iterator, len(rows) // 4) for r in b["tokens"]]
    assert stream == [sorted(row) for row in rows[: len(stream)]]


def test_packed_rows_are_consistent():
    examples = _examples(60)
    batches = _take(_iterator(examples, pack=True, batch_size=8), 6)
    assert max(len(set(_segments(b))) for b in batches) > 8  # some rows hold several examples
    for batch in batches:
        for r, _, start, end in _segments(batch):
            tokens = batch["tokens"][r, start:end]
            example = examples[tokens[0] - 1]
            np.testing.assert_array_equal(tokens, example.tokens_L)  # whole: never split across rows
            np.testing.assert_array_equal(batch["positions"][r, start:end], np.arange(end - start))
            np.testing.assert_array_equal(batch["targets"][r, start : end - 1], example.tokens_L[1:])
            np.testing.assert_array_equal(batch["loss_mask"][r, start : end - 1], example.assistant_L[1:])
            assert batch["targets"][r, end - 1] == 0 and batch["loss_mask"][r, end - 1] == 0
        for r, ids in enumerate(batch["segment_ids"]):
            used = ids[ids > 0]
            assert list(np.unique(used)) == list(range(1, len(np.unique(used)) + 1))  # 1..k in order
            assert (np.diff(ids[: len(used)]) >= 0).all() and not ids[len(used) :].any()  # padding only at the end
            pad = ids == 0
            assert not batch["tokens"][r, pad].any() and not batch["loss_mask"][r, pad].any()


def test_unpacked_rows_hold_one_example_padded_on_the_right():
    batch = next(_iterator(_examples(10), pack=False))
    for r, ids in enumerate(batch["segment_ids"]):
        n = int(ids.sum())
        assert set(ids[:n]) == {1} and not ids[n:].any() and not batch["targets"][r, n - 1 :].any()


def test_first_fit_places_each_item_in_the_first_row_with_room():
    assert first_fit([5, 5, 3, 2, 7, 1], 8) == [[0, 2], [1, 3, 5], [4]]
    lengths = np.random.default_rng(0).integers(1, 9, size=200)
    naive, free = [], []
    for i, n in enumerate(lengths):
        row = next((r for r, room in enumerate(free) if room >= n), len(free))
        if row == len(free):
            naive.append([])
            free.append(8)
        naive[row].append(i)
        free[row] -= n
    assert first_fit(lengths, 8) == naive


def test_eval_batches_cover_examples_in_order_with_filler_rows():
    examples = _examples(10)
    batches = eval_batches(examples, seq_len=SEQ_LEN, batch_size=4, pad_id=0)
    assert len(batches) == 3 and all(b["tokens"].shape == (4, SEQ_LEN) for b in batches)
    assert np.concatenate([b["example_index"] for b in batches]).tolist() == list(range(10)) + [-1, -1]
    last = batches[-1]
    assert not last["segment_ids"][2:].any() and not last["loss_mask"][2:].any()
    for batch in batches:
        for r, index in enumerate(batch["example_index"]):
            if index >= 0:
                n = len(examples[index])
                np.testing.assert_array_equal(batch["tokens"][r, :n], examples[index].tokens_L)
