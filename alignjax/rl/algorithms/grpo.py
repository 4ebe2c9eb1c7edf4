"""GRPO, group relative policy optimisation (Shao et al. 2024): the k answers to a prompt are their own baseline.

Each answer's advantage is its reward less its group's mean, divided by the group's standard deviation
(`advantages.grpo_advantages`; without the division with `scale_rewards=False`, Dr. GRPO), and covers each of
its tokens. The policy trains on the clipped surrogate plus beta (`kl_coef`) x the k3 estimate of its KL to the
reference per token, inside the loss: the reward carries no KL penalty, and the coefficient is fixed.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.rl.advantages import grpo_advantages
from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import policy_gradient_rows, spread_over_tokens, with_advantages
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import policy_gradient_step

# Its hyperparameters and their defaults (those of TRL's GRPO trainer).
DEFAULTS = {
    "clip_eps": 0.2,
    "kl_coef": 0.04,  # beta of the KL term in the loss; 0: no reference term
    "kl_estimator": "k3",
    "scale_rewards": True,  # divide by the group's std (False: Dr. GRPO)
}


def grpo_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The rows, old and reference log-probs and group-normalised advantages of a GRPO update (its KL term is
    in the loss, so `kl_coef` is not read here). Nothing is counted."""
    r = rollout
    advantages_BK = grpo_advantages(r.rewards_BK, scale=algorithm.scale_rewards)
    return with_advantages(policy_gradient_rows(r), spread_over_tokens(advantages_BK, r.mask_NT)), {}


ALGORITHM = Algorithm(
    name="grpo",
    defaults=DEFAULTS,
    make_batch=grpo_batch,
    make_step=policy_gradient_step(kl_in_loss=True),
    min_samples_per_prompt=2,
)
