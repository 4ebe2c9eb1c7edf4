"""Checks of an experiment config's values, each failing with what was given and what is valid.

`lock_config=True` already rejects unknown or mistyped keys; this catches values that are well-typed but
wrong (a negative learning rate, a mesh that does not match the devices) before any work starts.
"""

from __future__ import annotations

import math

import jax
from ml_collections import ConfigDict

from alignjax import losses
from alignjax.train.optimizer import SCHEDULES


class ConfigValueError(ValueError):
    """A config value is out of its valid range."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigValueError(message)


def resolve_mesh_shape(mesh: ConfigDict, num_devices: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor); one size may be -1, meaning 'all remaining devices'."""
    sizes = [mesh.data, mesh.fsdp, mesh.tensor]
    _check(sizes.count(-1) <= 1, f"mesh: at most one of data/fsdp/tensor may be -1, got {sizes}")
    _check(all(s == -1 or s >= 1 for s in sizes), f"mesh: sizes must be >= 1 or -1, got {sizes}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        _check(num_devices % known == 0, f"mesh: {sizes} cannot fill {num_devices} devices")
        sizes[sizes.index(-1)] = num_devices // known
    _check(
        math.prod(sizes) == num_devices,
        f"mesh: data={sizes[0]} x fsdp={sizes[1]} x tensor={sizes[2]} = {math.prod(sizes)} devices, but "
        f"{num_devices} are available; choose sizes whose product is {num_devices} (or set one to -1)",
    )
    return tuple(sizes)


def check_config(config: ConfigDict) -> None:
    """Raises ConfigValueError naming the first invalid value of `config`."""
    optim, train, data = config.optim, config.train, config.data
    _check(optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}")
    _check(optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {optim.warmup_steps}")
    _check(optim.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {optim.schedule!r}")
    _check(0 <= optim.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {optim.min_lr_ratio}")
    _check(optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {optim.weight_decay}")
    _check(optim.clip_norm >= 0, f"optim.clip_norm must be >= 0 (0 disables), got {optim.clip_norm}")
    _check(optim.grad_accum >= 1, f"optim.grad_accum must be >= 1, got {optim.grad_accum}")
    _check(train.steps >= 1, f"train.steps must be >= 1, got {train.steps}")
    for field in ("log_every", "eval_every", "checkpoint_every", "rule_prompts"):
        _check(train[field] >= 0, f"train.{field} must be >= 0 (0 disables), got {train[field]}")
    _check(config.loss.name in losses.names(), f"loss.name must be one of {losses.names()}, got {config.loss.name!r}")
    objective = losses.objective(config.loss.name)
    _check(
        data.format == objective.format,
        f"loss {objective.name!r} trains on {objective.format!r} examples but data.format={data.format!r}; set "
        f"data.format={objective.format!r}",
    )
    _check(
        objective.reference or not (config.reference.path or config.reference.precompute),
        f"loss {objective.name!r} uses no reference model, but reference.path={config.reference.path!r} / "
        f"reference.precompute={config.reference.precompute} are set; unset them (or choose a loss with a reference)",
    )
    _check(
        "previous_stage" not in config or config.previous_stage.train.export_hf,
        "previous_stage.train.export_hf=False: a later stage starts from the previous stage's export; set it True",
    )
    _check(
        not (config.reference.precompute and objective.format == "unpaired"),
        "reference.precompute=True is not available for unpaired (KTO) data: each batch pairs a prompt with another "
        "row's completion for the KL estimate, so those log-probs change from batch to batch; set it to False",
    )
    data_shape = resolve_mesh_shape(config.mesh, jax.device_count())
    data_parallel = data_shape[0] * data_shape[1]
    _check(
        data.batch_size % (optim.grad_accum * data_parallel) == 0,
        f"data.batch_size={data.batch_size} must be divisible by optim.grad_accum ({optim.grad_accum}) x the "
        f"data-parallel devices (mesh data x fsdp = {data_parallel})",
    )
