"""Test-session setup: 8 simulated CPU devices, so mesh tests run on any machine.

The device count must be fixed before JAX creates its backend, hence here, at import time. Tests that do not
name a mesh run on the first device as usual.

Compiling dominates this suite's time on CPU, and many tests (and the CLI subprocesses they start) compile the
very same programs. So the session shares one persistent JAX compilation cache: a fresh, empty directory per
session (every program still compiles once per run, nothing carries over between runs), named in the
environment so that subprocesses use it too. A cached executable is the one a compile would produce, so no
number any test checks changes. Set JAX_COMPILATION_CACHE_DIR yourself to choose (and keep) the directory.
The allocator keeps freed memory as in a training run (`alignjax.host_memory`).
"""

import atexit
import json
import os
import shutil
import tempfile

if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _cache_dir = tempfile.mkdtemp(prefix="alignjax-tests-jax-cache-")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small programs too
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

from alignjax.host_memory import keep_freed_host_memory  # noqa: E402

keep_freed_host_memory()  # as the command-line entry points do, before JAX starts its threads

import jax  # noqa: E402  (after the environment above, which JAX reads when imported)
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])  # if JAX came in first

# The PyTorch reference models in these tests are tiny: beside JAX's threads, more than one PyTorch thread only
# adds waiting (on a busy 2-core machine a 64-token transformers `generate` took 5 s instead of 0.05 s).
try:
    import torch
except ImportError:
    torch = None
if torch is not None:
    torch.set_num_threads(1)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")


# `pytest -n 2 --dist loadfile` runs each file on one worker and, by default, hands the files out by their number
# of tests, most first: a file of a few minute-long tests (command-line runs, servers) started late and left the
# other worker idle for minutes at the end. These files, slowest first as measured on a 2-core machine, are handed
# out first instead, the rest after them in their usual order; each worker takes the next file when it is nearly
# done with its own. Only the order changes, never which tests run. Keep the list roughly up to date.
SLOWEST_FILES = (
    "test_train_loop.py", "test_train_cli.py", "test_rl_loop.py", "test_sampling.py", "test_eval_judges.py",
    "test_ditto_resume.py",
    "test_train_preference.py", "test_engine.py", "test_shared_prompt.py", "test_serve_errors.py",
    "test_serve_api.py", "test_generation_resume.py", "test_generation_openai.py", "test_train_step.py",
    "test_mesh.py", "test_serve_load.py",
)


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadfile":
        config.option.loadscopereorder = False  # xdist's order by test count; the collection's order instead


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


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


def save_toy_chat_model(directory, max_positions: int, seed: int = 0, width: int = 32, layers: int = 1):
    """A small random model saved in `directory` with the built-in toy tokenizer (which has a chat template);
    returns the tokenizer."""
    from alignjax.data import load_builtin_tokenizer
    from alignjax.models import ModelConfig, init_model, save_pretrained

    tokenizer = load_builtin_tokenizer("toy_instructions")
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
        num_layers=layers, num_heads=2, num_kv_heads=1, head_dim=16, max_position_embeddings=max_positions,
    )
    save_pretrained(init_model(cfg, seed=seed), str(directory), tokenizer=tokenizer)
    return tokenizer


def logged_losses(workdir) -> dict[int, float]:
    """Per-step training loss from a run's metrics.jsonl; a step logged twice (before a crash and after) keeps the
    last."""
    losses = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "train/loss" in record:
                losses[record["step"]] = record["train/loss"]
    return losses


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


@pytest.fixture(scope="session")
def previous_stages(tmp_path_factory):
    """One directory for the earlier stages of experiments (the toy SFT stage that every toy preference
    experiment starts from): the first test to run a stage trains it there, the others use its export."""
    return tmp_path_factory.mktemp("previous_stages")
