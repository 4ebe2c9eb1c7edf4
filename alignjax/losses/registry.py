"""The registry of losses by name, what each one consumes, and the shape of what a loss returns.

A loss returns a sum and its weight rather than a mean: the train step divides the summed totals of all
micro-batches by their summed weights, so gradient accumulation gives exactly the full-batch gradient whatever
the number of loss tokens (or pairs) in each micro-batch.

Each loss is registered with what it consumes, so that the step builder knows what to compute for it:

- `inputs="tokens"`: `fn(logits_BLV, batch)` on [B, L] batches of one sequence per row (SFT).
- `inputs="responses"`: `fn(responses, **hyperparameters)` on a `Responses` (per-response summed log-probs of the
  policy and, when `reference=True`, of the frozen reference) from batches of K responses per prompt, [B, K, L].
- `inputs="rewards"`: `fn(rewards, **hyperparameters)` on a `Responses` whose `logps_BK` hold a reward model's
  scalar rewards, from [B, K, L] batches.

Hyperparameters are the loss function's keyword-only arguments; their defaults are the defaults of the
experiment config's `loss` section (`loss_config`), so the function's signature is their single source of truth.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
from ml_collections import ConfigDict

INPUTS = ("tokens", "responses", "rewards")


class LossOutput(NamedTuple):
    """total: the summed objective; weight: what it is summed over (tokens, pairs); metrics: sums to log.

    Each metric is a sum over the batch as well; the step divides it by the batch's total weight.
    """

    total: jax.Array
    weight: jax.Array
    metrics: dict[str, jax.Array]


LossFn = Callable[..., LossOutput]


@dataclasses.dataclass(frozen=True)
class Objective:
    """A registered loss and what the step must give it.

    Attributes:
        name: the name `config.loss.name` selects it by.
        fn: the loss function.
        inputs: one of INPUTS (see the module docstring).
        format: the example format its batches are built from, one of `alignjax.data.FORMATS` (the data package
            owns that table; the losses layer does not import it).
        reference: whether it needs the frozen reference model's log-probs.
    """

    name: str
    fn: LossFn
    inputs: str
    format: str
    reference: bool = False

    def hyperparameters(self) -> dict:
        """The loss's keyword-only arguments and their defaults."""
        return {
            p.name: p.default
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_LOSSES: dict[str, Objective] = {}


def register(name: str, fn: LossFn, *, inputs: str = "tokens", format: str = "sft", reference: bool = False) -> None:
    """Adds a loss under `name`; see the module docstring for `inputs`.

    An experiment file may register its own loss; the command line loads that file again to apply overrides, so a
    second registration of the same function (same module and name) replaces the first instead of failing.
    """
    if name in _LOSSES and _origin(_LOSSES[name].fn) != _origin(fn):
        raise ValueError(f"loss {name!r} is already registered (by {'.'.join(_origin(_LOSSES[name].fn))})")
    if inputs not in INPUTS:
        raise ValueError(f"loss {name!r}: inputs must be one of {INPUTS}, got {inputs!r}")
    objective = Objective(name, fn, inputs, format, reference)
    missing = [k for k, v in objective.hyperparameters().items() if v is inspect.Parameter.empty]
    if missing:
        raise ValueError(f"loss {name!r}: keyword-only hyperparameters {missing} need defaults")
    _LOSSES[name] = objective


def _origin(fn: LossFn) -> tuple[str, str]:
    return getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn))


def objective(name: str) -> Objective:
    """The registered `Objective` called `name`; an unknown name lists the known ones."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {sorted(_LOSSES)}")
    return _LOSSES[name]


def get(name: str) -> LossFn:
    """The loss function registered as `name`."""
    return objective(name).fn


def names() -> list[str]:
    return sorted(_LOSSES)


def loss_config(name: str, **overrides) -> ConfigDict:
    """The `loss` section of an experiment config: the name and the loss's hyperparameters with their defaults.

    An override that is not one of the loss's hyperparameters is an error naming the valid ones.
    """
    hyperparameters = objective(name).hyperparameters()
    unknown = sorted(set(overrides) - set(hyperparameters))
    if unknown:
        raise ValueError(f"loss {name!r} has no hyperparameters {unknown}; its hyperparameters: {hyperparameters}")
    return ConfigDict({"name": name, **hyperparameters, **overrides})


def bind(loss_cfg: ConfigDict) -> LossFn:
    """The loss of `loss_cfg` (a `loss_config` section) with its hyperparameters bound.

    A field that the selected loss does not take is an error: it would otherwise be silently ignored, e.g. after
    overriding `loss.name` on a config written for another loss.
    """
    found = objective(loss_cfg.name)
    fields = {k: v for k, v in loss_cfg.items() if k != "name"}
    unknown = sorted(set(fields) - set(found.hyperparameters()))
    if unknown:
        raise ValueError(
            f"loss.name={found.name!r} does not take {unknown}; its hyperparameters are {found.hyperparameters()}. "
            "Start from an experiment file written for this loss, or build the section with losses.loss_config"
        )
    return functools.partial(found.fn, **fields) if fields else found.fn
