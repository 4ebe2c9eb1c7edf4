"""The Bradley-Terry reward model loss (Stiennon et al. 2020; Ouyang et al. 2022, InstructGPT).

A reward model r(x, y) is fitted to preferences under the Bradley-Terry model P(y_i > y_j) = sigmoid(r_i - r_j),
by maximum likelihood over every ordered pair of a prompt's responses:

    L = mean_{i, j: s_i > s_j} -log sigmoid(r_i - r_j) + c (sum_k r_k)^2

InstructGPT ranks K responses per prompt and takes all K(K-1)/2 pairs as one example, normalised by the number
of pairs so that prompts with many responses do not dominate; for a pair this is -log sigmoid(r_w - r_l).
The optional second term (Eisenstein et al. 2023, "Helping or Herding?"; TRL's center_rewards_coefficient)
pushes each prompt's rewards to sum to zero: Bradley-Terry only fixes reward differences, and centred rewards
are comparable across prompts and reward models. For a pair it is TRL's c (r_w + r_l)^2.
"""

import jax
import jax.numpy as jnp

from alignjax.losses.preference import num_rows, reward_metrics, row_sum, score_order_BKK
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def bradley_terry_loss(r: Responses, *, center_weight: float = 0.0) -> LossOutput:
    """The mean Bradley-Terry negative log-likelihood over each prompt's score-ordered pairs.

    Args:
      r: responses whose `logps_BK` hold the reward model's scalar rewards, with their scores and validity.
      center_weight: c, the weight of the squared sum of each prompt's rewards.

    Returns:
      the summed per-prompt loss, the number of prompts, and `rewards/chosen`, `rewards/rejected`,
      `rewards/margin` and `rewards/accuracy` (the fraction of ordered pairs the reward model orders correctly).
    """
    rewards_BK = r.logps_BK
    order_BKK = score_order_BKK(r)
    nll_BKK = -jax.nn.log_sigmoid(rewards_BK[:, :, None] - rewards_BK[:, None, :])
    pair_nll_B = jnp.sum(order_BKK * nll_BKK, axis=(1, 2)) / jnp.maximum(jnp.sum(order_BKK, axis=(1, 2)), 1.0)
    reward_sum_B = jnp.sum(jnp.where(r.valid_BK > 0, rewards_BK, 0.0), axis=-1)
    loss_B = pair_nll_B + center_weight * reward_sum_B**2
    return LossOutput(total=row_sum(loss_B, r), weight=num_rows(r), metrics=reward_metrics(rewards_BK, r))
