"""The builtin toy task: held-out words unseen in training, correct answers, and a tokenizer that saves and loads."""

import pytest
from transformers import AutoTokenizer

from alignjax.data import DataError, build_sft_data, load_builtin_tokenizer, sft_data_config
from alignjax.data.builtin import toy_instructions

CHAT = [{"role": "user", "content": "reverse: abc"}, {"role": "assistant", "content": "cba"}]


def _word(row):
    return row["prompt"].split(": ", 1)[1]


def test_held_out_words_never_appear_in_training():
    train, test = toy_instructions.rows("train"), toy_instructions.rows("test")
    assert len(train) == toy_instructions.NUM_TRAIN and len(test) == toy_instructions.NUM_TEST
    assert not {_word(r) for r in train} & {_word(r) for r in test}
    assert {r["prompt"].split(":")[0] for r in test} == set(toy_instructions.TASKS)


def test_answers_follow_the_instructions():
    for row in toy_instructions.rows("test"):
        task, word = row["prompt"].split(": ", 1)
        assert word.isalpha() and word.islower() and 3 <= len(word) <= 6
        assert row["completion"] == {"reverse": word[::-1], "upper": word.upper(), "sort": "".join(sorted(word))}[task]


def test_generation_is_deterministic_by_seed():
    a = toy_instructions.generate(seed=5, num_train=50, num_test=10)
    assert a == toy_instructions.generate(seed=5, num_train=50, num_test=10)
    assert a != toy_instructions.generate(seed=6, num_train=50, num_test=10)


def test_chat_template_renders_the_documented_format():
    tokenizer = load_builtin_tokenizer("toy_instructions")
    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == "<|bos|><|user|>reverse: abc<|assistant|>cba<|end|>"
    prompt = tokenizer.apply_chat_template(CHAT[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|bos|><|user|>reverse: abc<|assistant|>"
    system = [{"role": "system", "content": "be brief"}] + CHAT
    assert tokenizer.apply_chat_template(system, tokenize=False).startswith("<|bos|><|system|>be brief<|user|>")
    ids = tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=False)
    assert tokenizer.convert_ids_to_tokens(ids)[-5:] == ["<|assistant|>", "c", "b", "a", "<|end|>"]
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.pad_token_id == 0 and len(tokenizer) < 128


def test_tokenizer_round_trips_through_save_pretrained(tmp_path):
    tokenizer = load_builtin_tokenizer("toy_instructions")
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "sort: Hello, World! 42 (x-y_z)"
    assert loaded.encode(text) == tokenizer.encode(text) and loaded.decode(loaded.encode(text)) == text
    assert loaded.apply_chat_template(CHAT, tokenize=True, return_dict=False) == tokenizer.apply_chat_template(
        CHAT, tokenize=True, return_dict=False
    )
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        assert getattr(loaded, name) == getattr(tokenizer, name), name
    assert loaded.get_vocab() == tokenizer.get_vocab()


def test_builtin_source_uses_its_own_tokenizer_and_held_out_split():
    cfg = sft_data_config(max_examples=64, seq_len=32, batch_size=16, eval_fraction=0.5)
    train_iter, evals, tokenizer, report = build_sft_data(cfg)
    assert (report.examples_read, report.train_examples, report.eval_examples) == (64 + 200, 64, 200)
    assert len(evals) == 13 and tokenizer.name_or_path == "toy_instructions"
    batch = evals[0]
    test_rows = toy_instructions.rows("test")
    for row in range(batch["tokens"].shape[0]):
        answer = batch["targets"][row][batch["loss_mask"][row] == 1]
        assert tokenizer.decode(answer) == test_rows[batch["example_index"][row]]["completion"] + "<|end|>"
    assert next(train_iter)["tokens"].shape == (16, 32)


def test_unknown_builtin_name_lists_the_builtins():
    with pytest.raises(DataError, match=r"data.path='toy' is not a builtin dataset.*toy_instructions"):
        build_sft_data(sft_data_config(path="toy"))
    with pytest.raises(DataError, match=r"data.split='validation'.*\['train', 'test'\]"):
        build_sft_data(sft_data_config(split="validation"))
