"""The DPO family: losses on the policy's log-ratio to a frozen reference, chosen against rejected.

DPO (Rafailov et al. 2023, "Direct Preference Optimization") shows that the KL-regularised RLHF objective
max E[r] - beta KL(pi || ref) is solved by pi* proportional to ref * exp(r / beta), so that every policy defines
an implicit reward r(x, y) = beta log pi(y|x) / ref(y|x) up to a per-prompt constant. Fitting that reward to the
preferences trains the policy directly, without a reward model or sampling. The losses here are functions of
the implicit reward margin of a pair (response 0 chosen y_w, response 1 rejected y_l):

    Delta = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))

with log pi the summed log-prob of the response. Their implicit reward, logged in the `rewards/*` metrics, is
beta (log pi - log ref); IPO's, like its loss, is per token.
"""

import jax

from alignjax.losses.preference import per_token_BK, preference_output
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def _log_ratios_BK(r: Responses) -> jax.Array:
    return r.logps_BK - r.ref_logps_BK


def _margin_B(x_BK: jax.Array) -> jax.Array:
    """Chosen minus rejected."""
    return x_BK[:, 0] - x_BK[:, 1]


def dpo_loss(
    r: Responses, *, beta: float = 0.1, label_smoothing: float = 0.0, sft_weight: float = 0.0
) -> LossOutput:
    """DPO's sigmoid loss, optionally with conservative label smoothing and an SFT term on the chosen response.

        L = -(1 - eps) log sigmoid(beta Delta) - eps log sigmoid(-beta Delta) - alpha log pi(y_w) / |y_w|

    eps = 0, alpha = 0 is DPO (Rafailov et al. 2023). eps > 0 is conservative DPO (cDPO; Mitchell 2023, "A note
    on DPO with noisy preferences"): the cross-entropy against labels that are flipped with probability eps, whose
    minimum is a finite margin instead of an unbounded one. alpha > 0 adds the chosen response's token-mean
    negative log-likelihood (RPO; Pang et al. 2024, "Iterative Reasoning Preference Optimization", TRL's
    `rpo_alpha`): DPO alone only widens the margin and may lower the chosen response's likelihood with the
    rejected one's; the SFT term holds it up.

    Args:
      r: pairs (response 0 chosen, 1 rejected) with the reference's log-probs.
      beta: the KL coefficient: the implicit reward's scale.
      label_smoothing: eps, the assumed probability that a preference label is flipped.
      sft_weight: alpha, the weight of the chosen response's negative log-likelihood per token.

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics.
    """
    rewards_BK = beta * _log_ratios_BK(r)
    logits_B = _margin_B(rewards_BK)
    loss_B = -(1.0 - label_smoothing) * jax.nn.log_sigmoid(logits_B) - label_smoothing * jax.nn.log_sigmoid(-logits_B)
    loss_B = loss_B - sft_weight * per_token_BK(r.logps_BK, r)[:, 0]
    return preference_output(loss_B, rewards_BK, r)


def robust_dpo_loss(r: Responses, *, beta: float = 0.1, label_smoothing: float = 0.1) -> LossOutput:
    """Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO"): an unbiased loss under flipped labels.

        L = [-(1 - eps) log sigmoid(beta Delta) + eps log sigmoid(-beta Delta)] / (1 - 2 eps)

    Its expectation under labels flipped with probability eps equals the DPO loss on the clean labels. Unlike
    cDPO's, its minimum is not at a finite margin: for large Delta the eps term falls linearly, so the loss keeps
    pushing the margin up, more strongly than DPO's.

    Args:
      r: pairs (response 0 chosen, 1 rejected) with the reference's log-probs.
      beta: the KL coefficient: the implicit reward's scale.
      label_smoothing: eps, the label flip rate. It must be below 0.5 (the loss divides by 1 - 2 eps and changes
        sign beyond it); it is not checked or clipped here, being a traced value under jit.

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics.
    """
    rewards_BK = beta * _log_ratios_BK(r)
    logits_B = _margin_B(rewards_BK)
    loss_B = (
        -(1.0 - label_smoothing) * jax.nn.log_sigmoid(logits_B) + label_smoothing * jax.nn.log_sigmoid(-logits_B)
    ) / (1.0 - 2.0 * label_smoothing)
    return preference_output(loss_B, rewards_BK, r)


def ipo_loss(r: Responses, *, beta: float = 0.1) -> LossOutput:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences").

        h = (log pi(y_w) - log ref(y_w)) / |y_w| - (log pi(y_l) - log ref(y_l)) / |y_l|
        L = (h - 1 / (2 tau))^2

    A squared loss regresses the margin to a finite target instead of pushing it to infinity, so IPO does not
    overfit deterministic preferences the way the sigmoid loss does. The log-ratios are averaged over each
    response's tokens, as TRL does (the paper's are summed), so the target 1 / (2 tau) is per token.

    Args:
      r: pairs (response 0 chosen, 1 rejected) with the reference's log-probs and lengths.
      beta: tau, the regularisation strength: smaller tau, larger target margin.

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics with the implicit reward
      beta (log pi - log ref) / |y|.
    """
    per_token_log_ratios_BK = per_token_BK(_log_ratios_BK(r), r)
    loss_B = (_margin_B(per_token_log_ratios_BK) - 1.0 / (2.0 * beta)) ** 2
    return preference_output(loss_B, beta * per_token_log_ratios_BK, r)


def hinge_loss(r: Responses, *, beta: float = 0.1) -> LossOutput:
    """The hinge loss on DPO's implicit reward margin (TRL's loss_type="hinge").

        L = max(0, 1 - beta Delta)

    SLiC's calibration hinge (Zhao et al. 2023, "SLiC-HF") applied to the reference-normalised log-ratios, as
    RSO (Liu et al. 2023, "Statistical Rejection Sampling Improves Preference Optimization") writes it; 1 / beta
    is the margin below which a pair is still penalised.

    Args:
      r: pairs (response 0 chosen, 1 rejected) with the reference's log-probs.
      beta: the implicit reward's scale.

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics.
    """
    rewards_BK = beta * _log_ratios_BK(r)
    loss_B = jax.nn.relu(1.0 - _margin_B(rewards_BK))
    return preference_output(loss_B, rewards_BK, r)
