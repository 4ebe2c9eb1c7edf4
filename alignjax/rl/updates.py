"""What an on-policy iteration trains: the updates of each algorithm on its rollout, and their jitted steps.

- PPO, RLOO, GRPO: `rl.epochs` passes over the rollout in `rl.minibatches` shuffled mini-batches of the clipped
  surrogate (`policy_step`), each holding whole groups of answers to a prompt, so that the prompt runs once per
  group; PPO also fits its value model on each mini-batch (`value_step`).
- Expert iteration: SFT on each prompt's best answer; online DPO and RSO: a preference loss (`config.loss`) on
  pairs of answers. These run the offline train step (`train.step.train_step`) with the reference's log-probs
  taken from the rollout, so the reference model never runs inside the step.

Every mini-batch has the same shape, so each step compiles once for the whole run. Metrics stay on device until
the iteration ends and are then averaged over its updates.
"""

from __future__ import annotations

import jax
import numpy as np

from alignjax import losses, sharding
from alignjax.rl.batches import best_answer_batch, best_worst_pairs, pair_batch, policy_gradient_batch
from alignjax.rl.policy_step import POLICY_KEYS, VALUE_KEYS, jit_policy_step, jit_value_step
from alignjax.rl.rollout import Rollout
from alignjax.rl.rso import rso_pairs
from alignjax.train.step import DEVICE_KEYS, jit_train_step

POLICY_GRADIENT = ("ppo", "rloo", "grpo")
PAIRWISE = ("online_dpo", "rso")
ALGORITHMS = POLICY_GRADIENT + ("expert_iteration",) + PAIRWISE


def _minibatches(batch: dict[str, np.ndarray], count: int, group_size: int, rng: np.random.Generator):
    """`count` mini-batches of a shuffled copy of `batch` (all arrays share their first axis), which is shuffled
    and split by groups of `group_size` consecutive rows, so that each group's rows stay together, in order."""
    rows = len(next(iter(batch.values())))
    assert rows % group_size == 0, f"{rows} rows do not split into groups of {group_size}"
    groups = rows // group_size
    order = (rng.permutation(groups)[:, None] * group_size + np.arange(group_size)).reshape(-1)
    for part in np.split(order, count):
        yield {k: v[part] for k, v in batch.items()}


def _put(batch: dict[str, np.ndarray], keys, mesh) -> dict:
    placement = sharding.batch_sharding(mesh)
    return {k: sharding.put_sharded(v, placement) for k, v in batch.items() if k in keys}


def _mean_metrics(metrics: list[dict]) -> dict[str, float]:
    fetched = jax.device_get(metrics)
    return {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}


class Updater:
    """Builds the jitted steps an algorithm needs and applies one iteration's updates with them.

    Args:
      config: the experiment config (`rl`, `loss`, `optim` sections).
      graphdef: the policy's structure; optimizer, schedule, shardings: the policy's train state's.
      mesh: the device mesh.
      critic: for PPO, (graphdef, optimizer, schedule, shardings) of the value model's train state.
    """

    def __init__(self, config, graphdef, optimizer, schedule, shardings, mesh, critic=None):
        self.rl, self.algorithm, self.mesh = config.rl, config.rl.algorithm, mesh
        name, prompt_len = self.algorithm.name, config.rl.max_prompt_len
        # the update's rows per prompt: a policy-gradient batch holds all k answers, the others one row or pair
        self.group_size = config.rl.samples_per_prompt if name in POLICY_GRADIENT else 1
        # The steps run each group's prompt once when every data-parallel device holds whole groups of a mini-batch;
        # otherwise groups would straddle devices, and gathering their prompts would cost more than it saves.
        whole_groups = config.rl.prompts_per_iteration % (self.rl.minibatches * sharding.data_parallel_size(mesh)) == 0
        step_group_size = self.group_size if whole_groups else 1
        if name in POLICY_GRADIENT:
            self.policy_step = jit_policy_step(
                graphdef, optimizer, schedule, shardings, mesh, prompt_len=prompt_len, group_size=step_group_size,
                clip_eps=self.algorithm.clip_eps,
                kl_coef=self.algorithm.kl_coef if name == "grpo" else 0.0,
                kl_estimator=self.algorithm.kl_estimator,
            )
        else:
            objective = losses.objective(config.loss.name)
            self.train_step = jit_train_step(
                graphdef, objective, losses.bind(config.loss), optimizer, schedule, config.optim.grad_accum,
                shardings, mesh,
            )
        if name == "ppo":
            critic_graphdef, critic_optimizer, critic_schedule, critic_shardings = critic
            self.value_step = jit_value_step(
                critic_graphdef, critic_optimizer, critic_schedule, critic_shardings, mesh,
                prompt_len=prompt_len, group_size=step_group_size, clip_eps=self.algorithm.value_clip_eps,
            )

    def __call__(self, states: dict, rollout: Rollout, kl_coef: float, rng: np.random.Generator):
        """Trains on `rollout`; returns the new states ({"policy", and "critic" for PPO}) and the iteration's mean
        update metrics."""
        state, critic_state = states["policy"], states.get("critic")
        name = self.algorithm.name
        metrics, counts = [], {}
        if name in POLICY_GRADIENT:
            prompt_index_GK = rollout.prompt_index_N.reshape(-1, self.group_size)
            assert np.all(prompt_index_GK == prompt_index_GK[:, :1]), "a group's rows must answer one prompt"
            batch = policy_gradient_batch(rollout, self.algorithm, kl_coef)
        elif name == "expert_iteration":
            batch, counts["kept_prompts"] = best_answer_batch(rollout, self.algorithm.min_reward)
        else:
            B, K = rollout.num_prompts, rollout.samples_per_prompt
            rewards_BK = rollout.rewards_N.reshape(B, K)
            chosen_B, rejected_B = (
                best_worst_pairs(rollout) if name == "online_dpo" else rso_pairs(rewards_BK, self.algorithm.beta, rng)
            )
            batch, counts["valid_pairs"] = pair_batch(rollout, chosen_B, rejected_B)
        for _ in range(self.rl.epochs):
            for minibatch in _minibatches(batch, self.rl.minibatches, self.group_size, rng):
                if name in POLICY_GRADIENT:
                    state, policy_metrics = self.policy_step(state, _put(minibatch, POLICY_KEYS, self.mesh))
                    if name == "ppo":
                        critic_state, value_metrics = self.value_step(
                            critic_state, _put(minibatch, VALUE_KEYS, self.mesh)
                        )
                        policy_metrics = {**policy_metrics, **value_metrics}
                else:
                    state, policy_metrics = self.train_step(state, _put(minibatch, DEVICE_KEYS, self.mesh), None)
                metrics.append(policy_metrics)
        states = {"policy": state, **({"critic": critic_state} if critic_state is not None else {})}
        return states, {**_mean_metrics(metrics), **counts}
