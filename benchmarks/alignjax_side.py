"""What every alignjax worker does: its start, the saved model on a one-device mesh, the matched optimizer, the
timed steps, the environment fields of its records.

Nothing here imports jax at module level: a peer's worker imports this module too, and must not pay for jax.
"""

from __future__ import annotations

import importlib
import os

from benchmarks.harness import Setup, StepClock

# What every training worker uses (`load_model`, `matched_config`, `Trainee.create`, the train step).
TRAINING_MODULES = (
    "jax",
    "flax",
    "alignjax.configs",
    "alignjax.models",
    "alignjax.sharding",
    "alignjax.train.step",
    "alignjax.train.trainee",
)


def start(*modules: str) -> Setup:
    """Keeps freed host memory (first, as alignjax's command-line entry points do), imports `modules` (so that
    their import is not part of the setup), then starts timing the worker's setup."""
    from alignjax.host_memory import keep_freed_host_memory

    keep_freed_host_memory()
    for name in modules:
        importlib.import_module(name)
    return Setup()


def load_model(workdir: str):
    """A one-device mesh and the saved model (`alignjax.models.from_pretrained`) on it."""
    import jax

    from alignjax import sharding
    from alignjax.models import from_pretrained

    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    return mesh, from_pretrained(os.path.join(workdir, "model"), mesh=mesh)


def matched_config(lr: float):
    """`alignjax.configs.base_config()` with the optimizer TRL is given (`peers.trl_matched_arguments`): AdamW at a
    constant `lr` without warmup or weight decay, clipping at 1.0 (betas and eps are the defaults')."""
    from alignjax.configs import base_config

    config = base_config()
    config.optim.update(lr=lr, warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0)
    return config


def run_steps(step_fn, state, batches, put, *args):
    """Runs `step_fn(state, put(batch), *args)` over `batches`, blocking on each step's state and metrics.

    Returns (state, its `StepClock`, per-step losses as floats); the losses stay on device until the end, so
    fetching them adds no host sync to a step.
    """
    import jax

    clock, losses = StepClock(), []
    for batch in batches:
        clock.begin()
        state, metrics = step_fn(state, put(batch), *args)
        jax.block_until_ready((state, metrics))
        clock.end()
        losses.append(metrics["loss"])
    return state, clock, [float(x) for x in jax.device_get(losses)]


def environment() -> dict:
    """The device, threads and versions fields of an alignjax record."""
    import flax
    import jax

    from alignjax import host_memory

    device = jax.devices()[0]
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "threads": f"XLA CPU intra-op pool = all {len(os.sched_getaffinity(0))} cores; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        "freed_host_memory_kept": host_memory.kept(),
        "versions": f"jax {jax.__version__}, flax {flax.__version__}",
    }
