"""SLiC-HF (Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback").

Sequence likelihood calibration: the policy should give the chosen response a higher summed log-likelihood than
the rejected one by at least a margin delta, while a cross-entropy term on a target sequence keeps it close to
fluent text, in place of DPO's reference model:

    L = max(0, delta - log pi(y_w) + log pi(y_l)) - lambda log pi(y_ref)

The paper's regulariser targets either the SFT data or the best decoded sample; here it is the chosen response
y_w, the only target a preference pair carries. log pi is the summed log-prob, as in the calibration hinge; it
is also the implicit reward logged in the `rewards/*` metrics, so that `rewards/accuracy` says whether the
policy orders the pair as the hinge asks.
"""

import jax

from alignjax.losses.preference import preference_output
from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def slic_loss(r: Responses, *, delta: float = 1.0, reg_weight: float = 0.1) -> LossOutput:
    """The SLiC-HF calibration hinge plus the chosen response's negative log-likelihood.

    Args:
      r: pairs (response 0 chosen, 1 rejected); no reference is needed.
      delta: the margin in summed log-likelihood that the chosen response should win by.
      reg_weight: lambda, the weight of the cross-entropy regulariser (the chosen response's summed NLL).

    Returns:
      the summed per-pair loss, the number of pairs, and the preference metrics with the summed log-prob as
      the implicit reward.
    """
    logps_w_B, logps_l_B = r.logps_BK[:, 0], r.logps_BK[:, 1]
    loss_B = jax.nn.relu(delta - logps_w_B + logps_l_B) - reg_weight * logps_w_B
    return preference_output(loss_B, r.logps_BK, r)
