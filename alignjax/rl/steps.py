"""The update steps an algorithm's record can choose from, each built once per run and applied per mini-batch.

A step takes the states of the models being trained (`{"policy": ..., "critic": ...}`) and one mini-batch of
host arrays, places the batch's arrays that it reads on the mesh, runs its jitted updates, and returns the new
states and the update's metrics (still on device). Two kinds cover the built-in algorithms:

- `policy_gradient_step(kl_in_loss)`: the clipped surrogate (`policy_step`), with the KL to the reference
  either in the loss (GRPO) or left to the reward (PPO, RLOO: kl_coef 0 in the loss); and the value model's
  clipped regression (`value_step`) when the algorithm trains one.
- `offline_step`: the offline train step (`train.step`) with `config.loss`, on SFT rows or preference pairs
  whose reference log-probs come from the rollout, so the reference model never runs inside the step.

Each is jitted once with fixed shapes, so it compiles once for the whole run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ml_collections import ConfigDict

from alignjax import losses, sharding
from alignjax.rl.policy_step import POLICY_KEYS, VALUE_KEYS, jit_policy_step, jit_value_step
from alignjax.train.step import DEVICE_KEYS, jit_train_step
from alignjax.train.trainee import Trainee

# (states, a mini-batch of host arrays) -> (new states, the update's metrics)
Step = Callable[[dict, dict[str, np.ndarray]], tuple[dict, dict]]
# (config, policy, critic or None, group_size) -> Step; group_size: rows per prompt whose prompt may run once
MakeStep = Callable[[ConfigDict, Trainee, "Trainee | None", int], Step]


def policy_gradient_step(kl_in_loss: bool) -> MakeStep:
    """The step builder of the policy-gradient family.

    Its `rl.algorithm` has `clip_eps`, `kl_coef` and `kl_estimator` (and `value_clip_eps` with a value model).

    Args:
      kl_in_loss: True: the loss adds `kl_coef` x the estimated KL to the reference per token (GRPO); False:
        the algorithm's batch puts the KL penalty in the reward, and the loss has none.

    Returns:
      `make_step(config, policy, critic, group_size)`: the policy's step, followed on each mini-batch by the
      value model's when `critic` is given; `group_size` consecutive rows answer one prompt, which then runs once.
    """

    def make_step(config: ConfigDict, policy: Trainee, critic: Trainee | None, group_size: int) -> Step:
        algorithm, prompt_len, mesh = config.rl.algorithm, config.rl.max_prompt_len, policy.mesh
        policy_update = jit_policy_step(
            policy.graphdef, policy.optimizer, policy.schedule, policy.shardings, mesh, prompt_len=prompt_len,
            group_size=group_size, clip_eps=algorithm.clip_eps, kl_coef=algorithm.kl_coef if kl_in_loss else 0.0,
            kl_estimator=algorithm.kl_estimator,
        )
        value_update = None
        if critic is not None:
            value_update = jit_value_step(
                critic.graphdef, critic.optimizer, critic.schedule, critic.shardings, mesh, prompt_len=prompt_len,
                group_size=group_size, clip_eps=algorithm.value_clip_eps,
            )

        def step(states: dict, minibatch: dict[str, np.ndarray]) -> tuple[dict, dict]:
            state, metrics = policy_update(states["policy"], sharding.put_batch(minibatch, mesh, POLICY_KEYS))
            states = {**states, "policy": state}
            if value_update is not None:
                states["critic"], value_metrics = value_update(
                    states["critic"], sharding.put_batch(minibatch, mesh, VALUE_KEYS)
                )
                metrics = {**metrics, **value_metrics}
            return states, metrics

        return step

    return make_step


def offline_step(config: ConfigDict, policy: Trainee, critic: Trainee | None, group_size: int) -> Step:
    """The step builder of algorithms that train with the offline loss `config.loss`, micro-batched by
    `optim.grad_accum`. Each batch entry is one prompt's SFT row or pair (its prompt runs within the entry), so
    `group_size` is unused, and so is `critic`."""
    mesh = policy.mesh
    train_update = jit_train_step(
        policy.graphdef, losses.objective(config.loss.name), losses.bind(config.loss), policy.optimizer,
        policy.schedule, config.optim.grad_accum, policy.shardings, mesh,
    )

    def step(states: dict, minibatch: dict[str, np.ndarray]) -> tuple[dict, dict]:
        state, metrics = train_update(states["policy"], sharding.put_batch(minibatch, mesh, DEVICE_KEYS), None)
        return {**states, "policy": state}, metrics

    return step
