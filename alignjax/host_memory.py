"""On a CPU-only run, keep the memory XLA frees in the process, so that each step reuses pages already mapped.

XLA:CPU allocates an executable's temporaries with the C allocator at every execution and frees them at its
end: for a train step, hundreds of MiB (the activations kept for the backward pass). glibc serves blocks that
large with a fresh `mmap` and unmaps them on `free`, so every step faults each page back in and the kernel zeroes
it: a large share of a small model's step goes to the kernel (the measurements are in benchmarks/RESULTS.md).

`keep_freed_host_memory()` tells glibc not to serve blocks by `mmap` from the main heap (the one the program's first
thread allocates from) nor to trim it (unless 2 GiB at its top are free), and has JAX run each computation on the
thread that calls it (`jax_cpu_enable_async_dispatch=False`), so that XLA's temporaries come from that heap: blocks
freed by one step are reused by the next. (Blocks allocated on JAX's worker threads would come from their own
arenas, whose heaps are at most 64 MiB, so a large block would be mapped and unmapped anyway; forcing every thread
onto one arena instead made compile-heavy runs, such as the toy experiments and the tests, slower.) It must
run before JAX starts its backend, so the command-line entry points call it first. The price: the process keeps its
peak host memory, and a jitted call returns when its result is ready rather than at once (on CPU the caller has no
other cores to run on meanwhile). It applies only when the process can run on nothing but the CPU
(`JAX_PLATFORMS=cpu`, or no GPU/TPU plugin installed): on an accelerator a step's memory is the device's.
`ALIGNJAX_KEEP_FREED_MEMORY=1` forces it, `=0` turns it off.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import pkgutil

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_INT_MAX = 2**31 - 1
_kept = False


def kept() -> bool:
    """Whether `keep_freed_host_memory` configured the allocator in this process (benchmarks record it)."""
    return _kept


def keep_freed_host_memory() -> bool:
    """Configures glibc's allocator as the module docstring says, when it applies; returns whether it did."""
    setting = os.environ.get("ALIGNJAX_KEEP_FREED_MEMORY", "")
    if setting not in ("", "0", "1"):
        raise ValueError(f"ALIGNJAX_KEEP_FREED_MEMORY must be 0 or 1, not {setting!r}")
    if setting == "0" or (setting == "" and not cpu_only()):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator has other rules
        return False
    global _kept
    _kept = all(mallopt(option, value) == 1 for option, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _INT_MAX)))
    if _kept:
        import jax

        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return _kept


def cpu_only() -> bool:
    """Whether JAX in this process can only use the CPU, decided without starting JAX's backends."""
    platforms = {p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()}
    if platforms:
        return platforms == {"cpu"}
    return not accelerator_plugins()


def accelerator_plugins() -> list[str]:
    """The JAX accelerator plugins installed: modules of the `jax_plugins` namespace package, entry points of the
    `jax_plugins` group (how JAX discovers CUDA and ROCm), and `libtpu`."""
    found = [entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")]
    spec = importlib.util.find_spec("jax_plugins")
    if spec is not None and spec.submodule_search_locations:
        found += [module.name for module in pkgutil.iter_modules(spec.submodule_search_locations)]
    if importlib.util.find_spec("libtpu") is not None:
        found.append("libtpu")
    return sorted(set(found))
