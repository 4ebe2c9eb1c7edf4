"""Checks of an experiment config's values, each failing with what was given and what is valid.

`lock_config=True` already rejects unknown or mistyped keys; this catches values that are well-typed but
wrong (a negative learning rate, a mesh that does not match the devices) before any work starts.
"""

from __future__ import annotations

import jax
from ml_collections import ConfigDict

from alignjax import losses
from alignjax.config_errors import require
from alignjax.data import validate_data_config
from alignjax.sharding import mesh_shape
from alignjax.train.optimizer import SCHEDULES


def check_config(config: ConfigDict) -> None:
    """Raises ConfigError naming the first invalid value of `config`."""
    optim, train, data = config.optim, config.train, config.data
    validate_data_config(data)  # each field's own range first: a negative batch size is named as such
    require(optim.lr > 0, f"optim.lr must be > 0, got {optim.lr}")
    require(optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {optim.warmup_steps}")
    require(optim.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}, got {optim.schedule!r}")
    require(0 <= optim.min_lr_ratio <= 1, f"optim.min_lr_ratio must be in [0, 1], got {optim.min_lr_ratio}")
    require(optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {optim.weight_decay}")
    require(optim.clip_norm >= 0, f"optim.clip_norm must be >= 0 (0 disables), got {optim.clip_norm}")
    require(optim.grad_accum >= 1, f"optim.grad_accum must be >= 1, got {optim.grad_accum}")
    require(train.steps >= 0, f"train.steps must be >= 0 (0 evaluates without training), got {train.steps}")
    for field in ("log_every", "eval_every", "checkpoint_every", "rule_prompts", "stop_below_loss"):
        require(train[field] >= 0, f"train.{field} must be >= 0 (0 disables), got {train[field]}")
    require(config.loss.name in losses.names(), f"loss.name must be one of {losses.names()}, got {config.loss.name!r}")
    objective = losses.objective(config.loss.name)
    require(
        data.format == objective.format,
        f"loss {objective.name!r} trains on {objective.format!r} examples but data.format={data.format!r}; set "
        f"data.format={objective.format!r}",
    )
    require(
        objective.reference or not (config.reference.path or config.reference.precompute),
        f"loss {objective.name!r} uses no reference model, but reference.path={config.reference.path!r} / "
        f"reference.precompute={config.reference.precompute} are set; unset them (or choose a loss with a reference)",
    )
    require(
        "previous_stage" not in config or config.previous_stage.train.export_hf,
        "previous_stage.train.export_hf=False: a later stage starts from the previous stage's export; set it True",
    )
    require(
        not (config.reference.precompute and objective.format == "unpaired"),
        "reference.precompute=True is not available for unpaired (KTO) data: each batch pairs a prompt with another "
        "row's completion for the KL estimate, so those log-probs change from batch to batch; set it to False",
    )
    data_shape = mesh_shape(config.mesh, jax.device_count())
    data_parallel = data_shape[0] * data_shape[1]
    require(
        data.batch_size % (optim.grad_accum * data_parallel) == 0,
        f"data.batch_size={data.batch_size} must be divisible by optim.grad_accum ({optim.grad_accum}) x the "
        f"data-parallel devices (mesh data x fsdp = {data_parallel})",
    )
