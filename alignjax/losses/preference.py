"""What the preference losses share: which rows and pairs count, length normalisation, and the logged metrics.

Every sequence-level loss is a per-row (per-prompt) loss summed over the valid rows, and logs the same metrics
computed from its own implicit reward, so that "preference accuracy" means the same thing whichever loss trained
the model:

- `rewards/chosen`, `rewards/rejected`: the implicit reward of the best- and of the worst-scored valid response
  (for pairs, whose scores are [1, 0], the chosen and the rejected response);
- `rewards/margin`: chosen minus rejected;
- `rewards/accuracy`: the fraction of the row's score-ordered pairs (s_i > s_j, both valid) that the implicit
  reward orders the same way (r_i > r_j, strictly); for pairs, whether the chosen response's reward exceeds the
  rejected one's. A row whose valid responses all tie in score has no such pair and counts as 0;
- `logps/chosen`, `logps/rejected`: the policy's summed log-probs of those two responses.

Each metric is a sum over valid rows; the step divides it by the number of valid rows, which makes it a mean.
"""

import jax
import jax.numpy as jnp

from alignjax.losses.registry import LossOutput
from alignjax.losses.responses import Responses


def row_sum(x_B: jax.Array, r: Responses) -> jax.Array:
    """The sum of `x_B` over valid rows; padding rows add nothing, even where their values are not finite."""
    return jnp.sum(jnp.where(r.valid_BK[:, 0] > 0, x_B, 0.0))


def num_rows(r: Responses) -> jax.Array:
    """The number of valid rows: the weight of a per-row loss."""
    return jnp.sum((r.valid_BK[:, 0] > 0).astype(jnp.float32))


def per_token_BK(x_BK: jax.Array, r: Responses) -> jax.Array:
    """`x_BK / |y|`, the length-normalised value; a padding response (no tokens) is divided by 1 to stay finite."""
    return x_BK / jnp.maximum(r.lengths_BK, 1.0)


def score_order_BKK(r: Responses) -> jax.Array:
    """1.0 at [b, i, j] where responses i and j of row b both exist and s_i > s_j (i is preferred), else 0.0."""
    valid_BK = r.valid_BK > 0
    both_BKK = valid_BK[:, :, None] & valid_BK[:, None, :]
    return (both_BKK & (r.scores_BK[:, :, None] > r.scores_BK[:, None, :])).astype(jnp.float32)


def best_index_B(r: Responses) -> jax.Array:
    """The index of each row's highest-scored valid response (the first one on ties)."""
    return jnp.argmax(jnp.where(r.valid_BK > 0, r.scores_BK, -jnp.inf), axis=-1)


def worst_index_B(r: Responses) -> jax.Array:
    """The index of each row's lowest-scored valid response (the first one on ties)."""
    return jnp.argmin(jnp.where(r.valid_BK > 0, r.scores_BK, jnp.inf), axis=-1)


def take_B(x_BK: jax.Array, index_B: jax.Array) -> jax.Array:
    """`x_BK[b, index_B[b]]` for every row b."""
    return jnp.take_along_axis(x_BK, index_B[:, None], axis=-1)[:, 0]


def reward_metrics(rewards_BK: jax.Array, r: Responses) -> dict[str, jax.Array]:
    """`rewards/chosen`, `rewards/rejected`, `rewards/margin` and `rewards/accuracy` (see the module docstring).

    Args:
      rewards_BK: the loss's implicit reward of each response (a reward model's output for reward models).
      r: the responses, for their validity and scores.

    Returns:
      each metric summed over valid rows.
    """
    best_B, worst_B = best_index_B(r), worst_index_B(r)
    chosen_B, rejected_B = take_B(rewards_BK, best_B), take_B(rewards_BK, worst_B)
    order_BKK = score_order_BKK(r)
    agree_BKK = order_BKK * (rewards_BK[:, :, None] > rewards_BK[:, None, :])
    accuracy_B = jnp.sum(agree_BKK, axis=(1, 2)) / jnp.maximum(jnp.sum(order_BKK, axis=(1, 2)), 1.0)
    return {
        "rewards/chosen": row_sum(chosen_B, r),
        "rewards/rejected": row_sum(rejected_B, r),
        "rewards/margin": row_sum(chosen_B - rejected_B, r),
        "rewards/accuracy": row_sum(accuracy_B, r),
    }


def preference_output(loss_B: jax.Array, rewards_BK: jax.Array, r: Responses) -> LossOutput:
    """A per-row policy loss summed over valid rows, weighted by their number, with the preference metrics.

    Args:
      loss_B: each row's loss.
      rewards_BK: the loss's implicit reward of each response, for the `rewards/*` metrics.
      r: the responses.

    Returns:
      the `LossOutput`, with `reward_metrics` and the summed log-probs of the best and worst response.
    """
    metrics = reward_metrics(rewards_BK, r)
    metrics["logps/chosen"] = row_sum(take_B(r.logps_BK, best_index_B(r)), r)
    metrics["logps/rejected"] = row_sum(take_B(r.logps_BK, worst_index_B(r)), r)
    return LossOutput(total=row_sum(loss_B, r), weight=num_rows(r), metrics=metrics)
