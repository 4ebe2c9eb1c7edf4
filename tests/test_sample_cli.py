"""`python -m alignjax.sample`: streams exactly the text that `generate` returns."""

import pytest

from alignjax import sample
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, generate

transformers = pytest.importorskip("transformers")


def test_streamed_text_equals_generated_text(stories260k_dir, capsys):
    sample.main(["--model", str(stories260k_dir), "--prompt", "Tom", "--temperature", "0", "--max-new-tokens", "48"])
    streamed = capsys.readouterr().out
    tokenizer = transformers.AutoTokenizer.from_pretrained(stories260k_dir)
    expected = generate(
        from_pretrained(str(stories260k_dir)), ["Tom"], max_new_tokens=48, config=GREEDY, tokenizer=tokenizer
    ).texts[0]
    assert streamed == "Tom" + expected + "\n"
    assert expected.startswith(" and")  # the word-initial space survives decoding the continuation


def test_several_prompts_and_samples_are_listed(stories260k_dir, capsys):
    sample.main([
        "--model", str(stories260k_dir), "--prompt", "Tom", "--prompt", "A cat", "--num-samples", "2",
        "--top-k", "20", "--max-new-tokens", "8", "--seed", "3",
    ])
    out = capsys.readouterr().out
    for header in (f"--- prompt {p}, sample {s}" for p in (0, 1) for s in (0, 1)):
        assert header in out
    assert "\nA cat" in out


@pytest.mark.slow
def test_python_dash_m_entry_point(stories260k_dir):
    import subprocess
    import sys

    result = subprocess.run(  # 48 new tokens, as above: the decoder compiled there comes from the session's cache
        [sys.executable, "-m", "alignjax.sample", "--model", str(stories260k_dir), "--prompt", "Once upon a time",
         "--temperature", "0", "--max-new-tokens", "48"],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.startswith("Once upon a time, there was a little girl")
    assert "tokens/s" in result.stderr


@pytest.fixture(scope="module")
def toy_chat_model(tmp_path_factory):
    """A small random model with the built-in toy tokenizer, which has a chat template."""
    from alignjax.data import load_builtin_tokenizer
    from alignjax.models import ModelConfig, init_model, save_pretrained

    tokenizer = load_builtin_tokenizer("toy_instructions")
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, max_position_embeddings=128,
    )
    directory = tmp_path_factory.mktemp("toy_chat")
    save_pretrained(init_model(cfg, seed=0), str(directory), tokenizer=tokenizer)
    return directory, tokenizer


def test_chat_prompt_equals_the_templates_own_tokenisation(toy_chat_model):
    from alignjax.data.tokenization import encode_chat_prompt

    _, tokenizer = toy_chat_model
    messages = [{"role": "user", "content": "reverse: hello"}]
    ids = encode_chat_prompt(messages, tokenizer, where="test")
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|assistant|>") and tokenizer.decode(ids) == rendered
    assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]


def test_chat_mode_samples_an_answer(toy_chat_model, capsys):
    directory, tokenizer = toy_chat_model
    assert sample.main(["--model", str(directory), "--chat", "--prompt", "upper: jax", "--temperature", "0",
                        "--max-new-tokens", "6"]) == 0
    expected = generate(
        from_pretrained(str(directory)), [tokenizer.apply_chat_template(
            [{"role": "user", "content": "upper: jax"}], add_generation_prompt=True, tokenize=False)],
        max_new_tokens=6, config=GREEDY, tokenizer=tokenizer,
    )
    assert expected.prompts[0][-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")
    assert capsys.readouterr().out == "upper: jax\n" + expected.texts[0] + "\n"


def test_chat_mode_without_a_template_is_a_clear_error(stories260k_dir, capsys):
    assert sample.main(["--model", str(stories260k_dir), "--chat", "--prompt", "hi"]) == 2
    assert "has no chat template" in capsys.readouterr().err
