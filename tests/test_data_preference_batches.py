"""Preference batches: exact [B, K, L] layout, ranked padding, KTO's KL completions, conditional-token examples,
and a training stream that resumes exactly."""

import json

import numpy as np
import pytest

from alignjax.config_errors import ConfigError
from alignjax.data import (
    BatchIterator,
    PreferenceTokens,
    build_data,
    conditional_prompt,
    encode_chat_prompt,
    layout_preferences,
    preference_eval_batches,
    sft_data_config,
)

from conftest import write_jsonl

PAIRS = [{"prompt": f"upper: {w}", "chosen": w.upper(), "rejected": w} for w in ("ab", "cde", "fg", "hij", "kl")]


def _config(path, **overrides):
    fields = {"source": "json", "path": str(path), "eval_fraction": 0.0, "batch_size": 2, "seq_len": 24}
    return sft_data_config(**{**fields, **overrides})


def _ids(*values):
    return np.array(values, dtype=np.int32)


def test_layout_of_a_hand_made_pair_marks_exactly_the_response_targets():
    example = PreferenceTokens(_ids(5, 6, 7), (_ids(8, 9), _ids(10)), (1.0, 0.0))
    batch = layout_preferences([[0], []], [example], seq_len=6, pad_id=0, k=2)
    np.testing.assert_array_equal(batch["tokens"][0], [[5, 6, 7, 8, 9, 0], [5, 6, 7, 10, 0, 0]])
    np.testing.assert_array_equal(batch["positions"][0], [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 0, 0]])
    np.testing.assert_array_equal(batch["segment_ids"][0], [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(batch["targets"][0], [[6, 7, 8, 9, 0, 0], [6, 7, 10, 0, 0, 0]])
    # loss_mask[t] = 1 exactly where targets[t] is a response token.
    np.testing.assert_array_equal(batch["loss_mask"][0], [[0, 0, 1, 1, 0, 0], [0, 0, 1, 0, 0, 0]])
    # Row 1 is filler: all padding, no valid response.
    assert not batch["segment_ids"][1].any() and not batch["loss_mask"][1].any()
    np.testing.assert_array_equal(batch["valid_BK"], [[1, 1], [0, 0]])
    np.testing.assert_array_equal(batch["scores_BK"], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(batch["labels_B"], [0, 0])
    np.testing.assert_array_equal(batch["example_index"], [0, -1])
    dtypes = {k: v.dtype for k, v in batch.items()}
    assert dtypes["tokens"] == np.int32 and dtypes["loss_mask"] == dtypes["valid_BK"] == np.float32


def test_pipeline_pairs_decode_to_prompt_then_chosen_and_rejected(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:1])
    batch = next(build_data(_config(path, format="pairs", batch_size=1), tokenizer)[0])
    for k, response in enumerate(["AB<|end|>", "ab<|end|>"]):
        mask = batch["loss_mask"][0, k] == 1
        assert tokenizer.decode(batch["targets"][0, k][mask]) == response
        assert tokenizer.decode(batch["tokens"][0, k][: np.argmax(mask) + 1]) == "<|bos|><|user|>upper: ab<|assistant|>"


def test_ranked_lists_are_padded_to_the_longest_with_invalid_responses(tmp_path, tokenizer):
    rows = [
        {"prompt": "upper: ab", "responses": ["AB", "ab", "Ab"], "scores": [3, 1, 2]},
        {"prompt": "upper: cd", "responses": ["CD", "cd"], "scores": [0.5, 0.25]},
    ]
    path = write_jsonl(tmp_path / "ranked.jsonl", rows)
    _, evals, _, report = build_data(_config(path, format="ranked", eval_fraction=0.5, batch_size=3), tokenizer)
    train_iter = build_data(_config(path, format="ranked", batch_size=2), tokenizer)[0]
    batch = next(train_iter)
    assert report.responses_per_example == 3 and batch["tokens"].shape == (2, 3, 24)
    by_index = {int(i): b for b, i in enumerate(batch["example_index"])}
    np.testing.assert_array_equal(batch["valid_BK"][by_index[0]], [1, 1, 1])
    np.testing.assert_array_equal(batch["scores_BK"][by_index[0]], [3, 1, 2])
    np.testing.assert_array_equal(batch["valid_BK"][by_index[1]], [1, 1, 0])
    assert not batch["loss_mask"][by_index[1], 2].any()
    (eval_batch,) = evals
    assert eval_batch["tokens"].shape == (3, 3, 24) and list(eval_batch["example_index"]) == [0, -1, -1]


def test_unpaired_kl_completion_is_half_a_batch_away_under_this_prompt(tmp_path, tokenizer):
    rows = [{"prompt": f"upper: {w}", "completion": w.upper(), "label": i % 2 == 0} for i, w in enumerate("abcd")]
    path = write_jsonl(tmp_path / "kto.jsonl", rows)
    train_iter = build_data(_config(path, format="unpaired", batch_size=4), tokenizer)[0]
    batch = next(train_iter)
    order = [int(i) for i in batch["example_index"]]
    for b, index in enumerate(order):
        prompt, completion = rows[index]["prompt"], rows[index]["completion"]
        other = rows[order[(b + 2) % 4]]["completion"]
        for k, response in enumerate([completion, other]):
            mask = batch["loss_mask"][b, k] == 1
            assert tokenizer.decode(batch["targets"][b, k][mask]) == response + "<|end|>"
            assert tokenizer.decode(batch["tokens"][b, k][: np.argmax(mask) + 1]).endswith(prompt + "<|assistant|>")
        assert batch["labels_B"][b] == float(rows[index]["label"])
    np.testing.assert_array_equal(batch["valid_BK"], np.ones((4, 2)))


def test_pairs_make_unpaired_examples_for_kto(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:2])
    train_iter, _, _, report = build_data(_config(path, format="unpaired", batch_size=4), tokenizer)
    assert report.train_examples == 4 and sorted(e.label for e in train_iter.examples) == [False, False, True, True]


def test_conditional_examples_give_the_control_tag_and_learn_the_response(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS[:1])
    cfg = _config(path, format="conditional", control_good="good:", control_bad="bad:", batch_size=2, seq_len=32)
    train_iter, _, _, report = build_data(cfg, tokenizer)
    assert report.train_examples == 2 and report.responses_per_example == 0
    texts = set()
    for example in train_iter.examples:
        whole = tokenizer.decode(example.tokens_L)
        learned = tokenizer.decode(example.tokens_L[example.assistant_L])
        texts.add((whole, learned))
    assert texts == {
        ("<|bos|><|user|>upper: ab<|assistant|>good:AB<|end|>", "AB<|end|>"),
        ("<|bos|><|user|>upper: ab<|assistant|>bad:ab<|end|>", "ab<|end|>"),
    }
    batch = next(train_iter)
    assert batch["tokens"].shape == (2, 32)  # SFT batches
    for row in range(2):  # the tag is never a target under the loss mask
        assert "good" not in tokenizer.decode(batch["targets"][row][batch["loss_mask"][row] == 1])
        assert "bad" not in tokenizer.decode(batch["targets"][row][batch["loss_mask"][row] == 1])
    # At inference the prompt ends with the good tag, tokenised as in training.
    prompt = conditional_prompt([{"role": "user", "content": "upper: ab"}], tokenizer, "good:")
    good = next(e for e in train_iter.examples if "good" in tokenizer.decode(e.tokens_L))
    assert prompt == good.tokens_L[~good.assistant_L].tolist()
    assert conditional_prompt([{"role": "user", "content": "x"}], tokenizer, "") == encode_chat_prompt(
        [{"role": "user", "content": "x"}], tokenizer, "x"
    )


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.mark.parametrize("format", ["pairs", "unpaired"])
def test_state_and_restore_resume_the_same_batches(tmp_path, tokenizer, format):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    cfg = _config(path, format=format, batch_size=3)
    uninterrupted = build_data(cfg, tokenizer)[0]
    expected = [next(uninterrupted) for _ in range(8)]
    first = build_data(cfg, tokenizer)[0]
    _assert_batches_equal([next(first) for _ in range(3)], expected[:3])
    saved = json.loads(json.dumps(first.state()))
    resumed = build_data(cfg, tokenizer)[0]
    resumed.restore(saved)
    _assert_batches_equal([next(resumed) for _ in range(5)], expected[3:])


def test_preference_eval_batches_go_over_the_training_examples_in_order(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    train_iter = build_data(_config(path, format="pairs", batch_size=2), tokenizer)[0]
    assert isinstance(train_iter, BatchIterator)
    batches = preference_eval_batches(train_iter.examples, seq_len=24, batch_size=2, pad_id=train_iter.pad_id)
    assert [b["example_index"].tolist() for b in batches] == [[0, 1], [2, 3], [4, -1]]
    assert batches[-1]["valid_BK"][1].sum() == 0 and not batches[-1]["segment_ids"][1].any()


def test_preference_formats_refuse_packing(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    with pytest.raises(ConfigError, match=r"data.pack=True with data.format='pairs': .* never packed"):
        build_data(_config(path, format="pairs", pack=True), tokenizer)
