"""KL(policy || reference): exactly over the vocabulary at each position, or estimated from sampled tokens.

- `exact_kl`: sum_v p(v) (log p(v) - log q(v)) at every position, from both models' logits. It measures how far the
  policy moved on given contexts without sampling noise (held-out evaluation, offline preference metrics), at the
  price of two vocabulary-wide softmaxes.
- `kl_per_token`: the estimate carried by each sampled token from the two log-probs of that token alone (Schulman,
  "Approximating KL divergence", 2020), with log_ratio = logp - ref_logp: k1 = log_ratio (unbiased, negative on
  some tokens; the classic RLHF penalty of Ziegler et al. 2019) or k3 = exp(-log_ratio) - 1 + log_ratio (unbiased,
  never negative, lower variance when the two policies are close; GRPO's choice).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KL_ESTIMATORS = ("k1", "k3")


def exact_kl(logits: jax.Array, ref_logits: jax.Array) -> jax.Array:
    """KL(softmax(logits) || softmax(ref_logits)) over the vocabulary (the last axis), in float32: [..., V] -> [...]."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    ref_logp = jax.nn.log_softmax(ref_logits.astype(jnp.float32), axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - ref_logp), axis=-1)


def kl_per_token(logps_NT: jax.Array, ref_logps_NT: jax.Array, estimator: str) -> jax.Array:
    """The estimate of KL(policy || reference) carried by each sampled token (see the module docstring)."""
    log_ratio_NT = logps_NT - ref_logps_NT
    if estimator == "k1":
        return log_ratio_NT
    if estimator == "k3":
        return jnp.expm1(-log_ratio_NT) + log_ratio_NT
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")
