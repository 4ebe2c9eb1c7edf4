"""ORPO (Hong et al. 2024, "ORPO: Monolithic Preference Optimization without Reference Model").

ORPO folds preference alignment into supervised fine-tuning: the NLL of the chosen response plus a term that
raises the odds of the chosen response relative to the rejected one. With a = log pi(y) / |y| the per-token
log-likelihood (so exp(a) is the geometric-mean token probability),

    log odds(y) = a - log(1 - exp(a))
    L = -a_w - lambda log sigmoid(log odds(y_w) - log odds(y_l))

The paper prefers the odds ratio to a probability ratio because it contrasts the two responses more mildly, so
the preference term does not overwhelm the SFT term. No reference model is needed. The
implicit reward logged in the `rewards/*` metrics is a (log odds is increasing in a, so the accuracy is the
same either way).
"""

import jax
import jax.numpy as jnp

from alignjax.losses.preference import per_token_BK, preference_output
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses

# log(1 - exp(a)) is -inf at a = 0 (every token certain, or a padding response with no tokens); a is clamped just
# below 0, which changes nothing for a real response and keeps the loss and its gradient finite.
_MAX_PER_TOKEN_LOGP = -1e-6


def _log_odds_BK(a_BK: jax.Array) -> jax.Array:
    a_BK = jnp.minimum(a_BK, _MAX_PER_TOKEN_LOGP)
    return a_BK - jnp.log(-jnp.expm1(a_BK))


def orpo_loss(r: Responses, *, beta: float = 0.1) -> LossOutput:
    """ORPO's per-token NLL of the chosen response plus lambda times the log odds-ratio loss.

    Args:
      r: pairs (response 0 chosen, 1 rejected); no reference is needed.
      beta: lambda, the weight of the odds-ratio term (TRL's name for it).

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics.
    """
    a_BK = per_token_BK(r.logps_BK, r)
    log_odds_BK = _log_odds_BK(a_BK)
    loss_B = -a_BK[:, 0] - beta * jax.nn.log_sigmoid(log_odds_BK[:, 0] - log_odds_BK[:, 1])
    return preference_output(loss_B, a_BK, r)
