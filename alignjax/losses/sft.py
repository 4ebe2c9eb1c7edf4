"""Supervised fine-tuning: next-token cross-entropy on response tokens only.

    L = -(1 / |R|) * sum_{t in R} log p(y_t | y_<t, x)

where R is the set of response positions (`loss_mask`); prompt tokens, padding and segment ends carry no loss.
"""

import jax
import jax.numpy as jnp

from alignjax.losses.registry import LossOutput
from alignjax.losses.token_logprobs import token_logprobs


def sft_loss(logits_BLV: jax.Array, batch: dict) -> LossOutput:
    """Summed negative log-likelihood of `batch['targets']` where `batch['loss_mask']` is 1.

    Args:
      logits_BLV: next-token logits.
      batch: `targets` int [B, L] (the token each position predicts) and `loss_mask` float [B, L].

    Returns:
      total NLL, the number of loss tokens as its weight, and the summed token accuracy.
    """
    mask_BL = batch["loss_mask"].astype(jnp.float32)
    nll_BL = -token_logprobs(logits_BLV, batch["targets"])
    correct_BL = (jnp.argmax(logits_BLV, axis=-1) == batch["targets"]).astype(jnp.float32)
    return LossOutput(
        total=jnp.sum(nll_BL * mask_BL),
        weight=jnp.sum(mask_BL),
        metrics={"token_accuracy": jnp.sum(correct_BL * mask_BL)},
    )
