"""The KL penalty to the frozen reference: per-token estimators and the adaptive coefficient.

The policy's KL to the reference over a sampled answer is estimated token by token from the two log-probs of
the sampled tokens (Schulman, "Approximating KL divergence", 2020), with log_ratio = logp - ref_logp:

- k1 = log_ratio: unbiased, but negative on some tokens (the classic RLHF penalty of Ziegler et al. 2019).
- k3 = exp(-log_ratio) - 1 + log_ratio: unbiased and never negative (GRPO's choice), lower variance when the
  two policies are close.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

KL_ESTIMATORS = ("k1", "k3")


def kl_per_token(logps_NT: jax.Array, ref_logps_NT: jax.Array, estimator: str) -> jax.Array:
    """The estimate of KL(policy || reference) carried by each sampled token (see the module docstring)."""
    log_ratio_NT = logps_NT - ref_logps_NT
    if estimator == "k1":
        return log_ratio_NT
    if estimator == "k3":
        return jnp.expm1(-log_ratio_NT) + log_ratio_NT
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


class AdaptiveKLController:
    """The KL coefficient, fixed or steered towards a target KL (Ziegler et al. 2019, section 2.2).

    After each rollout whose mean KL per answer is `kl`, an adaptive controller sets

        error = clip(kl / target - 1, -0.2, 0.2)
        coef <- coef * (1 + error * n / horizon)

    with n the rollout's number of answers: the coefficient grows while the policy drifts beyond the target and
    shrinks while it stays within. With `target=0` the coefficient stays fixed.
    """

    def __init__(self, coef: float, target: float = 0.0, horizon: float = 10000.0):
        self.coef, self.target, self.horizon = float(coef), float(target), float(horizon)

    def update(self, kl: float, num_answers: int) -> None:
        if self.target > 0:
            error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
            self.coef *= 1.0 + error * num_answers / self.horizon
