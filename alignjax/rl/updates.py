"""What an on-policy iteration trains: the algorithm's batch of its rollout, in shuffled mini-batches, with its step.

The algorithm's record (`rl.algorithms`) says how a rollout becomes a batch and which step trains on it; the
updater runs `rl.epochs` passes over the batch in `rl.minibatches` shuffled mini-batches. The batch comes in
groups of `group_size` consecutive entries per prompt (a policy-gradient batch holds all k answers to a prompt,
an offline one a row or a pair), and mini-batches hold whole groups, so that a step can run each group's prompt
once. An algorithm with a memory (DITTO) draws its `rl.minibatches` batches from the memory instead.

Every mini-batch has the same shape, so each step compiles once for the whole run. Metrics stay on device until
the iteration ends and are then averaged over its updates.
"""

from __future__ import annotations

import jax
import numpy as np

from alignjax import sharding
from alignjax.rl import algorithms
from alignjax.rl.rollout import Rollout
from alignjax.train.trainee import Trainee


def _minibatches(batch: dict[str, np.ndarray], count: int, group_size: int, rng: np.random.Generator):
    """`count` mini-batches of a shuffled copy of `batch` (all arrays share their first axis), which is shuffled
    and split by groups of `group_size` consecutive rows, so that each group's rows stay together, in order."""
    rows = len(next(iter(batch.values())))
    assert rows % group_size == 0, f"{rows} rows do not split into groups of {group_size}"
    groups = rows // group_size
    order = (rng.permutation(groups)[:, None] * group_size + np.arange(group_size)).reshape(-1)
    for part in np.split(order, count):
        yield {k: v[part] for k, v in batch.items()}


def _mean_metrics(metrics: list[dict]) -> dict[str, float]:
    fetched = jax.device_get(metrics)
    return {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}


class Updater:
    """Builds the jitted step of `config`'s algorithm and applies one iteration's updates with it.

    Args:
      config: the experiment config (`rl`, and the `loss` and `optim` sections its step reads).
      policy: the policy's trainee (its structure, optimizer and state shardings; the states are passed to calls).
      critic: the value model's trainee, for an algorithm that trains one (`Algorithm.has_critic`).
      memory: the run's memory, for an algorithm that keeps one (`Algorithm.make_memory`): it draws the batches.
    """

    def __init__(self, config, policy: Trainee, critic: Trainee | None = None, memory: algorithms.Memory | None = None):
        self.rl, self.hyperparameters, self.mesh, self.memory = config.rl, config.rl.algorithm, policy.mesh, memory
        self.algorithm = algorithms.get(self.hyperparameters.name)
        self.group_size = self.algorithm.group_size(config.rl)
        # The steps run each group's prompt once when every data-parallel device holds whole groups of a mini-batch;
        # otherwise groups would straddle devices, and gathering their prompts would cost more than it saves.
        split = self.rl.minibatches * sharding.data_parallel_size(self.mesh)
        whole_groups = config.rl.prompts_per_iteration % split == 0
        self.step = self.algorithm.make_step(config, policy, critic, self.group_size if whole_groups else 1)

    def __call__(self, states: dict, rollout: Rollout, kl_coef: float, rng: np.random.Generator):
        """Trains on `rollout`; returns the new states ({"policy", and "critic" with a value model}) and the
        iteration's mean update metrics with the batch's counts.

        Args:
          states: the train states of the models being trained, by name ("policy", "critic").
          rollout: the iteration's scored answers.
          kl_coef: the current KL coefficient (of a KL penalty in the reward).
          rng: the iteration's host generator (pairs an algorithm draws, then the mini-batches' shuffle).
        """
        prompt_index_GK = rollout.prompt_index_N.reshape(-1, rollout.samples_per_prompt)
        assert np.all(prompt_index_GK == prompt_index_GK[:, :1]), "a group's rows must answer one prompt"
        if self.memory is not None:
            minibatches, counts = self.memory.minibatches(self.rl.minibatches, rng)
        else:
            batch, counts = self.algorithm.make_batch(rollout, self.hyperparameters, kl_coef, rng)
            minibatches = (
                minibatch
                for _ in range(self.rl.epochs)
                for minibatch in _minibatches(batch, self.rl.minibatches, self.group_size, rng)
            )
        metrics = []
        for minibatch in minibatches:
            states, step_metrics = self.step(states, minibatch)
            metrics.append(step_metrics)
        return states, {**_mean_metrics(metrics), **counts}
