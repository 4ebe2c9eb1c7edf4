"""Rotary position embeddings in the Hugging Face ("rotate half") layout, with Llama 3 and linear scaling.

Positions are an input rather than a range built inside the model, so left-padded prompts, packed sequences and
KV-cache decoding all rotate each token by its true position.
"""

import math

import jax.numpy as jnp
import numpy as np

from alignjax.models.config import RopeConfig


def inverse_frequencies(rope: RopeConfig, head_dim: int) -> np.ndarray:
    """The per-pair rotation speeds, float32 [head_dim // 2], as transformers computes them.

    'llama3' follows Meta's Llama 3.1 recipe: long wavelengths are slowed by `factor`, short ones kept, and the
    band between interpolated smoothly. 'linear' slows every frequency by `factor`.
    """
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim
    inv_freq = (1.0 / (rope.theta**exponents)).astype(np.float32)
    if rope.rope_type == "linear":
        return inv_freq / np.float32(rope.factor)
    if rope.rope_type == "llama3":
        low_freq_wavelen = rope.original_max_position_embeddings / rope.low_freq_factor
        high_freq_wavelen = rope.original_max_position_embeddings / rope.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq)
        smooth = (rope.original_max_position_embeddings / wavelen - rope.low_freq_factor) / (
            rope.high_freq_factor - rope.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
        is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return np.where(is_medium, smoothed, scaled).astype(np.float32)
    return inv_freq


def apply_rope(x_BLXE: jnp.ndarray, positions_BL: jnp.ndarray, inv_freq_C: np.ndarray) -> jnp.ndarray:
    """Rotates queries or keys by their positions; the rotation is computed in float32.

    Args:
      x_BLXE: queries or keys, [batch, length, heads, head_dim].
      positions_BL: integer position of each token.
      inv_freq_C: from `inverse_frequencies`, C = head_dim // 2.
    """
    angles_BLC = positions_BL[..., None].astype(jnp.float32) * jnp.asarray(inv_freq_C)
    angles_BL1E = jnp.concatenate([angles_BLC, angles_BLC], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(angles_BL1E), jnp.sin(angles_BL1E)
    x = x_BLXE.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated_half = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rotated_half * sin).astype(x_BLXE.dtype)
