"""SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward").

SimPO replaces DPO's reference log-ratio with the policy's average log-likelihood, the quantity that generation
ranks by, and asks the chosen response to win by a target margin gamma:

    L = -log sigmoid(beta log pi(y_w) / |y_w| - beta log pi(y_l) / |y_l| - gamma),   gamma = ratio * beta

Averaging over tokens removes the length bias of summed log-probs, and no reference model is needed. The implicit
reward logged in the `rewards/*` metrics is beta log pi(y) / |y|.
"""

import jax

from alignjax.losses.preference import per_token_BK, preference_output
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def simpo_loss(r: Responses, *, beta: float = 2.0, gamma_beta_ratio: float = 0.5) -> LossOutput:
    """SimPO's sigmoid loss on the length-normalised reward margin.

    Args:
      r: pairs (response 0 chosen, 1 rejected); no reference is needed.
      beta: the reward scale.
      gamma_beta_ratio: gamma / beta, the target margin in per-token log-likelihood (the paper's tuned setting
        is a ratio, so that gamma follows beta).

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics.
    """
    rewards_BK = beta * per_token_BK(r.logps_BK, r)
    loss_B = -jax.nn.log_sigmoid(rewards_BK[:, 0] - rewards_BK[:, 1] - gamma_beta_ratio * beta)
    return preference_output(loss_B, rewards_BK, r)
