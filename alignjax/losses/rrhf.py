"""RRHF (Yuan et al. 2023, "RRHF: Rank Responses to Align Language Models with Human Feedback Without Tears").

RRHF aligns the policy's length-normalised log-likelihoods of several responses with their ranking by a hinge on
every mis-ordered pair, and keeps a cross-entropy term on the best response:

    p_i = log pi(y_i) / |y_i|
    L = sum_{i, j: s_i < s_j} max(0, p_i - p_j) - lambda log pi(y_best)

with s the responses' scores, log pi the summed log-prob and y_best the highest-scored response (the paper's
L_ft is its summed negative log-likelihood). Only valid responses take part. The implicit reward logged in the
`rewards/*` metrics is p, the quantity the ranking term orders.
"""

import jax
import jax.numpy as jnp

from alignjax.losses.preference import best_index_B, per_token_BK, preference_output, score_order_BKK, take_B
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def rrhf_loss(r: Responses, *, reg_weight: float = 1.0) -> LossOutput:
    """RRHF's ranking hinge over all score-ordered pairs plus the best response's negative log-likelihood.

    Args:
      r: K ranked responses per prompt with their scores; `valid_BK` marks those that exist.
      reg_weight: lambda, the weight of the best response's summed NLL.

    Returns:
      the summed per-prompt loss, the number of prompts, and the preference metrics.
    """
    p_BK = per_token_BK(r.logps_BK, r)
    # order_BKK[b, i, j] = 1 where s_i > s_j: the pair is penalised when the worse response j has the higher p.
    order_BKK = score_order_BKK(r)
    rank_B = jnp.sum(order_BKK * jax.nn.relu(p_BK[:, None, :] - p_BK[:, :, None]), axis=(1, 2))
    loss_B = rank_B - reg_weight * take_B(r.logps_BK, best_index_B(r))
    return preference_output(loss_B, p_BK, r)
