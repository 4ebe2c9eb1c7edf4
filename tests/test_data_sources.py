"""Data sources (JSON, JSON Lines, Parquet, globs) and the errors that bad files, rows and configs produce."""

import json

import ml_collections
import pandas as pd
import pytest

from alignjax.config_errors import ConfigError
from alignjax.data import DataError, build_data, build_sft_data, sft_data_config

GOOD = [{"prompt": f"upper: {w}", "completion": w.upper()} for w in ("abc", "de", "fgh", "ijkl", "mn", "opq")]


def _config(path, **overrides):
    return sft_data_config(**{"source": "json", "path": str(path), "eval_fraction": 0.0, "batch_size": 2, **overrides})


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _prompts(train_iter, tokenizer):
    return sorted(tokenizer.decode(e.tokens_L[~e.assistant_L], skip_special_tokens=True) for e in train_iter.examples)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_file_sources_read_every_row(tmp_path, tokenizer, suffix):
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(GOOD))
    elif suffix == ".jsonl":
        _write_lines(path, [json.dumps(row) for row in GOOD])
    else:
        pd.DataFrame(GOOD).to_parquet(path)
    source = "parquet" if suffix == ".parquet" else "json"
    train_iter, evals, _, report = build_sft_data(_config(path, source=source), tokenizer)
    assert (report.examples_read, report.train_examples, report.eval_examples, evals) == (6, 6, 0, [])
    assert _prompts(train_iter, tokenizer) == sorted(row["prompt"] for row in GOOD)


def test_glob_and_directory_read_all_files_in_order(tmp_path, tokenizer):
    _write_lines(tmp_path / "a.jsonl", [json.dumps(row) for row in GOOD[:4]])
    _write_lines(tmp_path / "b.jsonl", [json.dumps(row) for row in GOOD[4:]])
    for path in (tmp_path / "*.jsonl", tmp_path):
        assert build_sft_data(_config(path, max_examples=5), tokenizer)[3].examples_read == 5


def test_messages_rows_and_extra_columns(tmp_path, tokenizer):
    row = {
        "id": 3,
        "prompt": "ignored: messages win",
        "messages": [{"role": "user", "content": "sort: cab"}, {"role": "assistant", "content": "abc"}],
    }
    path = _write_lines(tmp_path / "d.jsonl", [json.dumps(row)])
    (example,) = build_sft_data(_config(path), tokenizer)[0].examples
    assert tokenizer.decode(example.tokens_L) == "<|bos|><|user|>sort: cab<|assistant|>abc<|end|>"


def test_held_out_examples_are_chosen_by_seed(tmp_path, tokenizer):
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(40)]
    path = _write_lines(tmp_path / "d.jsonl", [json.dumps(row) for row in rows])

    def split(seed):
        train_iter, evals, _, report = build_sft_data(_config(path, eval_fraction=0.25, seed=seed), tokenizer)
        held_out = {tokenizer.decode(t[m == 1]) for b in evals for t, m in zip(b["targets"], b["loss_mask"])} - {""}
        trained = {tokenizer.decode(e.tokens_L[e.assistant_L]) for e in train_iter.examples}
        assert (report.train_examples, report.eval_examples, len(held_out)) == (30, 10, 10)
        assert not held_out & trained
        return held_out

    assert split(0) == split(0) != split(1)


# Each bad row: its JSON Lines text, the error it raises (file and line are checked separately) and its reason.
BAD_ROWS = {
    "invalid_json": ('{"prompt": "a", "completion": ', r"not valid JSON \(Expecting value at column 31\)"),
    "missing_field": (
        '{"prompt": "a"}',
        r"field 'completion' is missing; an SFT row needs `messages` .* or `prompt` and `completion` \(strings, or",
    ),
    "wrong_type": ('{"prompt": "a", "completion": 5}', r"field 'completion' must be a string or a one-message"),
    "empty_response": ('{"prompt": "a", "completion": "  "}', r"field 'completion' is an empty response; there is no"),
    "unknown_role": (
        '{"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}',
        r"messages\[1\].role='tool' is not a known role; expected one of \('system', 'user', 'assistant'\)",
    ),
}


@pytest.mark.parametrize("reason", sorted(BAD_ROWS))
def test_bad_row_error_names_file_line_and_field(tmp_path, tokenizer, reason):
    line, message = BAD_ROWS[reason]
    path = _write_lines(tmp_path / "train.jsonl", [json.dumps(GOOD[0]), "", line])
    with pytest.raises(DataError, match=rf"train\.jsonl line 3: {message}") as raised:
        build_sft_data(_config(path), tokenizer)
    assert raised.value.reason == reason


def test_skip_counts_bad_rows_by_reason(tmp_path, tokenizer):
    lines = [json.dumps(row) for row in GOOD] + [line for line, _ in BAD_ROWS.values()] + [BAD_ROWS["wrong_type"][0]]
    path = _write_lines(tmp_path / "train.jsonl", lines)
    report = build_sft_data(_config(path, on_bad_row="skip"), tokenizer)[3]
    assert report.skipped == {reason: 2 if reason == "wrong_type" else 1 for reason in BAD_ROWS}
    assert (report.examples_read, report.train_examples) == (12, 6)
    assert "skipped: empty_response 1, invalid_json 1, missing_field 1, unknown_role 1, wrong_type 2" in str(report)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"messages": "hi"}, r"field 'messages' must be a list of \{'role', 'content'\} dicts, got str"),
        ({"messages": [{"role": "user"}]}, r"field 'messages\[0\].content' is missing; expected a string"),
        (
            {"messages": [{"role": "user", "content": 1.5}]},
            r"field 'messages\[0\].content' must be a string, got float \(1.5\)",
        ),
        ({"messages": [{"role": "user", "content": "a"}]}, r"'messages' has no assistant message"),
        ({"messages": [{"role": "assistant", "content": "a"}]}, r"messages\[0\] is an assistant message"),
        ([1, 2], r"expected an object with `messages`"),
    ],
)
def test_malformed_messages(tmp_path, tokenizer, row, message):
    path = _write_lines(tmp_path / "train.jsonl", [json.dumps(row)])
    with pytest.raises(DataError, match=rf"train\.jsonl line 1: {message}"):
        build_sft_data(_config(path), tokenizer)


def test_parquet_errors_name_the_row(tmp_path, tokenizer):
    path = tmp_path / "train.parquet"
    pd.DataFrame([GOOD[0], {"prompt": "b", "completion": None}]).to_parquet(path)
    with pytest.raises(DataError, match=r"train\.parquet row 2: field 'completion' is missing"):
        build_sft_data(_config(path, source="parquet"), tokenizer)


def test_all_rows_bad_is_an_error(tmp_path, tokenizer):
    path = _write_lines(tmp_path / "train.jsonl", ['{"prompt": "a"}'])
    with pytest.raises(DataError, match=r"no training examples are left(.|\n)*missing_field 1"):
        build_sft_data(_config(path, on_bad_row="skip"), tokenizer)


@pytest.mark.parametrize(
    "path, source, message",
    [
        ("missing.jsonl", "json", r"data.path='.*missing.jsonl': no such file or directory"),
        ("*.parquet", "parquet", r"data.path='.*\*.parquet': no file matches this pattern"),
        ("notes.txt", "json", r"notes.txt: data.source='json' reads .json/.json.gz/.jsonl/.jsonl.gz files"),
    ],
)
def test_missing_or_unreadable_files(tmp_path, tokenizer, path, source, message):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=message):
        build_sft_data(_config(tmp_path / path, source=source), tokenizer)


def test_hf_source_reads_a_split_of_a_dataset_directory(tmp_path, tokenizer):
    # A local directory takes the same `datasets.load_dataset(path, split=...)` path as a hub id, without network.
    _write_lines(tmp_path / "train.jsonl", [json.dumps(row) for row in GOOD[:4]])
    _write_lines(tmp_path / "test.jsonl", [json.dumps(row) for row in GOOD[4:]])
    assert build_sft_data(_config(tmp_path, source="hf", split="test"), tokenizer)[3].examples_read == 2
    with pytest.raises(DataError, match=r"data.path='.*', data.split='dev': datasets.load_dataset could not load it"):
        build_sft_data(_config(tmp_path, source="hf", split="dev"), tokenizer)


def test_unreadable_json_file_names_the_file(tmp_path, tokenizer):
    path = tmp_path / "train.json"
    path.write_text("[{not json")
    with pytest.raises(DataError, match=r"train.json: the datasets 'json' loader could not read it \(write JSON Lines"):
        build_sft_data(_config(path), tokenizer)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("source", "csv", r"data.source='csv' is invalid; expected one of \['builtin', 'json', 'parquet', 'hf'\]"),
        ("eval_fraction", 1.0, r"data.eval_fraction=1.0 is invalid; expected a number in \[0, 1\)"),
        ("seq_len", 1, r"data.seq_len=1 is invalid; expected an integer >= 2"),
        ("batch_size", 0, r"data.batch_size=0 is invalid; expected an integer >= 1"),
        ("pack", "yes", r"data.pack='yes' is invalid; expected True or False"),
        ("on_bad_row", "ignore", r"data.on_bad_row='ignore' is invalid; expected one of \['error', 'skip'\]"),
        ("max_examples", -1, r"data.max_examples=-1 is invalid"),
        ("max_lost_fraction", 1.5, r"data.max_lost_fraction=1.5 is invalid; expected a number in \[0, 1\]"),
        ("truncation_side", "middle", r"data.truncation_side='middle' is invalid; expected one of \['right', 'left'\]"),
        ("template", "jinja", r"data.template='jinja' is invalid; expected one of \['chat', 'plain'\]"),
    ],
)
def test_config_values_are_validated(field, value, message):
    cfg = ml_collections.ConfigDict({**sft_data_config().to_dict(), field: value})
    with pytest.raises(ConfigError, match=message):
        build_sft_data(cfg)


def test_left_truncation_is_for_sft_examples_only():
    cfg = sft_data_config(format="pairs", truncation_side="left")
    with pytest.raises(ConfigError, match=r"data.truncation_side='left' with data.format='pairs': preference examples"):
        build_data(cfg)


def test_config_needs_every_field():
    cfg = sft_data_config()
    del cfg["seed"]
    with pytest.raises(ConfigError, match=r"data.seed is missing; expected an integer >= 0"):
        build_sft_data(cfg)
