"""The clipped surrogate objectives of PPO (Schulman et al., 2017), shared by PPO, RLOO and GRPO.

Both work per response token and return a `LossOutput` whose total is summed over the tokens under `mask_NT`
and whose weight is their count, so a mini-batch's loss is the mean over its response tokens (the token-level
normalisation of TRL's PPO and DAPO, under which a long answer weighs as much per token as a short one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses.registry import LossOutput


def clipped_policy_loss(
    logps_NT: jax.Array,
    old_logps_NT: jax.Array,
    advantages_NT: jax.Array,
    mask_NT: jax.Array,
    *,
    clip_eps: float,
) -> LossOutput:
    """PPO's clipped policy objective, to minimise:

        ratio_t = exp(logp_t - old_logp_t)
        loss_t = -min(ratio_t * A_t, clip(ratio_t, 1 - eps, 1 + eps) * A_t)

    Args:
      logps_NT: log-probs of the sampled tokens under the policy being trained.
      old_logps_NT: the same under the policy that sampled them (constants).
      advantages_NT: per-token advantages (constants).
      mask_NT: 1 on response tokens, 0 after a response's end.
      clip_eps: the clipping range eps.

    Returns:
      The summed loss over response tokens and their count; metrics (sums over tokens) `clip_fraction` (tokens
      whose ratio left [1 - eps, 1 + eps] in the direction the advantage pushes) and `approx_kl` (the k3 estimate
      of KL(old || new), Schulman's "approx KL" diagnostic).
    """
    mask_NT = mask_NT.astype(jnp.float32)
    log_ratio_NT = logps_NT - old_logps_NT
    ratio_NT = jnp.exp(log_ratio_NT)
    unclipped_NT = ratio_NT * advantages_NT
    clipped_NT = jnp.clip(ratio_NT, 1.0 - clip_eps, 1.0 + clip_eps) * advantages_NT
    loss_NT = -jnp.minimum(unclipped_NT, clipped_NT)
    was_clipped_NT = (clipped_NT < unclipped_NT).astype(jnp.float32)
    approx_kl_NT = (ratio_NT - 1.0) - log_ratio_NT
    return LossOutput(
        total=jnp.sum(loss_NT * mask_NT),
        weight=jnp.sum(mask_NT),
        metrics={
            "clip_fraction": jnp.sum(was_clipped_NT * mask_NT),
            "approx_kl": jnp.sum(jax.lax.stop_gradient(approx_kl_NT) * mask_NT),
        },
    )


def clipped_value_loss(
    values_NT: jax.Array,
    old_values_NT: jax.Array,
    returns_NT: jax.Array,
    mask_NT: jax.Array,
    *,
    clip_eps: float,
) -> LossOutput:
    """PPO's clipped value objective (as in OpenAI baselines and TRL), to minimise:

        v_clipped_t = old_v_t + clip(v_t - old_v_t, -eps, eps)
        loss_t = 1/2 * max((v_t - R_t)^2, (v_clipped_t - R_t)^2)

    Args:
      values_NT: the value model's predictions for the states before each response token.
      old_values_NT: its predictions when the rollout was scored (constants).
      returns_NT: the regression targets, advantages + old values (constants).
      mask_NT: 1 on response tokens.
      clip_eps: how far a prediction may move from its old value before the clipped term takes over.

    Returns:
      The summed loss over response tokens and their count; metric `value_clip_fraction`.
    """
    mask_NT = mask_NT.astype(jnp.float32)
    clipped_NT = old_values_NT + jnp.clip(values_NT - old_values_NT, -clip_eps, clip_eps)
    unclipped_loss_NT = jnp.square(values_NT - returns_NT)
    clipped_loss_NT = jnp.square(clipped_NT - returns_NT)
    loss_NT = 0.5 * jnp.maximum(unclipped_loss_NT, clipped_loss_NT)
    was_clipped_NT = (clipped_loss_NT > unclipped_loss_NT).astype(jnp.float32)
    return LossOutput(
        total=jnp.sum(loss_NT * mask_NT),
        weight=jnp.sum(mask_NT),
        metrics={"value_clip_fraction": jnp.sum(was_clipped_NT * mask_NT)},
    )
