"""`Responses`: what sequence-level objectives (the DPO family, ranking losses, reward models) are computed from.

A batch of B prompts with K responses each ([B, K, L] tokens) is reduced by the step to per-response sums, so
that every such loss is a small function of [B, K] arrays and never sees logits:

    logps_BK[b, k] = sum over the response's tokens t of log pi(y_t | x, y_<t)

Conventions by example format (alignjax.data builds the batches):
- pairs: K = 2, response 0 is chosen and response 1 rejected; scores_BK = [1, 0].
- ranked: K responses in any order with their scores (higher is better); valid_BK marks those that exist.
- unpaired (KTO): K = 2, response 0 is the example's completion, labels_B says whether it is desirable (1) or
  undesirable (0); response 1 is another example's completion under this prompt, only for KTO's KL estimate.

Rows with valid_BK[:, 0] == 0 are padding (filler rows of eval batches) and must carry no loss and no metric.
"""

from __future__ import annotations

from typing import NamedTuple

import jax


class Responses(NamedTuple):
    """Per-response statistics of a [B, K, L] batch, all float32.

    Attributes:
        logps_BK: the policy's summed log-probs of each response (or, for reward models, its scalar reward).
        ref_logps_BK: the frozen reference's summed log-probs (zeros for reference-free losses).
        lengths_BK: the number of response tokens.
        valid_BK: 1 for responses that exist, 0 for padding.
        scores_BK: the responses' scores (higher is better).
        labels_B: unpaired format only: 1 if response 0 is desirable, 0 if undesirable.
    """

    logps_BK: jax.Array
    ref_logps_BK: jax.Array
    lengths_BK: jax.Array
    valid_BK: jax.Array
    scores_BK: jax.Array
    labels_B: jax.Array
