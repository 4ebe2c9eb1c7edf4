"""PRO (Song et al. 2024, "Preference Ranking Optimization for Human Alignment", AAAI; arXiv 2023).

PRO extends the Bradley-Terry pair likelihood to a whole ranking (Plackett-Luce): with the valid responses in
score order y^1 > y^2 > ... > y^n, each y^k should be the most likely among itself and the responses ranked below
it. Rewards are length-normalised log-likelihoods r(y) = log pi(y) / |y|, and each comparison is sharpened by how
far apart the scores s are (the paper's reward-gap temperatures):

    L_PRO = -sum_{k=1}^{n-1} log [ exp(r(y^k) / T_k^k) / sum_{i=k}^{n} exp(r(y^i) / T_k^i) ]
    T_k^i = 1 / (s^k - s^i) for i > k,     T_k^k = min_{i>k} T_k^i
    L = L_PRO - sft_weight log pi(y^1) / |y^1|

The last term (weighted by the paper's beta) is the token-mean NLL of the best response, keeping the policy
fluent.

Ties: responses with equal scores are ordered by index (as a stable sort would), and every gap s^k - s^i is
floored at `min_score_gap`, so a tie gives T = 1 / min_score_gap rather than a division by zero: the tied
response enters y^k's denominator with the logit r * min_score_gap, close to 0, a near-constant term that
pushes neither response up or down.
Padding responses (valid_BK = 0) take no part. The implicit reward logged in the `rewards/*` metrics is r.
"""

import jax
import jax.numpy as jnp

from alignjax.losses.preference import best_index_B, per_token_BK, preference_output, take_B
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def _ranks_above_BKK(r: Responses) -> jax.Array:
    """True at [b, k, i] where valid response k precedes valid response i in row b's ranking (ties by index)."""
    valid_BK = r.valid_BK > 0
    s_BK1, s_B1K = r.scores_BK[:, :, None], r.scores_BK[:, None, :]
    K = r.scores_BK.shape[-1]
    by_index_KK = jnp.arange(K)[:, None] < jnp.arange(K)[None, :]
    above_BKK = (s_BK1 > s_B1K) | ((s_BK1 == s_B1K) & by_index_KK)
    return above_BKK & valid_BK[:, :, None] & valid_BK[:, None, :]


def pro_loss(r: Responses, *, sft_weight: float = 0.05, min_score_gap: float = 1e-3) -> LossOutput:
    """PRO's ranking loss over each prompt's valid responses plus the best response's token-mean NLL.

    Args:
      r: K ranked responses per prompt with their scores; `valid_BK` marks those that exist.
      sft_weight: beta, the weight of the best response's token-mean NLL.
      min_score_gap: the floor on score gaps s^k - s^i, so that tied scores give a finite temperature.

    Returns:
      the summed per-prompt loss, the number of prompts, and the preference metrics.
    """
    rewards_BK = per_token_BK(r.logps_BK, r)
    # Step k of the sum is anchored at response k; its negatives are the responses ranked below it.
    negatives_BKK = _ranks_above_BKK(r)
    # 1 / T_k^i: the score gaps from anchor k to each response i, and 1 / T_k^k their largest.
    gaps_BKK = jnp.maximum(r.scores_BK[:, :, None] - r.scores_BK[:, None, :], min_score_gap)
    anchor_gap_BK = jnp.max(jnp.where(negatives_BKK, gaps_BKK, min_score_gap), axis=-1)
    anchor_BK = rewards_BK * anchor_gap_BK
    negative_logits_BKK = jnp.where(negatives_BKK, rewards_BK[:, None, :] * gaps_BKK, -jnp.inf)
    # The anchor is finite, so the log-sum-exp (and its gradient) is too, even where k has no negatives.
    denominator_BK = jax.nn.logsumexp(jnp.concatenate([anchor_BK[:, :, None], negative_logits_BKK], -1), axis=-1)
    # The last-ranked response (and any padding response) has no negatives: it anchors no step.
    has_negatives_BK = jnp.any(negatives_BKK, axis=-1)
    ranking_B = jnp.sum(jnp.where(has_negatives_BK, denominator_BK - anchor_BK, 0.0), axis=-1)
    loss_B = ranking_B - sft_weight * take_B(rewards_BK, best_index_B(r))
    return preference_output(loss_B, rewards_BK, r)
