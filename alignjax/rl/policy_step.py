"""The jitted PPO-family updates on one mini-batch of rollout rows: the policy's, and the value model's.

`policy_step(state, batch)` minimises the clipped surrogate (PPO, RLOO and GRPO share it; they differ in their
advantages) plus, for GRPO, a KL term to the reference inside the loss. `value_step(state, batch)` regresses
PPO's value model on the GAE returns with the clipped value loss. Both are pure functions of a `TrainState` and
a batch of fixed shapes, jitted once with explicit shardings and the incoming state donated, like the offline
train step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from alignjax import sharding
from alignjax.losses.kl import kl_per_token
from alignjax.losses.policy_gradient import clipped_policy_loss, clipped_value_loss
from alignjax.rl.rollout import response_logps, response_values
from alignjax.train.trainee import TrainState

POLICY_KEYS = ("tokens", "positions", "segment_ids", "mask_NT", "old_logps_NT", "advantages_NT", "ref_logps_NT")
VALUE_KEYS = ("tokens", "positions", "segment_ids", "mask_NT", "old_values_NT", "returns_NT")


def _update(state: TrainState, grads, optimizer, schedule, loss, weight, metrics) -> tuple[TrainState, dict]:
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    metrics = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
        **{name: value / jnp.maximum(weight, 1.0) for name, value in metrics.items()},
    }
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def policy_step(
    state: TrainState,
    batch: dict,
    *,
    graphdef,
    optimizer,
    schedule,
    prompt_len,
    group_size,
    clip_eps,
    kl_coef,
    kl_estimator,
) -> tuple[TrainState, dict]:
    """One optimizer step of the policy on `batch` (see `POLICY_KEYS`); the loss is a mean over answer tokens.

    The batch's rows come in groups of `group_size` answers to one prompt, whose prompt runs once per group
    (`response_logps`). With `kl_coef > 0` the loss adds kl_coef * KL per token (estimated with `kl_estimator`
    from the current and the reference log-probs), GRPO's way of staying near the reference; PPO and RLOO put
    the KL in the reward.
    """

    def objective(params):
        logps_NT = response_logps(params, batch, graphdef=graphdef, prompt_len=prompt_len, group_size=group_size)
        out = clipped_policy_loss(
            logps_NT, batch["old_logps_NT"], batch["advantages_NT"], batch["mask_NT"], clip_eps=clip_eps
        )
        total, metrics = out.total, dict(out.metrics)
        if kl_coef:
            kl_sum = jnp.sum(kl_per_token(logps_NT, batch["ref_logps_NT"], kl_estimator) * batch["mask_NT"])
            total, metrics["kl_per_token"] = total + kl_coef * kl_sum, jax.lax.stop_gradient(kl_sum)
        return total / jnp.maximum(out.weight, 1.0), (out.weight, metrics)

    (loss, (weight, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    return _update(state, grads, optimizer, schedule, loss, weight, metrics)


def value_step(state: TrainState, batch: dict, *, graphdef, optimizer, schedule, prompt_len, group_size, clip_eps):
    """One optimizer step of the value model on `batch` (see `VALUE_KEYS`, rows grouped as for `policy_step`),
    mean clipped loss over answer tokens."""

    def objective(params):
        values_NT = response_values(params, batch, graphdef=graphdef, prompt_len=prompt_len, group_size=group_size)
        out = clipped_value_loss(
            values_NT, batch["old_values_NT"], batch["returns_NT"], batch["mask_NT"], clip_eps=clip_eps
        )
        return out.total / jnp.maximum(out.weight, 1.0), (out.weight, out.metrics)

    (loss, (weight, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    state, metrics = _update(state, grads, optimizer, schedule, loss, weight, metrics)
    return state, {f"value/{name}": value for name, value in metrics.items()}


def _jit(step, state_shardings, mesh, **bound):
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        functools.partial(step, **bound),
        in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
        out_shardings=(state_shardings, replicated),
        donate_argnames="state",
    )


def jit_policy_step(
    graphdef, optimizer, schedule, state_shardings, mesh, *, prompt_len, group_size, clip_eps, kl_coef, kl_estimator
):
    """`policy_step` compiled for the mesh, everything but the state and the batch bound."""
    return _jit(
        policy_step, state_shardings, mesh, graphdef=graphdef, optimizer=optimizer, schedule=schedule,
        prompt_len=prompt_len, group_size=group_size, clip_eps=clip_eps, kl_coef=kl_coef, kl_estimator=kl_estimator,
    )


def jit_value_step(graphdef, optimizer, schedule, state_shardings, mesh, *, prompt_len, group_size, clip_eps):
    """`value_step` compiled for the mesh."""
    return _jit(
        value_step, state_shardings, mesh, graphdef=graphdef, optimizer=optimizer, schedule=schedule,
        prompt_len=prompt_len, group_size=group_size, clip_eps=clip_eps,
    )
