"""The kinds of run an experiment can be, by name: `config.kind` looks one up here.

A kind is what the command line dispatches to: a check of the config (run for every stage before any starts, so
a mistake in the last stage does not wait for the first one to train) and a function that runs one stage and
returns its final metrics. Adding a kind (a data-generating pipeline, say) is one function pair and one `register`
line below; `eval` and `meta_eval` (alignjax.eval) are two.

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
from alignjax.config_errors import ConfigError, require
from alignjax.eval import check_eval_section, run_eval, run_meta_eval
from alignjax.rl import check_rl_config, train_rl
from alignjax.rl.best_of_n import check_best_of_n_config, run_best_of_n
from alignjax.train.config_checks import check_config
from alignjax.train.loop import train


@dataclasses.dataclass(frozen=True)
class RunKind:
    """name: what `config.kind` says; check: raises ConfigError for a bad config; run: runs one stage and returns
    its final metrics."""

    name: str
    check: Callable[[ConfigDict], None]
    run: Callable[[ConfigDict], dict[str, float]]


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
_KIND_OF_SECTION = {"best_of_n": "best_of_n", "rl": "rl"}  # sections that mark their kind (best_of_n first)


def offline_kind(loss_name: str) -> str:
    """The kind of run that trains the registered loss `loss_name` offline: sft, preference or reward."""
    inputs = losses.objective(loss_name).inputs
    return next(kind for kind, wanted in _OFFLINE_INPUTS.items() if wanted == inputs)


def _check_sections(kind: str, config: ConfigDict, required: tuple[str, ...]) -> None:
    """A config must have its kind's `required` sections and no section that marks another kind, so that an
    on-policy config whose `kind` was not set to 'rl' is named as such rather than failing later."""
    for section in required:
        require(section in config, f"kind={kind!r} but the config lacks a `{section}` section")
    for section, other in _KIND_OF_SECTION.items():
        if section in config and section not in required:
            raise ConfigError(f"kind={kind!r} but the config has a `{section}` section; set kind={other!r}")


def _offline_check(kind: str) -> Callable[[ConfigDict], None]:
    def check(config: ConfigDict) -> None:
        _check_sections(kind, config, required=())
        require("loss" in config, f"kind={kind!r} trains a loss, but the config has no `loss` section")
        if config.loss.name in losses.names():  # else check_config names the valid losses
            right = offline_kind(config.loss.name)
            require(right == kind, f"kind={kind!r} cannot train loss.name={config.loss.name!r}; set kind={right!r}")
        check_config(config)

    return check


def _sectioned_check(kind: str, required: tuple[str, ...], check: Callable[[ConfigDict], None]):
    def checked(config: ConfigDict) -> None:
        _check_sections(kind, config, required)
        check(config)

    return checked


register(RunKind("sft", _offline_check("sft"), train))  # token losses: sft, conditional_sft
register(RunKind("preference", _offline_check("preference"), train))  # the DPO family, SLiC, RRHF, PRO, KTO, ...
register(RunKind("reward", _offline_check("reward"), train))  # a Bradley-Terry reward model
register(RunKind("rl", _sectioned_check("rl", ("rl",), lambda c: check_rl_config(c, jax.device_count())), train_rl))
register(  # sampling and reward fields in `rl`, the sizes in `best_of_n`
    RunKind("best_of_n", _sectioned_check("best_of_n", ("rl", "best_of_n"), check_best_of_n_config), run_best_of_n)
)
register(
    RunKind("eval", _sectioned_check("eval", ("eval",), lambda c: check_eval_section(c.eval, meta=False)), run_eval)
)
register(  # judges against labelled pairs
    RunKind(
        "meta_eval",
        _sectioned_check("meta_eval", ("eval",), lambda c: check_eval_section(c.eval, meta=True)),
        run_meta_eval,
    )
)
