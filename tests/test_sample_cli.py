"""`python -m alignjax.sample`: streams exactly the text that `generate` returns."""

import pytest

from alignjax import sample
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, generate

from conftest import save_toy_chat_model

transformers = pytest.importorskip("transformers")


def test_streamed_text_equals_generated_text(stories260k_dir, capsys):
    sample.main(["--model", str(stories260k_dir), "--prompt", "Tom", "--temperature", "0", "--max-new-tokens", "48"])
    streamed = capsys.readouterr().out
    tokenizer = transformers.AutoTokenizer.from_pretrained(stories260k_dir)
    expected = generate(
        from_pretrained(str(stories260k_dir)), ["Tom"], max_new_tokens=48, config=GREEDY, tokenizer=tokenizer
    ).texts[0]
    assert streamed == "Tom" + expected + "\n[cut: reached --max-new-tokens=48]\n"  # no EOS within 48 tokens
    assert expected.startswith(" and")  # the word-initial space survives decoding the continuation


def test_several_prompts_and_samples_are_listed(stories260k_dir, capsys):
    sample.main(
        [
            "--model",
            str(stories260k_dir),
            "--prompt",
            "Tom",
            "--prompt",
            "A cat",
            "--num-samples",
            "2",
            "--top-k",
            "20",
            "--max-new-tokens",
            "8",
            "--seed",
            "3",
        ]
    )
    out = capsys.readouterr().out
    for header in (f"--- prompt {p}, sample {s}" for p in (0, 1) for s in (0, 1)):
        assert header in out
    assert "\nA cat" in out


@pytest.mark.slow
def test_python_dash_m_entry_point(stories260k_dir):
    import subprocess
    import sys

    result = subprocess.run(  # 48 new tokens, as above: the decoder compiled there comes from the session's cache
        [
            sys.executable,
            "-m",
            "alignjax.sample",
            "--model",
            str(stories260k_dir),
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--max-new-tokens",
            "48",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("Once upon a time, there was a little girl")
    assert "tokens/s" in result.stderr


@pytest.fixture(scope="module")
def toy_chat_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_chat")
    return directory, save_toy_chat_model(directory, max_positions=128)


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
    assert (
        sample.main(
            [
                "--model",
                str(directory),
                "--chat",
                "--prompt",
                "upper: jax",
                "--temperature",
                "0",
                "--max-new-tokens",
                "6",
            ]
        )
        == 0
    )
    expected = generate(
        from_pretrained(str(directory)),
        [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": "upper: jax"}], add_generation_prompt=True, tokenize=False
            )
        ],
        max_new_tokens=6,
        config=GREEDY,
        tokenizer=tokenizer,
    )
    assert expected.prompts[0][-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")
    cut = "" if expected.stopped[0] else "[cut: reached --max-new-tokens=6]\n"
    assert capsys.readouterr().out == "upper: jax\n" + expected.texts[0] + "\n" + cut


def test_chat_mode_without_a_template_is_a_clear_error(stories260k_dir, capsys):
    assert sample.main(["--model", str(stories260k_dir), "--chat", "--prompt", "hi"]) == 2
    assert "has no chat template" in capsys.readouterr().err


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    """Directories of one small model that always emits token 0 (its final norm is zero, so every logit is 0 and
    greedy decoding takes the first token), with max_position_embeddings=8: under "ends" token 0 is the
    tokenizer's EOS, so every text stops at once; under "runs_on" it is padding, so every text uses its budget."""
    import shutil

    import safetensors.numpy

    runs_on = tmp_path_factory.mktemp("runs_on")
    tokenizer = save_toy_chat_model(runs_on, max_positions=8)
    weights = safetensors.numpy.load_file(str(runs_on / "model.safetensors"))
    weights["model.norm.weight"][:] = 0
    safetensors.numpy.save_file(weights, str(runs_on / "model.safetensors"), metadata={"format": "pt"})
    ends = tmp_path_factory.mktemp("ends")
    shutil.copytree(runs_on, ends, dirs_exist_ok=True)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(0)
    tokenizer.save_pretrained(ends)
    return {"ends": str(ends), "runs_on": str(runs_on)}


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exited:
        sample.main(["--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in ("128", "1.0", "0", "0.0", "1", "float32"):
        assert f"(default: {default})" in out
    assert "Not capped at the model's max_position_embeddings" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "-1"], "--temperature must be >= 0 (0 decodes greedily), got -1.0"),
        (["--top-p", "0"], "--top-p must be in (0, 1] (1: off), got 0.0"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1] (1: off), got 1.5"),
        (["--top-k", "-1"], "--top-k must be >= 0 (0: off), got -1"),
        (["--min-p", "nan"], "--min-p must be in [0, 1] (0: off), got nan"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1, got 0"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
    ],
)
def test_a_bad_value_is_one_line_and_status_2(constant_model, flags, message, capsys):
    with pytest.raises(SystemExit) as exited:
        sample.main(["--model", constant_model["runs_on"], "--prompt", "ab", *flags])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"python -m alignjax.sample: error: {message}\n"


@pytest.mark.parametrize(
    "layout, missing",
    [
        ({}, "the directory is empty"),
        ({"tokenizer.json": "{}"}, "no config.json, no weights (neither model.safetensors nor"),
        (None, "no such directory"),
    ],
)
def test_a_bad_model_directory_is_one_line_and_status_2(tmp_path, layout, missing, capsys):
    if layout is not None:
        for name, text in layout.items():
            (tmp_path / name).write_text(text)
    model_dir = str(tmp_path if layout is not None else tmp_path / "missing")
    with pytest.raises(SystemExit) as exited:
        sample.main(["--model", model_dir, "--prompt", "ab"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m alignjax.sample: error: --model={model_dir!r}: {missing}")
    assert err.count("\n") == 1


def test_only_dtypes_that_run_here_are_offered(constant_model, capsys):
    import jax
    import numpy as np
    from flax import nnx

    offered = sample.runnable_dtypes()
    assert "float32" in offered and "bfloat16" in offered
    if jax.default_backend() == "cpu":  # XLA's CPU dot_general has no float16
        assert "float16" not in offered
        with pytest.raises(SystemExit):
            sample.main(["--model", constant_model["runs_on"], "--prompt", "ab", "--dtype", "float16"])
        assert "--dtype float16 does not run on this machine's cpu; choose one of float32, bfloat16" in (
            capsys.readouterr().err
        )
    for dtype in set(offered) - {"float32"}:  # float32 runs in every other test; jitted: one compile, not one per op
        model = from_pretrained(constant_model["runs_on"], dtype=dtype)
        logits = nnx.jit(lambda m, ids: m(ids))(model, np.zeros((1, 4), np.int32))
        assert logits.shape == (1, 4, 83)


def test_texts_cut_by_the_budget_are_marked_and_counted(constant_model, capsys):
    flags = ["--prompt", "ab", "--prompt", "cd", "--temperature", "0", "--max-new-tokens", "4"]
    assert sample.main(["--model", constant_model["runs_on"], *flags]) == 0
    out, err = capsys.readouterr()
    assert out == "--- prompt 0, sample 0\nab\n[cut: reached --max-new-tokens=4]\n" + (
        "--- prompt 1, sample 0\ncd\n[cut: reached --max-new-tokens=4]\n"
    )
    assert "8 tokens in" in err and "2 of 2 texts cut by --max-new-tokens" in err
    assert sample.main(["--model", constant_model["ends"], *flags]) == 0
    out, err = capsys.readouterr()
    assert "[cut" not in out and "2 tokens in" in err and "0 of 2 texts cut" in err


def test_running_past_the_trained_positions_warns_once_and_keeps_the_budget(constant_model, capsys):
    flags = ["--prompt", "abcdefg", "--prompt", "ab", "--temperature", "0", "--max-new-tokens", "4"]  # as above
    assert sample.main(["--model", constant_model["runs_on"], *flags]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(
        "warning: 7 prompt tokens + --max-new-tokens=4 = 11 positions, past the model's "
        "max_position_embeddings=8: the text may degrade beyond it (the budget is not capped; "
        "--max-new-tokens 1 stays within)\n"
    )
    assert err.count("max_position_embeddings") == 1 and "8 tokens in" in err
    assert out.count("[cut: reached --max-new-tokens=4]") == 2
