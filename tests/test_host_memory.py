"""`alignjax.host_memory`: when the allocator setting applies, and that it stops a freed block's pages from being
faulted back in when the next block of that size is used (what every XLA:CPU step does with its temporaries)."""

import json
import subprocess
import sys

import pytest

from alignjax import host_memory

# Allocates, fills and frees a 64 MiB block twice with the C allocator (as XLA does; numpy would ask for huge
# pages), then reports the page faults of the second fill.
FAULTS_OF_A_REUSED_BLOCK = """
import ctypes, json, resource
from alignjax.host_memory import keep_freed_host_memory
kept = keep_freed_host_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def fill():
    block = libc.malloc(64 * 2**20)
    ctypes.memset(block, 1, 64 * 2**20)
    libc.free(block)

fill()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _reused_block(setting: str) -> dict:
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "ALIGNJAX_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_A_REUSED_BLOCK], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _reused_block("0"), _reused_block("1")
    pages = 64 * 2**20 // 4096
    assert not default["kept"] and default["faults"] > pages // 2  # unmapped on free, faulted in again
    assert kept["kept"] and kept["faults"] < pages // 50


def test_applies_only_when_jax_can_use_nothing_but_the_cpu(monkeypatch):
    monkeypatch.delenv("ALIGNJAX_KEEP_FREED_MEMORY", raising=False)
    monkeypatch.setattr(host_memory, "accelerator_plugins", lambda: [])
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert not host_memory.cpu_only()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert host_memory.cpu_only()
    monkeypatch.delenv("JAX_PLATFORMS")
    assert host_memory.cpu_only()
    monkeypatch.setattr(host_memory, "accelerator_plugins", lambda: ["xla_cuda12"])
    assert not host_memory.cpu_only()
    assert not host_memory.keep_freed_host_memory()  # a GPU plugin is installed: left alone


def test_a_bad_setting_is_an_error(monkeypatch):
    monkeypatch.setenv("ALIGNJAX_KEEP_FREED_MEMORY", "yes")
    with pytest.raises(ValueError, match="ALIGNJAX_KEEP_FREED_MEMORY must be 0 or 1, not 'yes'"):
        host_memory.keep_freed_host_memory()
