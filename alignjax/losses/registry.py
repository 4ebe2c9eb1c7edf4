"""The registry of losses by name, and the shape of what a loss returns.

A loss returns a sum and its weight rather than a mean: the train step divides the summed totals of all
micro-batches by their summed weights, so gradient accumulation gives exactly the full-batch gradient whatever
the number of loss tokens (or pairs) in each micro-batch.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax


class LossOutput(NamedTuple):
    """total: the summed objective; weight: what it is summed over (tokens, pairs); metrics: sums to log.

    Each metric is a sum over the batch as well; the step divides it by the batch's total weight.
    """

    total: jax.Array
    weight: jax.Array
    metrics: dict[str, jax.Array]


LossFn = Callable[[jax.Array, dict], LossOutput]
_LOSSES: dict[str, LossFn] = {}


def register(name: str, fn: LossFn) -> None:
    if name in _LOSSES:
        raise ValueError(f"loss {name!r} is already registered")
    _LOSSES[name] = fn


def get(name: str) -> LossFn:
    """The loss registered as `name`; an unknown name lists the known ones."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {sorted(_LOSSES)}")
    return _LOSSES[name]


def names() -> list[str]:
    return sorted(_LOSSES)
