"""RLOO, REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024): each of the k answers to a prompt is
compared with the mean reward of the other k - 1, so no value model is needed.

An answer's reward is its score less kl_coef x its summed KL estimate to the reference (the KL penalty is in the
reward, as in PPO, and may adapt towards a target); its leave-one-out advantage (`advantages.rloo_advantages`)
covers each of its tokens, and the policy trains on the clipped surrogate with no KL term in the loss.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.rl.advantages import rloo_advantages
from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import policy_gradient_rows, sampled_kl_NT, spread_over_tokens, with_advantages
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import policy_gradient_step

# Its hyperparameters and their defaults (those of TRL's RLOO trainer); see ppo.DEFAULTS for their meaning.
DEFAULTS = {
    "clip_eps": 0.2,
    "kl_coef": 0.05,
    "kl_estimator": "k1",
    "kl_target": 0.0,
    "kl_horizon": 10000.0,
    "whiten_advantages": False,
}


def rloo_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The rows, old log-probs and leave-one-out advantages of an RLOO update; `kl_coef` is the current
    coefficient of the KL penalty in the reward. Nothing is counted."""
    r = rollout
    B, K = r.num_prompts, r.samples_per_prompt
    kl_N = np.sum(sampled_kl_NT(r, algorithm.kl_estimator), 1)
    advantages_BK = rloo_advantages((r.rewards_N - kl_coef * kl_N).reshape(B, K))
    advantages_NT = spread_over_tokens(advantages_BK, r.mask_NT)
    return with_advantages(policy_gradient_rows(r), advantages_NT, algorithm.whiten_advantages), {}


ALGORITHM = Algorithm(
    name="rloo",
    defaults=DEFAULTS,
    make_batch=rloo_batch,
    make_step=policy_gradient_step(kl_in_loss=False),
    min_samples_per_prompt=2,
)
