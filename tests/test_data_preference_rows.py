"""Preference rows: the schemas, the implicit prompt of HH-RLHF, conversions between formats, and bad rows."""

import os
import time

import numpy as np
import pytest

from alignjax import losses
from alignjax.data import (
    FORMATS,
    DataError,
    PreferenceExample,
    binarize,
    build_data,
    preference_example,
    sft_data_config,
    to_format,
)

from conftest import SHARED_DATA, write_jsonl

HH = os.path.join(SHARED_DATA, "hh_rlhf_harmless_base_test.jsonl.gz")
# The rows of HH-RLHF harmless-base test that cannot be split into a prompt and two responses, by reason.
HH_UNSPLITTABLE = {
    "empty_response": [87, 517, 926, 1104],  # the chosen dialogue's last assistant turn is empty
    "prompts_differ": [1255, 1689, 1951, 1953, 2037],  # chosen and rejected differ before their last turn
}
USER = {"role": "user", "content": "upper: ab"}


def _config(path, **overrides):
    fields = {"source": "json", "path": str(path), "format": "pairs", "eval_fraction": 0.0, "batch_size": 2}
    return sft_data_config(**{**fields, **overrides})


def test_pairwise_strings_and_conversational_rows_agree():
    plain = preference_example({"prompt": "upper: ab", "chosen": "AB", "rejected": "ab"}, "row 1")
    chat = preference_example(
        {
            "prompt": [USER],
            "chosen": [{"role": "assistant", "content": "AB"}],
            "rejected": [{"role": "assistant", "content": "ab"}],
        },
        "row 2",
    )
    assert plain == chat == PreferenceExample([USER], ("AB", "ab"), (1.0, 0.0))


def test_implicit_prompt_is_split_from_hh_dialogues_and_message_lists():
    shared = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: upper: ab"
    row = {"chosen": shared + "\n\nAssistant: AB", "rejected": shared + "\n\nAssistant: ab"}
    prompt = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "upper: ab"},
    ]
    expected = PreferenceExample(prompt, ("AB", "ab"), (1.0, 0.0))
    assert preference_example(row, "row") == expected
    messages = {
        "chosen": prompt + [{"role": "assistant", "content": "AB"}],
        "rejected": prompt + [{"role": "assistant", "content": "ab"}],
    }
    assert preference_example(messages, "row") == expected


@pytest.mark.parametrize(
    "row, reason, message",
    [
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "identical_responses", "are the same response"),
        ({"prompt": "p", "chosen": " ", "rejected": "b"}, "empty_response", "field 'chosen' is an empty response"),
        (
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},
            "prompts_differ",
            "differ before their last assistant turn",
        ),
        (
            {"chosen": "\n\nHuman: a", "rejected": "\n\nHuman: a\n\nAssistant: d"},
            "no_final_response",
            "field 'chosen' ends with user, not an assistant turn",
        ),
        (
            {"chosen": "Human: a Assistant: b", "rejected": "Human: a Assistant: c"},
            "malformed_dialogue",
            "is not a dialogue of",
        ),
        ({"prompt": "p", "responses": ["a", "b"], "scores": [1]}, "length_mismatch", "'responses' has 2 items"),
        ({"prompt": "p", "responses": ["a", "b"], "scores": [2, 2]}, "tied_scores", "all 2 scores are 2"),
        ({"prompt": "p", "completion": "a", "label": 1}, "wrong_type", "field 'label' must be true"),
        ({"prompt": "p", "chosen": "a"}, "missing_field", "field 'rejected' is missing"),
    ],
)
def test_bad_rows_name_the_row_field_and_reason(row, reason, message):
    with pytest.raises(DataError, match=f"^rows.jsonl line 7: .*{message}") as caught:
        preference_example(row, "rows.jsonl line 7")
    assert caught.value.reason == reason


def _ranked(scores):
    return PreferenceExample([USER], tuple(f"r{i}" for i in range(len(scores))), tuple(scores))


def test_binarize_modes():
    ranked = _ranked([2.0, 5.0, 1.0, 3.0])
    assert binarize(ranked, "best_vs_worst", None) == [PreferenceExample([USER], ("r1", "r2"), (1.0, 0.0))]
    all_pairs = [e.responses for e in binarize(_ranked([2.0, 5.0, 2.0]), "all_pairs", None)]
    assert all_pairs == [("r1", "r0"), ("r1", "r2")]  # the tie r0/r2 makes no pair
    drawn = {binarize(ranked, "best_vs_random", np.random.default_rng(s))[0].responses for s in range(40)}
    assert drawn == {("r1", "r0"), ("r1", "r2"), ("r1", "r3")}  # never the best against itself


def test_to_format_is_seeded_per_row_and_deterministic():
    rows = [(f"row {i}", _ranked([float(j == i % 4) + j / 10 for j in range(4)])) for i in range(30)]
    first = to_format(rows, "pairs", "best_vs_random", seed=3)
    assert first == to_format(rows, "pairs", "best_vs_random", seed=3)
    assert first != to_format(rows, "pairs", "best_vs_random", seed=4)
    # A row's draw depends on the seed and its origin only, not on the rows skipped or held out before it.
    assert to_format(rows[5:6], "pairs", "best_vs_random", seed=3) == [first[5]]
    assert len(to_format(rows, "pairs", "all_pairs", seed=3)) == 30 * 6
    assert to_format(rows, "ranked", "best_vs_random", seed=3) == rows


def test_every_registered_loss_trains_on_a_data_format():
    # The data package owns the format table; the losses layer names formats without importing it.
    assert {losses.objective(name).format for name in losses.names()} <= set(FORMATS)


def test_pairs_become_unpaired_examples_and_unpaired_rows_cannot_become_pairs():
    pair = ("row 1", PreferenceExample([USER], ("AB", "ab"), (1.0, 0.0)))
    unpaired = to_format([pair], "unpaired", "best_vs_random", seed=0)
    assert [(e.responses, e.label) for _, e in unpaired] == [(("AB",), True), (("ab",), False)]
    kto_row = ("row 2", preference_example({"prompt": "p", "completion": "a", "label": False}, "row 2"))
    with pytest.raises(DataError, match="row 2: an unpaired row .* cannot make the pairs examples"):
        to_format([kto_row], "pairs", "best_vs_random", seed=0)


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"prompt": "upper: ab", "chosen": "AB", "rejected": "AB"}, "identical_responses"),
        ({"prompt": "upper: ab", "chosen": "AB", "rejected": ""}, "empty_response"),
    ],
)
def test_bad_input_raises_or_is_counted_as_on_bad_row_says(tmp_path, tokenizer, row, reason):
    good = {"prompt": "upper: cd", "chosen": "CD", "rejected": "cd"}
    path = write_jsonl(tmp_path / "pairs.jsonl", [good, row, good])
    cfg = _config(path, seq_len=32)
    with pytest.raises(DataError, match=r"pairs.jsonl line 2: ") as caught:
        build_data(cfg, tokenizer)
    assert caught.value.reason == reason
    cfg.on_bad_row = "skip"
    _, _, _, report = build_data(cfg, tokenizer)
    assert report.skipped == {reason: 1} and report.train_examples == 2
    assert report.skip_messages[reason][0].startswith(f"{path} line 2: ")


def test_a_prompt_that_fills_seq_len_stops_the_run_whatever_on_bad_row_says(tmp_path, tokenizer):
    good = {"prompt": "upper: cd", "chosen": "CD", "rejected": "cd"}
    path = write_jsonl(
        tmp_path / "pairs.jsonl", [good, {"prompt": "upper: " + "x" * 40, "chosen": "A", "rejected": "a"}]
    )
    for on_bad_row in ("error", "skip"):
        with pytest.raises(DataError) as caught:
            build_data(_config(path, seq_len=32, on_bad_row=on_bad_row), tokenizer)
        assert str(caught.value).endswith(
            f"loses more than data.max_lost_fraction=0.0 allows: 1 of 2 examples lose their whole response and 0 "
            f"more are cut\n  e.g. {path} line 2: the prompt is 50 tokens, which leaves no room for a response within "
            "data.seq_len=32\n  fix: raise data.seq_len (the longest example has 52 tokens), or accept the loss with "
            "data.max_lost_fraction=0.5"
        )
    report = build_data(_config(path, seq_len=32, max_lost_fraction=0.5), tokenizer)[3]
    assert report.skipped == {"prompt_too_long": 1} and report.train_examples == 1


def test_long_responses_are_cut_to_seq_len_and_counted(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "upper: ab", "chosen": "A" * 30, "rejected": "ab"}])
    with pytest.raises(DataError, match=r"0 of 1 examples lose their whole response and 1 more are cut\n  e\.g\. "):
        build_data(_config(path, seq_len=24, batch_size=1), tokenizer)
    train_iter, _, _, report = build_data(_config(path, seq_len=24, batch_size=1, max_lost_fraction=1.0), tokenizer)
    (example,) = train_iter.examples
    assert report.truncated == 1 and len(example.prompt_P) + len(example.responses[0]) == 24
    assert tokenizer.decode(example.responses[1]) == "ab<|end|>"


def test_plain_template_writes_the_prompt_then_each_response(tmp_path, tokenizer):
    row = {"prompt": "upper: ab:", "chosen": " AB", "rejected": " ab"}
    path = write_jsonl(tmp_path / "pairs.jsonl", [row])
    (example,) = build_data(_config(path, batch_size=1, template="plain"), tokenizer)[0].examples
    assert tokenizer.decode(example.prompt_P) == "upper: ab:"
    assert [tokenizer.decode(r) for r in example.responses] == [" AB<|end|>", " ab<|end|>"]
    tags = {"control_good": " good:", "control_bad": " bad:"}
    conditional = build_data(_config(path, batch_size=1, template="plain", format="conditional", **tags), tokenizer)
    rows = [tokenizer.decode(e.tokens_L) for e in conditional[0].examples]
    assert rows == ["upper: ab: good: AB<|end|>", "upper: ab: bad: ab<|end|>"]
    hh = {
        "chosen": "\n\nHuman: hi\n\nAssistant: yo\n\nHuman: a\n\nAssistant: b",
        "rejected": "\n\nHuman: hi\n\nAssistant: yo\n\nHuman: a\n\nAssistant: c",
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [row, hh])
    with pytest.raises(DataError, match=r"hh.jsonl line 2: .*not roles \['user', 'assistant', 'user'\]"):
        build_data(_config(path, batch_size=1, template="plain"), tokenizer)


def _hh_failures(report):
    return {
        reason: sorted(int(message.split(" line ")[1].split(":")[0]) for message in messages)
        for reason, messages in report.skip_messages.items()
    }


def _parse_hh(tokenizer, seq_len, max_lost_fraction=0.0):
    if not os.path.exists(HH):
        pytest.skip(f"HH-RLHF test data not found at {HH} (only present in the project workspace)")
    cfg = _config(HH, on_bad_row="skip", seq_len=seq_len, batch_size=8, max_lost_fraction=max_lost_fraction)
    start = time.perf_counter()
    train_iter, _, _, report = build_data(cfg, tokenizer)
    return train_iter, report, time.perf_counter() - start


def test_hh_rlhf_rows_parse_or_are_reported_with_their_reason(tokenizer):
    train_iter, report, seconds = _parse_hh(tokenizer, seq_len=4096, max_lost_fraction=0.01)  # one is cut
    assert report.examples_read == 2312
    assert _hh_failures(report) == HH_UNSPLITTABLE
    assert report.train_examples == 2312 - 9
    batch = next(train_iter)
    assert batch["tokens"].shape == (8, 2, 4096) and (batch["valid_BK"] == 1).all()
    print(f"HH-RLHF, character-level tokenizer: {report.train_examples} pairs parsed and tokenised in {seconds:.1f}s")


def test_hh_rlhf_with_the_stories260k_tokenizer(stories260k_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stories260k_dir)
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}Assistant: {{ m['content'] }}"
        "{{ eos_token }}{% else %}Human: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    # 512 tokens of a 512-piece vocabulary cut a third of the dialogues (15% lose the response): counted, accepted.
    _, report, seconds = _parse_hh(tokenizer, seq_len=512, max_lost_fraction=1.0)
    failures = _hh_failures(report)
    assert {k: failures[k] for k in HH_UNSPLITTABLE} == HH_UNSPLITTABLE
    assert set(failures) == {*HH_UNSPLITTABLE, "prompt_too_long"}
    assert report.train_examples + sum(report.skipped.values()) == 2312
    print(f"HH-RLHF, stories260K BPE tokenizer: {report.train_examples} pairs in {seconds:.1f}s; {report.skipped}")
