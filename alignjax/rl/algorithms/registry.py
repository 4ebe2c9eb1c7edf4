"""The registry of on-policy algorithms by name, and the record that says how each one differs from the others.

Every on-policy iteration has the same shape: sample k answers to each prompt, score them, turn the rollout into
an update batch, train on it in `rl.epochs` x `rl.minibatches` steps (`rl.updates`). What an algorithm changes is
held by its `Algorithm` record: its hyperparameters, which model samples, whether a value model trains beside
the policy, how a rollout becomes its batch and which step trains on that batch. The loop, the updater and the
config checks read the record, never the name, so adding an algorithm is one file in this package (its record)
plus one `register` line in the package's `__init__`.

Most algorithms train on their last rollout alone (`make_batch`). One that learns from every iteration's samples
(DITTO) keeps them in a `Memory` instead (`make_memory`), which says what every iteration samples, takes each
rollout in, draws the updates' mini-batches, and is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from ml_collections import ConfigDict

from alignjax.config_errors import ConfigError
from alignjax.data import FORMATS
from alignjax.rl.prompts import Prompts
from alignjax.rl.rollout import Rollout, RolloutWorker
from alignjax.rl.steps import MakeStep

# (rollout, rl.algorithm section, current KL coefficient, the iteration's host generator) -> (batch, counts)
MakeBatch = Callable[[Rollout, ConfigDict, float, np.random.Generator], tuple[dict[str, np.ndarray], dict[str, int]]]
SAMPLERS = ("policy", "reference")  # the models an algorithm can sample its rollouts from


class Memory(Protocol):
    """What an algorithm that trains on more than its last rollout keeps between iterations."""

    prompts: Prompts  # what every iteration samples

    def add(self, iteration: int, rollout: Rollout, sampling_params) -> None:
        """Takes in iteration `iteration`'s rollout, sampled with `sampling_params`."""

    def minibatches(self, count: int, rng: np.random.Generator) -> tuple[list[dict[str, np.ndarray]], dict[str, int]]:
        """The iteration's `count` update batches, in order, and counts to log."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps (JSON-serialisable)."""

    def load_state_dict(self, state: dict) -> None:
        """Restores what `state_dict` returned."""


# (config, tokenizer, the run's rollout worker) -> the run's memory
MakeMemory = Callable[[ConfigDict, Any, RolloutWorker], Memory]


def _no_check(config: ConfigDict) -> None:
    """An algorithm without value checks of its own."""


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """Everything that sets an on-policy algorithm apart.

    Attributes:
      name: what `rl.algorithm.name` selects it by.
      defaults: its hyperparameters with their defaults: the fields of `rl.algorithm` besides `name`.
      make_batch: `(rollout, algorithm_config, kl_coef, rng) -> (batch, counts)`: the rollout as the batch its
        step trains on (host arrays of fixed shapes sharing their first axis, `group_size` consecutive entries per
        prompt) and counts to log (e.g. how many pairs were valid). `algorithm_config` is the `rl.algorithm`
        section, `kl_coef` the current KL coefficient (for a KL penalty in the reward), `rng` the iteration's host
        generator, which afterwards shuffles the mini-batches. None for an algorithm with a memory.
      make_memory: `(config, tokenizer, worker) -> memory` for an algorithm that trains on every iteration's
        samples (then `make_batch` is None): the memory chooses the prompts, and each iteration's `rl.minibatches`
        updates train on the batches it draws (`rl.epochs` is 1).
      rows_per_update: `(rl) -> rows` of each update's batch, for an algorithm with a memory (which sizes its
        batches itself); None: the rollout's batch split into `rl.minibatches`.
      make_step: `(config, policy, critic, group_size) -> step`, the jitted update on one mini-batch (`rl.steps`).
      loss_format: None for the policy-gradient family, whose objective is set in `rl.algorithm` (the config has
        no `loss` section); else the example format (one of `data.FORMATS`: "sft", "pairs") that the offline
        loss `config.loss` must train on.
      has_critic: whether a value model trains beside the policy (its `rl.algorithm` then has `critic_path` and
        `critic_lr`, and rollouts carry the value model's estimates).
      samples_from: "policy", or "reference" for an algorithm that samples from the frozen reference; the loop
        then logs no rollout KL (the samples cannot drift).
      min_samples_per_prompt: the fewest answers per prompt it can compare (`rl.samples_per_prompt`).
      check: `check(config)` raises ConfigError naming an invalid value of its own hyperparameters.
    """

    name: str
    defaults: Mapping[str, Any]
    make_batch: MakeBatch | None
    make_step: MakeStep
    loss_format: str | None = None
    has_critic: bool = False
    samples_from: str = "policy"
    min_samples_per_prompt: int = 1
    check: Callable[[ConfigDict], None] = _no_check
    make_memory: MakeMemory | None = None
    rows_per_update: Callable[[ConfigDict], int] | None = None

    def group_size(self, rl: ConfigDict) -> int:
        """Entries per prompt in its update batch: all k answers for a policy-gradient update, else one (an SFT
        row, or a pair as one [2, L] entry)."""
        return rl.samples_per_prompt if self.loss_format is None else 1


_ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> None:
    """Makes `algorithm` selectable as `rl.algorithm.name=algorithm.name`."""
    name = algorithm.name
    if name in _ALGORITHMS:
        raise ValueError(f"RL algorithm {name!r} is already registered")
    if algorithm.samples_from not in SAMPLERS:
        raise ValueError(f"RL algorithm {name!r}: samples_from must be one of {SAMPLERS}")
    if algorithm.loss_format not in (None, *FORMATS):
        raise ValueError(f"RL algorithm {name!r}: loss_format must be None or one of {FORMATS}")
    if (algorithm.make_batch is None) == (algorithm.make_memory is None):
        raise ValueError(f"RL algorithm {name!r}: give make_batch or make_memory, not both or neither")
    if (algorithm.make_memory is None) != (algorithm.rows_per_update is None):
        raise ValueError(f"RL algorithm {name!r}: an algorithm with a memory says its rows_per_update (and no other)")
    if "name" in algorithm.defaults:
        raise ValueError(f"RL algorithm {name!r}: 'name' is not a hyperparameter")
    _ALGORITHMS[name] = algorithm


def get(name: str) -> Algorithm:
    """The registered algorithm called `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in _ALGORITHMS:
        raise ConfigError(f"rl.algorithm.name must be one of {names()}, got {name!r}")
    return _ALGORITHMS[name]


def names() -> tuple[str, ...]:
    """The registered algorithms' names, in the order they were registered."""
    return tuple(_ALGORITHMS)
