"""Log-probabilities of given tokens, the quantity nearly every alignment objective is built from."""

import jax
import jax.numpy as jnp


def token_logprobs(logits_BLV: jax.Array, targets_BL: jax.Array) -> jax.Array:
    """log p(targets_BL[b, l] | prefix) for every position, float32 [B, L].

    Uses logsumexp rather than a full log-softmax so the [B, L, V] tensor is read once and never copied.
    """
    logits_BLV = logits_BLV.astype(jnp.float32)
    chosen_BL = jnp.take_along_axis(logits_BLV, targets_BL[..., None], axis=-1)[..., 0]
    return chosen_BL - jax.nn.logsumexp(logits_BLV, axis=-1)
