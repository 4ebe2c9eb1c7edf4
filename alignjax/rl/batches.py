"""From a rollout to the batch an update trains on, one function per kind of update.

- `policy_gradient_batch`: per-token advantages for the clipped surrogate: GAE from the value model and a
  per-token KL penalty (PPO), leave-one-out baselines (RLOO) or group-normalised rewards (GRPO).
- `best_answer_batch`: expert iteration's SFT rows, each prompt's best answer.
- `pair_batch`: [B, 2, S] pairs (chosen first) for a preference loss, with the reference's summed log-probs
  precomputed from the rollout, so the offline train step (`train.step`) trains on them unchanged.

All work on host arrays of fixed shapes; rows without a usable answer or pair stay in the batch with no weight,
so every batch of a run has one shape.
"""

from __future__ import annotations

import numpy as np

from alignjax.rl.advantages import gae, grpo_advantages, rloo_advantages, whiten
from alignjax.rl.kl import kl_per_token
from alignjax.rl.rollout import Rollout


def policy_gradient_batch(rollout: Rollout, algorithm, kl_coef: float) -> dict[str, np.ndarray]:
    """The rows, old log-probs and advantages (and for PPO old values and returns) of a PPO-family update.

    Args:
      rollout: the scored answers.
      algorithm: the `rl.algorithm` section (its `name` and hyperparameters).
      kl_coef: the current KL coefficient of PPO and RLOO, whose KL penalty is part of the reward.
    """
    r, mask_NT = rollout, rollout.mask_NT
    B, K = r.num_prompts, r.samples_per_prompt
    batch = {**r.rows, "mask_NT": mask_NT, "old_logps_NT": r.logps_NT, "ref_logps_NT": r.ref_logps_NT}
    if algorithm.name == "ppo":
        kl_NT = np.asarray(kl_per_token(r.logps_NT, r.ref_logps_NT, algorithm.kl_estimator)) * mask_NT
        rewards_NT = -kl_coef * kl_NT
        rewards_NT[np.arange(len(r.lengths_N)), np.maximum(r.lengths_N - 1, 0)] += r.rewards_N
        advantages_NT, returns_NT = gae(rewards_NT, r.values_NT, mask_NT, gamma=algorithm.gamma, lam=algorithm.lam)
        batch.update(old_values_NT=r.values_NT, returns_NT=np.asarray(returns_NT))
    else:
        rewards_N = r.rewards_N
        if algorithm.name == "rloo":
            kl_N = np.sum(np.asarray(kl_per_token(r.logps_NT, r.ref_logps_NT, algorithm.kl_estimator)) * mask_NT, 1)
            advantages_BK = rloo_advantages((rewards_N - kl_coef * kl_N).reshape(B, K))
        else:
            advantages_BK = grpo_advantages(rewards_N.reshape(B, K), scale=algorithm.scale_rewards)
        advantages_NT = np.asarray(advantages_BK).reshape(-1, 1) * mask_NT
    if algorithm.get("whiten_advantages", False):
        advantages_NT = whiten(advantages_NT, mask_NT)
    batch["advantages_NT"] = np.asarray(advantages_NT, np.float32)
    return batch


def _offline_rows(rows: dict[str, np.ndarray], mask_NT: np.ndarray, prompt_len: int) -> dict[str, np.ndarray]:
    """Rollout rows as the offline step's sequence arrays: next-token targets, loss on the answer's tokens."""
    N, S = rows["tokens"].shape
    T = mask_NT.shape[1]
    targets_NS = np.concatenate([rows["tokens"][:, 1:], rows["tokens"][:, -1:]], axis=1)
    loss_mask_NS = np.zeros((N, S), np.float32)
    loss_mask_NS[:, prompt_len - 1 : prompt_len - 1 + T] = mask_NT  # position s predicts the token at s + 1
    return {**rows, "targets": targets_NS, "loss_mask": loss_mask_NS}


def best_answer_batch(rollout: Rollout, min_reward: float) -> tuple[dict[str, np.ndarray], int]:
    """Expert iteration: each prompt's highest-reward answer as an SFT row, [B, S].

    A prompt whose best answer scores below `min_reward` contributes no loss. Returns the batch and how many
    prompts kept an answer.
    """
    B, K = rollout.num_prompts, rollout.samples_per_prompt
    rewards_BK = rollout.rewards_N.reshape(B, K)
    best_N = np.arange(B) * K + np.argmax(rewards_BK, axis=1)
    kept_B = rewards_BK.max(axis=1) >= min_reward
    rows = {k: v[best_N] for k, v in rollout.rows.items()}
    batch = _offline_rows(rows, rollout.mask_NT[best_N] * kept_B[:, None], rollout.prompt_len)
    return batch, int(kept_B.sum())


def pair_batch(rollout: Rollout, chosen_B: np.ndarray, rejected_B: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Pairs of answers to each prompt as a [B, 2, S] preference batch, chosen first.

    Args:
      rollout: the scored answers.
      chosen_B, rejected_B: per prompt, the index (among its K answers) of the preferred and of the other answer.
        A pair whose two rewards are equal has no preference and is marked invalid (no loss).

    Returns:
      The batch (with `ref_logps_BK` from the rollout, so no reference model runs in the step) and the number of
      valid pairs.
    """
    B, K = rollout.num_prompts, rollout.samples_per_prompt
    rows_B2 = np.arange(B)[:, None] * K + np.stack([chosen_B, rejected_B], axis=1)
    rewards_B2 = rollout.rewards_N[rows_B2]
    valid_B = rewards_B2[:, 0] > rewards_B2[:, 1]
    flat_N = rows_B2.reshape(-1)
    sequences = _offline_rows({k: v[flat_N] for k, v in rollout.rows.items()}, rollout.mask_NT[flat_N], rollout.prompt_len)
    batch = {k: v.reshape(B, 2, -1) for k, v in sequences.items()}
    ref_logps_N = np.sum(rollout.ref_logps_NT * rollout.mask_NT, axis=1)
    batch.update(
        valid_BK=np.repeat(valid_B[:, None], 2, axis=1).astype(np.float32),
        scores_BK=rewards_B2.astype(np.float32),
        labels_B=np.zeros(B, np.float32),
        ref_logps_BK=ref_logps_N[rows_B2].astype(np.float32),
    )
    return batch, int(valid_B.sum())


def best_worst_pairs(rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """Online DPO's pairs: each prompt's highest-reward answer over its lowest-reward one."""
    rewards_BK = rollout.rewards_N.reshape(rollout.num_prompts, rollout.samples_per_prompt)
    return np.argmax(rewards_BK, axis=1), np.argmin(rewards_BK, axis=1)
