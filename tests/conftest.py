"""Test-session setup: 8 simulated CPU devices, so mesh tests run on any machine.

The device count must be fixed before JAX creates its backend, hence here, at import time. Tests that do not
name a mesh run on the first device as usual.
"""

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
