"""The coefficient of the KL penalty to the frozen reference, fixed or adaptive.

The KL itself is measured in `losses.kl`: estimated per sampled token (k1, k3) for the penalty in the reward or
the loss, exactly over the vocabulary for the evaluation. Here is how strongly it is penalised: a fixed
coefficient, or one steered towards a target KL per answer as the policy drifts (Ziegler et al. 2019), whose
value is checkpointed with the run.
"""

from __future__ import annotations

import numpy as np


class AdaptiveKLController:
    """The KL coefficient, fixed or steered towards a target KL (Ziegler et al. 2019, section 2.2).

    After each rollout whose mean KL per answer is `kl`, an adaptive controller sets

        error = clip(kl / target - 1, -0.2, 0.2)
        coef <- coef * (1 + error * n / horizon)

    with n the rollout's number of answers: the coefficient grows while the policy drifts beyond the target and
    shrinks while it stays within. With `target=0` the coefficient stays fixed.

    Args:
      coef: the (initial) coefficient.
      target: the KL per answer to steer towards; 0: fixed.
      horizon: answers over which the coefficient moves by up to 20%.
    """

    def __init__(self, coef: float, target: float = 0.0, horizon: float = 10000.0):
        self.coef, self.target, self.horizon = float(coef), float(target), float(horizon)

    def update(self, kl: float, num_answers: int) -> None:
        """Steers the coefficient after a rollout of `num_answers` answers with mean KL `kl` per answer."""
        if self.target > 0:
            error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
            self.coef *= 1.0 + error * num_answers / self.horizon
