"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"): a preference loss on
pairs of the policy's own answers, ranked by the reward.

Of the k answers to a prompt, the highest-reward one is chosen over the lowest-reward one, and the pair is
trained on with the offline loss `config.loss` (a "pairs"-format loss: DPO, IPO, SLiC, ...), the reference's
log-probs taken from the rollout. A prompt whose answers all score the same gives no preference and no loss.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import pair_batch
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import offline_step

# Its hyperparameters (those of the preference loss are in config.loss).
DEFAULTS = {}


def best_worst_pairs(rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, the index of its highest-reward answer and of its lowest-reward one (the first on ties)."""
    return np.argmax(rollout.rewards_BK, axis=1), np.argmin(rollout.rewards_BK, axis=1)


def online_dpo_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The [B, 2, L] best-over-worst pairs of an online DPO update, and `valid_pairs`: how many have a preference."""
    batch, valid = pair_batch(rollout, *best_worst_pairs(rollout))
    return batch, {"valid_pairs": valid}


ALGORITHM = Algorithm(
    name="online_dpo",
    defaults=DEFAULTS,
    make_batch=online_dpo_batch,
    make_step=offline_step,
    loss_format="pairs",
    min_samples_per_prompt=2,
)
