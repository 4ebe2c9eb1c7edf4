"""Grouped-query self-attention with RoPE, optional q/k/v/o biases (Qwen2) and per-head q/k norms (Qwen3).

The module splits into `project_qkv` and `attend` so that a KV cache slots in between them: the sampler writes
the new keys and values into its cache and attends over the cache, with the same weights and the same code.
Which key each query may see is decided outside, by a boolean mask, so padding, packing and decoding differ only
in the mask they pass.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax.models.config import ModelConfig
from alignjax.models.layers import RMSNorm, make_param, project
from alignjax.models.rope import apply_rope


def attention_mask(
    q_segment_BL: jax.Array,
    kv_segment_BS: jax.Array,
    q_index_BL: jax.Array,
    kv_index_BS: jax.Array,
    sliding_window: int | None = None,
) -> jax.Array:
    """Which keys each query attends to, [B, 1, L, S] (the 1 broadcasts over heads).

    A query sees a key when the key's slot is not after the query's slot (causality), both belong to the same
    non-zero segment (packed examples never see each other; segment 0 is padding), and, with a sliding window,
    the key is one of the `sliding_window` most recent slots (the query's own included), as Mistral defines it.
    Slot distances equal position distances within a segment, so the window holds for padded and packed rows.
    """
    distance_BLS = q_index_BL[:, :, None] - kv_index_BS[:, None, :]
    visible_BLS = distance_BLS >= 0
    if sliding_window is not None:
        visible_BLS &= distance_BLS < sliding_window
    same_segment_BLS = q_segment_BL[:, :, None] == kv_segment_BS[:, None, :]
    real_BLS = (q_segment_BL != 0)[:, :, None]
    return (visible_BLS & same_segment_BLS & real_BLS)[:, None]


class Attention(nnx.Module):
    """Multi-head attention with `num_kv_heads` key/value heads shared by groups of query heads."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        D, H, J, E = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        pd = cfg.param_dtype
        zeros = jax.nn.initializers.zeros
        self.dtype: Any = cfg.dtype
        self.q = make_param(rngs, (D, H, E), ("embed", "q_heads", "head_dim"), pd)
        self.k = make_param(rngs, (D, J, E), ("embed", "kv_heads", "head_dim"), pd)
        self.v = make_param(rngs, (D, J, E), ("embed", "kv_heads", "head_dim"), pd)
        self.o = make_param(rngs, (H, E, D), ("q_heads", "head_dim", "embed"), pd)
        qkv_bias = cfg.qkv_bias
        self.q_bias = make_param(rngs, (H, E), ("q_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.k_bias = make_param(rngs, (J, E), ("kv_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.v_bias = make_param(rngs, (J, E), ("kv_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.o_bias = make_param(rngs, (D,), ("embed",), pd, zeros) if cfg.o_bias else None
        self.q_norm = RMSNorm(E, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs) if cfg.qk_norm else None
        self.k_norm = RMSNorm(E, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs) if cfg.qk_norm else None

    def project_qkv(
        self, x_BLD: jax.Array, positions_BL: jax.Array, inv_freq: np.ndarray
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries [B, L, H, E] and keys/values [B, L, J, E], rotated by their positions."""
        x_BLD = x_BLD.astype(self.dtype)
        q_BLHE = self._heads(x_BLD, self.q, self.q_bias)
        k_BLJE = self._heads(x_BLD, self.k, self.k_bias)
        v_BLJE = self._heads(x_BLD, self.v, self.v_bias)
        if self.q_norm is not None:
            q_BLHE, k_BLJE = self.q_norm(q_BLHE), self.k_norm(k_BLJE)
        return apply_rope(q_BLHE, positions_BL, inv_freq), apply_rope(k_BLJE, positions_BL, inv_freq), v_BLJE

    def attend(self, q_BLHE: jax.Array, k_BSJE: jax.Array, v_BSJE: jax.Array, mask_B1LS: jax.Array) -> jax.Array:
        """Attention of L queries over S keys under `mask_B1LS`, projected back to the model width [B, L, D]."""
        if q_BLHE.shape[1] == 1:
            out_BLHE = _single_query_attention(q_BLHE, k_BSJE, v_BSJE, mask_B1LS)
        else:
            out_BLHE = jax.nn.dot_product_attention(q_BLHE, k_BSJE, v_BSJE, mask=mask_B1LS)
        out_BLD = project(out_BLHE, self.o[...].astype(self.dtype), contract=2)
        return out_BLD if self.o_bias is None else out_BLD + self.o_bias[...].astype(self.dtype)

    def __call__(
        self, x_BLD: jax.Array, positions_BL: jax.Array, mask_B1LL: jax.Array, inv_freq: np.ndarray
    ) -> jax.Array:
        q_BLHE, k_BLJE, v_BLJE = self.project_qkv(x_BLD, positions_BL, inv_freq)
        return self.attend(q_BLHE, k_BLJE, v_BLJE, mask_B1LL)

    def _heads(self, x_BLD: jax.Array, kernel: nnx.Param, bias: nnx.Param | None) -> jax.Array:
        y_BLXE = project(x_BLD, kernel[...].astype(self.dtype), contract=1)
        return y_BLXE if bias is None else y_BLXE + bias[...].astype(self.dtype)


def _single_query_attention(q_B1HE, k_BSJE, v_BSJE, mask_B11S) -> jax.Array:
    """Attention of one query per row (a decode step) as fused multiply-reduces over the cached keys/values.

    A decode step is memory-bound: it must stream the whole cache once. Written as a batch of [1, S] matmuls,
    XLA:CPU runs many tiny GEMMs and took a third longer per step on a 25M model; as elementwise products
    reduced over head_dim and then over S, each is one pass over the cache. Scores and softmax are float32.
    """
    B, _, H, E = q_B1HE.shape
    J = k_BSJE.shape[2]
    q_BJQE = q_B1HE.reshape(B, J, H // J, E).astype(jnp.float32) * (E**-0.5)
    scores_BSJQ = jnp.sum(q_BJQE[:, None] * k_BSJE[:, :, :, None, :].astype(jnp.float32), axis=-1)
    scores_BSJQ = jnp.where(mask_B11S[:, 0, 0, :, None, None], scores_BSJQ, jnp.finfo(jnp.float32).min)
    probs_BSJQ = jax.nn.softmax(scores_BSJQ, axis=1)
    out_BJQE = jnp.sum(probs_BSJQ[..., None] * v_BSJE[:, :, :, None, :].astype(jnp.float32), axis=1)
    return out_BJQE.reshape(B, 1, H, E).astype(q_B1HE.dtype)
