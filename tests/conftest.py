"""Test-session setup: 8 simulated CPU devices, so mesh tests run on any machine.

The device count must be fixed before JAX creates its backend, hence here, at import time. Tests that do not
name a mesh run on the first device as usual.
"""

import json
import os

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")


@pytest.fixture(scope="session")
def stories260k_dir(tmp_path_factory):
    """The real stories260K llama2.c model converted to a Hugging Face directory, once per test session."""
    from alignjax.models.llama2c import convert_llama2c

    checkpoint = os.path.join(SHARED_DATA, "stories260K.bin")
    tokenizer = os.path.join(SHARED_DATA, "tok512.bin")
    if not (os.path.exists(checkpoint) and os.path.exists(tokenizer)):
        pytest.skip(f"real llama2.c data not found in {SHARED_DATA} (only present in the project workspace)")
    out_dir = tmp_path_factory.mktemp("stories260K")
    convert_llama2c(checkpoint, tokenizer, str(out_dir))
    return out_dir


def write_jsonl(path, rows) -> str:
    """Writes `rows` as a JSON Lines file at `path` (a pathlib.Path); returns the path as a string."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    """The builtin toy task's character-level tokenizer (tests that modify it define a fresh one per test)."""
    from alignjax.data import load_builtin_tokenizer

    return load_builtin_tokenizer("toy_instructions")


@pytest.fixture
def train_step_traces(monkeypatch):
    """A list that grows by one each time `alignjax.train.step.train_step` is traced (jit calls it only then)."""
    import alignjax.train.step as step_module

    traces = []
    original = step_module.train_step

    def counting_step(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(step_module, "train_step", counting_step)
    return traces
