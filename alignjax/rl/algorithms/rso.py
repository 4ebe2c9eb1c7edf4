"""Statistical rejection sampling optimisation (RSO; Liu et al. 2024, "Statistical Rejection Sampling Improves
Preference Optimization"): answers drawn from the SFT policy, kept so that they follow the optimal policy of the
KL-regularised reward objective,

    pi*(y | x)  proportional to  pi_sft(y | x) * exp(r(x, y) / beta),

and then ranked by the reward into pairs for a preference loss (`config.loss`: DPO, SLiC, ...). The rollouts
sample from the frozen reference (the SFT model), so they cannot drift and no rollout KL is logged.

The candidates are samples of pi_sft, so rejection sampling with a uniform proposal over them targets pi*: draw
a candidate, accept it with probability exp((r(y) - r_max) / beta) (r_max the best remaining reward, so the bound
is tight), repeat. Each acceptance is then candidate i with probability proportional to exp(r_i / beta) among
those not yet accepted. Small beta keeps mostly the best answers, large beta keeps the SFT distribution.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.config_errors import require
from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import pair_batch
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import offline_step

# Its hyperparameters and their defaults (those of the preference loss are in config.loss).
DEFAULTS = {
    "beta": 0.5,  # rejection sampling temperature: acceptance exp((r - r_max) / beta)
}


def rejection_sample(rewards_K: np.ndarray, beta: float, num_accept: int, rng: np.random.Generator) -> list[int]:
    """Indices of `num_accept` distinct candidates accepted by RSO's rejection sampling, in acceptance order."""
    if num_accept > len(rewards_K):
        raise ValueError(f"cannot accept {num_accept} of {len(rewards_K)} candidates")
    remaining = list(range(len(rewards_K)))
    accepted: list[int] = []
    while len(accepted) < num_accept:
        best = max(rewards_K[i] for i in remaining)
        candidate = remaining[rng.integers(len(remaining))]
        if rng.uniform() < np.exp((rewards_K[candidate] - best) / beta):
            accepted.append(candidate)
            remaining.remove(candidate)
    return accepted


def rso_pairs(rewards_BK: np.ndarray, beta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, two answers accepted by rejection sampling, the higher-reward one first (chosen)."""
    chosen_B, rejected_B = [], []
    for rewards_K in rewards_BK:
        a, b = rejection_sample(rewards_K, beta, 2, rng)
        chosen, rejected = (a, b) if rewards_K[a] >= rewards_K[b] else (b, a)
        chosen_B.append(chosen)
        rejected_B.append(rejected)
    return np.asarray(chosen_B), np.asarray(rejected_B)


def rso_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The [B, 2, L] pairs of an RSO update, drawn with `rng`, and `valid_pairs`: how many have a preference."""
    batch, valid = pair_batch(rollout, *rso_pairs(rollout.rewards_BK, algorithm.beta, rng))
    return batch, {"valid_pairs": valid}


def check(config: ConfigDict) -> None:
    """Raises ConfigError on a beta that is not positive."""
    beta = config.rl.algorithm.beta
    require(beta > 0, f"rl.algorithm.beta must be > 0, got {beta}")


ALGORITHM = Algorithm(
    name="rso",
    defaults=DEFAULTS,
    make_batch=rso_batch,
    make_step=offline_step,
    loss_format="pairs",
    samples_from="reference",
    min_samples_per_prompt=2,
    check=check,
)
