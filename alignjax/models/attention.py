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
        D, N, K, H = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        pd = cfg.param_dtype
        zeros = jax.nn.initializers.zeros
        self.dtype: Any = cfg.dtype
        self.q = make_param(rngs, (D, N, H), ("embed", "q_heads", "head_dim"), pd)
        self.k = make_param(rngs, (D, K, H), ("embed", "kv_heads", "head_dim"), pd)
        self.v = make_param(rngs, (D, K, H), ("embed", "kv_heads", "head_dim"), pd)
        self.o = make_param(rngs, (N, H, D), ("q_heads", "head_dim", "embed"), pd)
        qkv_bias = cfg.qkv_bias
        self.q_bias = make_param(rngs, (N, H), ("q_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.k_bias = make_param(rngs, (K, H), ("kv_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.v_bias = make_param(rngs, (K, H), ("kv_heads", "head_dim"), pd, zeros) if qkv_bias else None
        self.o_bias = make_param(rngs, (D,), ("embed",), pd, zeros) if cfg.o_bias else None
        self.q_norm = RMSNorm(H, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs) if cfg.qk_norm else None
        self.k_norm = RMSNorm(H, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs) if cfg.qk_norm else None

    def project_qkv(
        self, x_BLD: jax.Array, positions_BL: jax.Array, inv_freq: np.ndarray
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Queries [B, L, N, H] and keys/values [B, L, K, H], rotated by their positions."""
        x_BLD = x_BLD.astype(self.dtype)
        q_BLNH = self._heads(x_BLD, self.q, self.q_bias)
        k_BLKH = self._heads(x_BLD, self.k, self.k_bias)
        v_BLKH = self._heads(x_BLD, self.v, self.v_bias)
        if self.q_norm is not None:
            q_BLNH, k_BLKH = self.q_norm(q_BLNH), self.k_norm(k_BLKH)
        return apply_rope(q_BLNH, positions_BL, inv_freq), apply_rope(k_BLKH, positions_BL, inv_freq), v_BLKH

    def attend(self, q_BLNH: jax.Array, k_BSKH: jax.Array, v_BSKH: jax.Array, mask_B1LS: jax.Array) -> jax.Array:
        """Attention of L queries over S keys under `mask_B1LS`, projected back to the model width [B, L, D]."""
        if q_BLNH.shape[1] == 1:
            out_BLNH = _single_query_attention(q_BLNH, k_BSKH, v_BSKH, mask_B1LS)
        else:
            out_BLNH = jax.nn.dot_product_attention(q_BLNH, k_BSKH, v_BSKH, mask=mask_B1LS)
        out_BLD = project(out_BLNH, self.o[...].astype(self.dtype), contract=2)
        return out_BLD if self.o_bias is None else out_BLD + self.o_bias[...].astype(self.dtype)

    def __call__(
        self, x_BLD: jax.Array, positions_BL: jax.Array, mask_B1LL: jax.Array, inv_freq: np.ndarray
    ) -> jax.Array:
        q_BLNH, k_BLKH, v_BLKH = self.project_qkv(x_BLD, positions_BL, inv_freq)
        return self.attend(q_BLNH, k_BLKH, v_BLKH, mask_B1LL)

    def _heads(self, x_BLD: jax.Array, kernel: nnx.Param, bias: nnx.Param | None) -> jax.Array:
        y_BLXH = project(x_BLD, kernel[...].astype(self.dtype), contract=1)
        return y_BLXH if bias is None else y_BLXH + bias[...].astype(self.dtype)


def _single_query_attention(q_B1NH, k_BSKH, v_BSKH, mask_B11S) -> jax.Array:
    """Attention of one query per row (a decode step) as fused multiply-reduces over the cached keys/values.

    A decode step is memory-bound: it must stream the whole cache once. Written as a batch of [1, S] matmuls,
    XLA:CPU runs many tiny GEMMs and took a third longer per step on a 25M model; as elementwise products
    reduced over head_dim and then over S, each is one pass over the cache. Scores and softmax are float32.
    """
    B, _, N, H = q_B1NH.shape
    K = k_BSKH.shape[2]
    q_BKGH = q_B1NH.reshape(B, K, N // K, H).astype(jnp.float32) * (H**-0.5)
    scores_BSKG = jnp.sum(q_BKGH[:, None] * k_BSKH[:, :, :, None, :].astype(jnp.float32), axis=-1)
    scores_BSKG = jnp.where(mask_B11S[:, 0, 0, :, None, None], scores_BSKG, jnp.finfo(jnp.float32).min)
    probs_BSKG = jax.nn.softmax(scores_BSKG, axis=1)
    out_BKGH = jnp.sum(probs_BSKG[..., None] * v_BSKH[:, :, :, None, :].astype(jnp.float32), axis=1)
    return out_BKGH.reshape(B, 1, N, H).astype(q_B1NH.dtype)
