"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization").

KTO learns from single responses labelled desirable or undesirable, not from pairs. Following Kahneman and
Tversky's value function, each response's implicit reward r = log pi(y) - log ref(y) is judged against a
reference point z0, an estimate of KL(pi || ref) on the prompt:

    z0 = max(0, mean over the batch of [log pi(y') - log ref(y')])      (no gradient)
    L = lambda_D (1 - sigmoid(beta (r - z0)))   for a desirable y
    L = lambda_U (1 - sigmoid(beta (z0 - r)))   for an undesirable y

where y' is a mismatched completion (another example's, paired with this prompt), so that the mean log-ratio
estimates the KL without a sample from pi. In `Responses`, response 0 is the example's completion with
`labels_B`, response 1 the mismatched one. z0 is computed over the micro-batch the loss sees, as in TRL, and
from valid rows whose response 1 exists. lambda_D / lambda_U rebalance unequal numbers of desirable and
undesirable examples (the paper suggests lambda_D n_D / (lambda_U n_U) in [1, 4/3]).
"""

import jax
import jax.numpy as jnp

from alignjax.losses.preference import num_rows, row_sum
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def _kl_estimate(r: Responses) -> jax.Array:
    """z0: the clamped mean log-ratio of the mismatched completions, as a constant."""
    has_mismatched_B = (r.valid_BK[:, 0] > 0) & (r.valid_BK[:, 1] > 0)
    log_ratios_B = r.logps_BK[:, 1] - r.ref_logps_BK[:, 1]
    mean = jnp.sum(jnp.where(has_mismatched_B, log_ratios_B, 0.0)) / jnp.maximum(jnp.sum(has_mismatched_B), 1)
    return jax.lax.stop_gradient(jnp.maximum(mean, 0.0))


def kto_loss(
    r: Responses, *, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0
) -> LossOutput:
    """KTO's loss on each example's completion, relative to the batch's KL estimate.

    Args:
      r: unpaired examples: response 0 the completion, labelled by `labels_B` (1 desirable, 0 undesirable);
        response 1 a mismatched completion for the KL estimate; with the reference's log-probs.
      beta: the implicit reward's scale.
      desirable_weight: lambda_D.
      undesirable_weight: lambda_U.

    Returns:
      the summed per-example loss, the number of examples, and metrics summed over valid rows (the step divides
      them by the number of examples): `rewards/desirable` and `rewards/undesirable`, the implicit reward
      beta (log pi - log ref) of desirable and of undesirable completions (each 0 in rows of the other kind, so
      divide by `fraction/desirable` or its complement for the mean of one kind); `fraction/desirable`; `kl`,
      z0 in every row, so that it reads as z0.
    """
    z0 = _kl_estimate(r)
    reward_B = beta * (r.logps_BK[:, 0] - r.ref_logps_BK[:, 0])
    desirable_B = r.labels_B > 0
    loss_B = jnp.where(
        desirable_B,
        desirable_weight * (1.0 - jax.nn.sigmoid(reward_B - beta * z0)),
        undesirable_weight * (1.0 - jax.nn.sigmoid(beta * z0 - reward_B)),
    )
    rows = num_rows(r)
    return LossOutput(
        total=row_sum(loss_B, r),
        weight=rows,
        metrics={
            "rewards/desirable": row_sum(jnp.where(desirable_B, reward_B, 0.0), r),
            "rewards/undesirable": row_sum(jnp.where(desirable_B, 0.0, reward_B), r),
            "fraction/desirable": row_sum(desirable_B.astype(jnp.float32), r),
            "kl": z0 * rows,
        },
    )
