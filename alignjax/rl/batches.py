"""From a rollout to the batch an update trains on: the pieces that the algorithms' `make_batch` share.

- Policy-gradient batches (`policy_gradient_rows`, `with_advantages`): the rollout's rows with their old and
  reference log-probs, and per-token advantages; the KL penalty that PPO and RLOO put in the reward is estimated
  per sampled token (`sampled_kl_NT`), and a per-answer advantage covers each of its tokens (`spread_over_tokens`).
- Offline batches: rollout rows as the offline train step's SFT rows (`offline_rows`), and pairs of answers to a
  prompt as [B, 2, L] preference batches (`pair_batch`) with the reference's summed log-probs precomputed from
  the rollout, so the offline train step (`train.step`) trains on them unchanged.

All work on host arrays of fixed shapes; rows without a usable answer or pair stay in the batch with no weight,
so every batch of a run has one shape.
"""

from __future__ import annotations

import jax
import numpy as np

from alignjax.losses.kl import kl_per_token
from alignjax.rl.advantages import whiten
from alignjax.rl.rollout import Rollout


def policy_gradient_rows(rollout: Rollout) -> dict[str, np.ndarray]:
    """The rollout's rows, answer mask, sampling (old) and reference log-probs: what every policy-gradient batch
    holds besides its advantages."""
    return {**rollout.rows, "mask_NT": rollout.mask_NT, "old_logps_NT": rollout.logps_NT,
            "ref_logps_NT": rollout.ref_logps_NT}


def sampled_kl_NT(rollout: Rollout, estimator: str) -> np.ndarray:
    """The estimate of KL(policy || reference) carried by each sampled answer token (one of
    `losses.kl.KL_ESTIMATORS`), 0 after the answer's end, [N, T]."""
    return np.asarray(kl_per_token(rollout.logps_NT, rollout.ref_logps_NT, estimator)) * rollout.mask_NT


def spread_over_tokens(advantages_BK: jax.Array | np.ndarray, mask_NT: np.ndarray) -> np.ndarray:
    """Per-answer advantages of B prompts x K answers as per-token ones, [N, T]: each answer token carries its
    answer's advantage."""
    return np.asarray(advantages_BK).reshape(-1, 1) * mask_NT


def with_advantages(
    batch: dict[str, np.ndarray], advantages_NT, whiten_advantages: bool = False
) -> dict[str, np.ndarray]:
    """`batch` (a `policy_gradient_rows` batch) completed with `advantages_NT`, whitened over its answer tokens
    if `whiten_advantages` (as TRL's PPO trainer does)."""
    if whiten_advantages:
        advantages_NT = whiten(advantages_NT, batch["mask_NT"])
    batch["advantages_NT"] = np.asarray(advantages_NT, np.float32)
    return batch


def offline_rows(rows: dict[str, np.ndarray], mask_NT: np.ndarray, prompt_len: int) -> dict[str, np.ndarray]:
    """Rollout rows as the offline step's sequence arrays: next-token targets, loss on the answer's tokens.

    Args:
      rows: `tokens`, `positions`, `segment_ids` of N prompt + answer rows, [N, L].
      mask_NT: 1.0 on the answer tokens to train on (all 0: the row contributes no loss).
      prompt_len: where the answers start.
    """
    N, L = rows["tokens"].shape
    T = mask_NT.shape[1]
    targets_NL = np.concatenate([rows["tokens"][:, 1:], rows["tokens"][:, -1:]], axis=1)
    loss_mask_NL = np.zeros((N, L), np.float32)
    loss_mask_NL[:, prompt_len - 1 : prompt_len - 1 + T] = mask_NT  # position l predicts the token at l + 1
    return {**rows, "targets": targets_NL, "loss_mask": loss_mask_NL}


def pair_batch(rollout: Rollout, chosen_B: np.ndarray, rejected_B: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Pairs of answers to each prompt as a [B, 2, L] preference batch, chosen first.

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
    rows = {k: v[flat_N] for k, v in rollout.rows.items()}
    sequences = offline_rows(rows, rollout.mask_NT[flat_N], rollout.prompt_len)
    batch = {k: v.reshape(B, 2, -1) for k, v in sequences.items()}
    ref_logps_N = np.sum(rollout.ref_logps_NT * rollout.mask_NT, axis=1)
    batch.update(
        valid_BK=np.repeat(valid_B[:, None], 2, axis=1).astype(np.float32),
        scores_BK=rewards_B2.astype(np.float32),
        labels_B=np.zeros(B, np.float32),
        ref_logps_BK=ref_logps_N[rows_B2].astype(np.float32),
    )
    return batch, int(valid_B.sum())
