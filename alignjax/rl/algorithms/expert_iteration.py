"""Expert iteration (Anthony et al. 2017; rejection-sampling fine-tuning, as in Touvron et al. 2023): SFT on each
prompt's best answer.

Of the k answers to a prompt, the highest-reward one becomes an SFT row, trained on with the offline loss
`config.loss` (an "sft"-format loss) if its reward reaches `min_reward`; a prompt whose best answer falls short
contributes no loss. With one answer per prompt it is filtered SFT on the policy's own samples.
"""

from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from alignjax.rl.algorithms.registry import Algorithm
from alignjax.rl.batches import offline_rows
from alignjax.rl.rollout import Rollout
from alignjax.rl.steps import offline_step

# Its hyperparameters and their defaults.
DEFAULTS = {
    "min_reward": 0.0,  # a prompt's best answer is trained on if its reward reaches this
}


def best_answer_batch(rollout: Rollout, min_reward: float) -> tuple[dict[str, np.ndarray], int]:
    """Each prompt's highest-reward answer as an SFT row, [B, L] (the first one on ties).

    A prompt whose best answer scores below `min_reward` contributes no loss. Returns the batch and how many
    prompts kept an answer.
    """
    B, K = rollout.num_prompts, rollout.samples_per_prompt
    rewards_BK = rollout.rewards_BK
    best_N = np.arange(B) * K + np.argmax(rewards_BK, axis=1)
    kept_B = rewards_BK.max(axis=1) >= min_reward
    rows = {k: v[best_N] for k, v in rollout.rows.items()}
    batch = offline_rows(rows, rollout.mask_NT[best_N] * kept_B[:, None], rollout.prompt_len)
    return batch, int(kept_B.sum())


def expert_iteration_batch(
    rollout: Rollout, algorithm: ConfigDict, kl_coef: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The SFT rows of an expert iteration update, and `kept_prompts`: how many prompts have one."""
    batch, kept = best_answer_batch(rollout, algorithm.min_reward)
    return batch, {"kept_prompts": kept}


ALGORITHM = Algorithm(
    name="expert_iteration",
    defaults=DEFAULTS,
    make_batch=expert_iteration_batch,
    make_step=offline_step,
    loss_format="sft",
)
