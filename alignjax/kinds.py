"""The kinds of run an experiment can be, by name: `config.kind` looks one up here.

A kind is what the command line dispatches to: a check of the config (run for every stage before any starts, so
a mistake in the last stage does not wait for the first one to train) and a function that runs one stage and
returns its final metrics. Adding a kind (an evaluation, a data-generating pipeline) is one function pair and one
`register` line below.

The offline kinds share one loop (`train.loop.train`) and differ in what their loss consumes
(`losses.Objective.inputs`): `sft` trains on token batches, `preference` on responses per prompt, `reward` a
reward model; the kind and the loss must agree, so a config says what it is and the loss cannot silently change
the kind of run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
from ml_collections import ConfigDict

from alignjax import losses
from alignjax.config_errors import require
from alignjax.rl import check_rl_config, train_rl
from alignjax.rl.best_of_n import check_best_of_n_config, run_best_of_n
from alignjax.train.config_checks import check_config
from alignjax.train.loop import train


@dataclasses.dataclass(frozen=True)
class RunKind:
    """name: what `config.kind` says; check: raises ConfigError for a bad config; run: runs one stage."""

    name: str
    check: Callable[[ConfigDict], None]
    run: Callable[[ConfigDict], dict[str, float]]
    description: str


_KINDS: dict[str, RunKind] = {}


def register(kind: RunKind) -> None:
    if kind.name in _KINDS:
        raise ValueError(f"run kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind


def names() -> list[str]:
    return sorted(_KINDS)


def get(name: str) -> RunKind:
    """The kind named `name`; ConfigError listing the kinds when there is none."""
    require(name in _KINDS, f"kind={name!r} is not a kind of run; expected one of {names()}")
    return _KINDS[name]


_OFFLINE_INPUTS = {"sft": "tokens", "preference": "responses", "reward": "rewards"}  # kind -> what its loss consumes


def _offline_check(kind: str) -> Callable[[ConfigDict], None]:
    def check(config: ConfigDict) -> None:
        if config.loss.name in losses.names():  # else check_config names the valid losses
            inputs = losses.objective(config.loss.name).inputs
            right = next(k for k, v in _OFFLINE_INPUTS.items() if v == inputs)
            require(right == kind, f"kind={kind!r} cannot train loss.name={config.loss.name!r}; set kind={right!r}")
        check_config(config)

    return check


register(RunKind("sft", _offline_check("sft"), train, "supervised fine-tuning (token losses: sft, conditional_sft)"))
register(RunKind("preference", _offline_check("preference"), train, "offline preference learning (DPO family, ...)"))
register(RunKind("reward", _offline_check("reward"), train, "a Bradley-Terry reward model"))
register(RunKind("rl", lambda config: check_rl_config(config, jax.device_count()), train_rl, "on-policy RL"))
register(RunKind("best_of_n", check_best_of_n_config, run_best_of_n, "best-of-n sampling with a reward model"))
