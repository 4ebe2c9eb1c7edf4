"""Tokenisation with the chat template or as plain prompt and completion: the loss mask covers exactly the
assistant's tokens; truncation is counted, and a run that would lose examples to it stops with the fixes."""

import sys
import types

import numpy as np
import pytest

from alignjax.data import (
    DataError,
    build_sft_data,
    encode_chat,
    get_template,
    hold_out,
    load_builtin_tokenizer,
    pad_token_id,
    pipeline,
    sft_data_config,
)

from conftest import write_jsonl


@pytest.fixture
def tokenizer():
    return load_builtin_tokenizer("toy_instructions")


def _assistant_text(example, tokenizer):
    return tokenizer.decode(example.tokens_L[example.assistant_L])


def test_mask_covers_the_response_and_end_of_turn(tokenizer):
    chat = [{"role": "user", "content": "upper: abc"}, {"role": "assistant", "content": "ABC"}]
    example = encode_chat(chat, tokenizer, "row")
    assert tokenizer.decode(example.tokens_L) == "<|bos|><|user|>upper: abc<|assistant|>ABC<|end|>"
    assert _assistant_text(example, tokenizer) == "ABC<|end|>"
    assert example.assistant_L[-4:].all() and not example.assistant_L[:-4].any()


def test_mask_covers_every_assistant_turn(tokenizer):
    chat = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    example = encode_chat(chat, tokenizer, "row")
    assert _assistant_text(example, tokenizer) == "a1<|end|>a2<|end|>"


def test_batch_targets_under_the_loss_mask_are_the_completion(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "reverse: abc", "completion": "cba"}])
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=24, batch_size=1)
    batch = next(build_sft_data(cfg, tokenizer)[0])
    mask = batch["loss_mask"][0] == 1
    assert tokenizer.decode(batch["targets"][0][mask]) == "cba<|end|>"
    # The prompt, including the <|assistant|> marker, is the input that predicts the first masked target.
    assert tokenizer.decode(batch["tokens"][0][: np.argmax(mask) + 1]) == "<|bos|><|user|>reverse: abc<|assistant|>"


def test_truncation_keeps_the_prompt_start_and_drops_examples_without_response(tmp_path, tokenizer):
    rows = [
        {"prompt": "a", "completion": "b"},  # 6 tokens: fits
        {"prompt": "a", "completion": "bcdefghij"},  # 14 tokens: cut, part of the response remains
        {"prompt": "abcdefghijkl", "completion": "b"},  # 17 tokens: the response starts beyond seq_len
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=10, batch_size=2, max_lost_fraction=0.7)
    train_iter, _, _, report = build_sft_data(cfg, tokenizer)
    assert report.truncated == 1 and report.skipped == {"response_truncated": 1} and report.train_examples == 2
    cut = [e for e in train_iter.examples if len(e) == 10]
    assert len(cut) == 1 and tokenizer.decode(cut[0].tokens_L) == "<|bos|><|user|>a<|assistant|>bcdefg"
    assert report.longest_example == 17
    assert report.first_truncated == f"{path} line 2: 14 tokens, cut to data.seq_len=10"


def _instruction_rows(count):
    """Rows like a real instruction file's: the response starts beyond 32 tokens, except in every 44th row."""
    return [
        {"prompt": "short" if i % 44 == 0 else f"task {i:03}: " + "explain it " * 4, "completion": "answer"}
        for i in range(count)
    ]


def test_losing_responses_to_seq_len_stops_the_run_with_counts_an_example_and_fixes(tmp_path, tokenizer):
    # A user's finding: 171 of 175 rows lost their whole response at the toy recipe's seq_len=32, and the run
    # trained on 4 examples, skipped evaluation and exited 0.
    path = write_jsonl(tmp_path / "instructions.jsonl", _instruction_rows(175))
    for on_bad_row in ("error", "skip"):  # a long row is not a bad row: skipping bad rows accepts no loss
        cfg = sft_data_config(source="json", path=path, seq_len=32, on_bad_row=on_bad_row)
        with pytest.raises(DataError) as caught:
            build_sft_data(cfg, tokenizer)
        assert str(caught.value) == (
            f"data json:{path}: cutting examples to data.seq_len=32 loses more than data.max_lost_fraction=0.0 allows: "
            f"171 of 175 examples lose their whole response and 0 more are cut\n"
            f"  e.g. {path} line 2: 64 tokens, and its response starts at token 57, beyond data.seq_len=32\n"
            "  fix: raise data.seq_len (the longest example has 64 tokens), set data.truncation_side='left' to keep "
            "responses and cut prompts, or accept the loss with data.max_lost_fraction=0.98"
        )
    cfg = sft_data_config(source="json", path=path, seq_len=32, max_lost_fraction=0.98)  # the user accepts it
    report = build_sft_data(cfg, tokenizer)[3]
    assert report.skipped == {"response_truncated": 171} and report.train_examples + report.eval_examples == 4


def test_left_truncation_cuts_the_prompt_and_keeps_the_response(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "abcdefghijkl", "completion": "xyz"}])
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=10, batch_size=1)
    with pytest.raises(DataError, match=r"line 1: 19 tokens, and its response starts at token 15, beyond"):
        build_sft_data(cfg, tokenizer)
    cfg.update(truncation_side="left", max_lost_fraction=1.0)
    (example,) = build_sft_data(cfg, tokenizer)[0].examples
    assert tokenizer.decode(example.tokens_L) == "hijkl<|assistant|>xyz<|end|>"
    assert _assistant_text(example, tokenizer) == "xyz<|end|>"


def test_an_eval_split_emptied_by_truncation_is_an_error(tmp_path, tokenizer):
    rows = [{"prompt": "a", "completion": "b"} for _ in range(10)]
    (held_out_index,) = hold_out(list(range(10)), 0.1, 0)[1]  # the row that eval_fraction=0.1 holds out
    rows[held_out_index] = {"prompt": "a" * 20, "completion": "b"}
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.1, seq_len=10, max_lost_fraction=0.1)
    with pytest.raises(DataError, match=r"none of the 1 held-out examples is left after tokenising and cutting to "):
        build_sft_data(cfg, tokenizer)


def test_padding_takes_the_pad_token_else_eos_else_zero(tokenizer):
    assert pad_token_id(tokenizer) == tokenizer.pad_token_id == 0
    assert pad_token_id(types.SimpleNamespace(pad_token_id=None, eos_token_id=7)) == 7
    assert pad_token_id(types.SimpleNamespace(pad_token_id=None, eos_token_id=None)) == 0


def test_tokenizer_without_chat_template_is_an_error(tmp_path, tokenizer):
    tokenizer.chat_template = None
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}])
    with pytest.raises(DataError, match="tokenizer 'toy_instructions' has no chat template; set one"):
        build_sft_data(sft_data_config(source="json", path=path), tokenizer)


def test_other_sources_need_a_tokenizer(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}])
    with pytest.raises(DataError, match=r"data.source='json' needs a tokenizer: set the model/tokenizer path"):
        build_sft_data(sft_data_config(source="json", path=path))


def test_template_that_rewrites_earlier_turns_is_rejected(tokenizer):
    # Like templates that drop the reasoning of past turns: only the last assistant message keeps its content.
    tokenizer.chat_template = (
        "{%- for m in messages -%}<|{{ m['role'] }}|>"
        "{%- if m['role'] != 'assistant' or loop.last -%}{{ m['content'] }}{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
    )
    chat = [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "v"},
        {"role": "assistant", "content": "b"},
    ]
    with pytest.raises(DataError, match=r"row 7: the chat template of 'toy_instructions' is not prefix-consistent"):
        encode_chat(chat, tokenizer, "row 7")


def test_template_errors_name_the_row_and_can_be_skipped(tmp_path, tokenizer):
    tokenizer.chat_template = (
        "{%- for m in messages -%}{%- if m['role'] == 'system' -%}{{ raise_exception('no system role') }}"
        "{%- endif -%}<|{{ m['role'] }}|>{{ m['content'] }}{%- endfor -%}"
        "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
    )
    rows = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ]
        },
        {"prompt": "u", "completion": "a"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, batch_size=1)
    with pytest.raises(DataError, match=r"d.jsonl line 1: the chat template .* rejected this conversation: no system"):
        build_sft_data(cfg, tokenizer)
    cfg.on_bad_row = "skip"
    report = build_sft_data(cfg, tokenizer)[3]
    assert report.skipped == {"template_error": 1} and report.train_examples == 1


def test_the_tokenizing_progress_bar_shows_on_a_terminal_only(tmp_path, tokenizer, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "_PROGRESS_DELAY_S", 0)  # show it at once, however short the work
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}] * 4)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0)
    build_sft_data(cfg, tokenizer)
    assert "tokenizing train" not in capsys.readouterr().err  # a piped log gets no carriage-return fragments
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    build_sft_data(cfg, tokenizer)
    assert "tokenizing train" in capsys.readouterr().err


def test_plain_template_needs_no_chat_template_and_masks_the_completion(tmp_path, tokenizer):
    tokenizer.chat_template = None  # a base model's tokenizer
    rows = [
        {"prompt": "reverse: abc:", "completion": " cba"},
        {"messages": [{"role": "user", "content": "upper: ab:"}, {"role": "assistant", "content": " AB"}]},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=24, batch_size=2, template="plain")
    examples = build_sft_data(cfg, tokenizer)[0].examples
    # The toy tokenizer writes no BOS before a text, so none is added; EOS ends the completion.
    assert [tokenizer.decode(e.tokens_L) for e in examples] == ["reverse: abc: cba<|end|>", "upper: ab: AB<|end|>"]
    assert [_assistant_text(e, tokenizer) for e in examples] == [" cba<|end|>", " AB<|end|>"]
    with pytest.raises(DataError, match="tokenizer 'toy_instructions' has no chat template"):
        build_sft_data(sft_data_config(source="json", path=path), tokenizer)


def test_plain_template_names_a_conversation_it_cannot_write(tmp_path, tokenizer):
    system = {"role": "system", "content": "s"}
    rows = [
        {"messages": [system, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
        {"prompt": "u", "completion": "a"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, batch_size=1, template="plain")
    message = r"line 1: data.template='plain' writes a prompt \(one user message\) and its completion, not roles \["
    with pytest.raises(DataError, match=message + r"'system', 'user', 'assistant'\]; conversations need"):
        build_sft_data(cfg, tokenizer)
    cfg.on_bad_row = "skip"
    report = build_sft_data(cfg, tokenizer)[3]
    assert report.skipped == {"template_error": 1} and report.train_examples == 1


def test_plain_template_with_a_real_base_model_tokenizer(tmp_path, stories260k_dir):
    """The stories260K tokenizer writes BOS and a SentencePiece word-start marker before every text."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(stories260k_dir)
    assert not tokenizer.chat_template
    rows = [
        {"prompt": "Once upon a time", "completion": " there was a little girl named Lily."},
        {"prompt": "Q: Who was Lily?\nA: ", "completion": "a girl"},  # "A: " + "a" tokenise differently together
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=64, batch_size=2, template="plain")
    examples = build_sft_data(cfg, tokenizer)[0].examples
    prompt_ids = get_template("plain").prompt  # what the trained model is given at inference
    for example, row in zip(examples, rows):
        prompt = prompt_ids([{"role": "user", "content": row["prompt"]}], tokenizer, "")
        assert prompt[0] == tokenizer.bos_token_id and example.tokens_L[-1] == tokenizer.eos_token_id
        assert example.tokens_L[: len(prompt)].tolist() == prompt
        assert example.assistant_L.tolist() == [False] * len(prompt) + [True] * (len(example) - len(prompt))
        assert tokenizer.decode(example.tokens_L[example.assistant_L], skip_special_tokens=True).strip() == (
            row["completion"].strip()
        )
    # Where the prompt's ids start the whole text's, the completion's are the rest: no stray word-start marker.
    whole = tokenizer(rows[0]["prompt"] + rows[0]["completion"])["input_ids"]
    assert examples[0].tokens_L.tolist() == whole + [tokenizer.eos_token_id]
