"""Advantages: how much better than expected each sampled answer (or token) turned out.

- `gae`: PPO's per-token generalised advantage estimation from a value model (Schulman et al., 2016).
- `rloo_advantages`: REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024): each of k answers to a
  prompt is compared with the mean reward of the other k - 1.
- `grpo_advantages`: GRPO's group-normalised rewards (Shao et al. 2024): each answer's reward minus its group's
  mean, divided by the group's standard deviation.

All are pure array functions, jitted by their callers, with padding masked out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean of `x` over the entries where `mask` is 1 (0 when there are none)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def whiten(x: jax.Array, mask: jax.Array, shift_mean: bool = True) -> jax.Array:
    """`x` standardised over the masked entries (unbiased variance, as TRL's `masked_whiten`); 0 elsewhere.

    With `shift_mean=False` only the scale changes, which keeps the sign of every entry.
    """
    mean = masked_mean(x, mask)
    count = jnp.maximum(jnp.sum(mask), 2.0)
    variance = masked_mean(jnp.square(x - mean), mask) * count / (count - 1.0)
    whitened = (x - mean) * jax.lax.rsqrt(variance + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def gae(
    rewards_NT: jax.Array, values_NT: jax.Array, mask_NT: jax.Array, *, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates and returns for each response token.

        delta_t = r_t + gamma * V_{t+1} - V_t        (V after the answer's last token is 0)
        A_t = delta_t + gamma * lam * A_{t+1}
        R_t = A_t + V_t

    Args:
      rewards_NT: per-token rewards (the KL penalty on every token, the score added on the last one).
      values_NT: the value model's estimate for the state before each token.
      mask_NT: 1 on response tokens; the answer ends at its last 1 (rows are contiguous from t = 0).

    Returns:
      advantages_NT and returns_NT, 0 after each answer's end.
    """
    mask_NT = mask_NT.astype(jnp.float32)
    rewards_NT, values_NT = rewards_NT * mask_NT, values_NT * mask_NT
    next_values_NT = jnp.pad(values_NT[:, 1:], ((0, 0), (0, 1)))
    deltas_NT = rewards_NT + gamma * next_values_NT - values_NT

    def backward(next_advantage_N, delta_and_mask):
        delta_N, mask_N = delta_and_mask
        advantage_N = (delta_N + gamma * lam * next_advantage_N) * mask_N
        return advantage_N, advantage_N

    _, advantages_TN = jax.lax.scan(
        backward, jnp.zeros(rewards_NT.shape[:1]), (deltas_NT.T, mask_NT.T), reverse=True
    )
    advantages_NT = advantages_TN.T
    return advantages_NT, (advantages_NT + values_NT) * mask_NT


def rloo_advantages(rewards_BK: jax.Array) -> jax.Array:
    """Each answer's reward minus the mean reward of the other answers to the same prompt, [B, K] (K >= 2).

        A_i = r_i - 1/(K-1) * sum_{j != i} r_j
    """
    K = rewards_BK.shape[1]
    others_mean_BK = (jnp.sum(rewards_BK, axis=1, keepdims=True) - rewards_BK) / (K - 1)
    return rewards_BK - others_mean_BK


def grpo_advantages(rewards_BK: jax.Array, scale: bool = True, eps: float = 1e-4) -> jax.Array:
    """Group-normalised rewards, [B, K]:  A_i = (r_i - mean(r)) / (std(r) + eps).

    The standard deviation is the unbiased one over the group, as in TRL. With `scale=False` only the mean is
    removed (Dr. GRPO, Liu et al. 2025: scaling by the std over-weights groups that are nearly all right or wrong).
    """
    centred_BK = rewards_BK - jnp.mean(rewards_BK, axis=1, keepdims=True)
    if not scale:
        return centred_BK
    return centred_BK / (jnp.std(rewards_BK, axis=1, keepdims=True, ddof=1) + eps)
