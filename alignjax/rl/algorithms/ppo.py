"""PPO as RLHF runs it (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022): a value model, GAE, and
the KL to the reference as a penalty in the reward.

Each answer token is rewarded -kl_coef x its estimated KL to the reference (`kl_estimator`), and the answer's
score is added at its last token; generalised advantage estimation over the value model's estimates turns these
into per-token advantages and returns (`advantages.gae`). The policy trains on the clipped surrogate with no KL
term in the loss (it is in the reward), and the value model, trained beside it, regresses the returns with the
clipped value loss on every mini-batch. The KL coefficient may adapt towards a target KL per answer.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.rl.advantages import gae
from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import policy_gradient_rows, sampled_kl_NT, with_advantages
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import policy_gradient_step

# Its hyperparameters and their defaults (those of TRL's PPO trainer).
DEFAULTS = {
    "clip_eps": 0.2,  # policy ratio clipping
    "value_clip_eps": 0.2,  # how far a value prediction may move per rollout before clipping
    "gamma": 1.0,  # discount
    "lam": 0.95,  # GAE lambda
    "kl_coef": 0.05,  # per-token KL penalty in the reward (initial value when adaptive)
    "kl_estimator": "k1",  # one of losses.kl.KL_ESTIMATORS
    "kl_target": 0.0,  # > 0: adapt kl_coef towards this KL per answer (Ziegler et al.); 0: fixed
    "kl_horizon": 10000.0,  # answers over which the adaptive coefficient moves by up to 20%
    "whiten_advantages": True,
    "critic_path": "",  # the value model's start: a reward model or LM directory; empty: the policy's start
    "critic_lr": 1e-4,
}


def ppo_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The rows, old log-probs, old values, GAE advantages and returns of a PPO update (see the module
    docstring); `kl_coef` is the current coefficient of the KL penalty in the reward. Nothing is counted."""
    r = rollout
    batch = policy_gradient_rows(r)
    rewards_NT = -kl_coef * sampled_kl_NT(r, algorithm.kl_estimator)
    rewards_NT[np.arange(len(r.lengths_N)), np.maximum(r.lengths_N - 1, 0)] += r.rewards_N
    advantages_NT, returns_NT = gae(rewards_NT, r.values_NT, r.mask_NT, gamma=algorithm.gamma, lam=algorithm.lam)
    batch.update(old_values_NT=r.values_NT, returns_NT=np.asarray(returns_NT))
    return with_advantages(batch, advantages_NT, algorithm.whiten_advantages), {}


ALGORITHM = Algorithm(
    name="ppo",
    defaults=DEFAULTS,
    make_batch=ppo_batch,
    make_step=policy_gradient_step(kl_in_loss=False),
    has_critic=True,
)
