"""Chat-template tokenisation: the loss mask covers exactly the assistant's tokens; truncation is counted."""


import types

import numpy as np
import pytest

from alignjax.data import (
    DataError,
    build_sft_data,
    encode_chat,
    load_builtin_tokenizer,
    pad_token_id,
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
        {"prompt": "a", "completion": "bcdefghij"},  # 13 tokens: cut, part of the response remains
        {"prompt": "abcdefghijkl", "completion": "b"},  # 17 tokens: the response starts beyond seq_len
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = sft_data_config(source="json", path=path, eval_fraction=0.0, seq_len=10, batch_size=2)
    train_iter, _, _, report = build_sft_data(cfg, tokenizer)
    assert report.truncated == 1 and report.skipped == {"response_truncated": 1} and report.train_examples == 2
    cut = [e for e in train_iter.examples if len(e) == 10]
    assert len(cut) == 1 and tokenizer.decode(cut[0].tokens_L) == "<|bos|><|user|>a<|assistant|>bcdefg"


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
