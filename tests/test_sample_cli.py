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
    for header in ("--- prompt 0, sample 0", "--- prompt 0, sample 1", "--- prompt 1, sample 0", "--- prompt 1, sample 1"):
        assert header in out
    assert "\nA cat" in out


def test_python_dash_m_entry_point(stories260k_dir):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "alignjax.sample", "--model", str(stories260k_dir), "--prompt", "Once upon a time",
         "--temperature", "0", "--max-new-tokens", "12"],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.startswith("Once upon a time, there was a little girl")
    assert "tokens/s" in result.stderr
