"""The key/value cache and the model's forward pass over it.

The cache holds, for every layer, the rotated keys and the values of every token seen so far in fixed slots
[B, S, J, E], with `S` = prompt bucket + new tokens, plus which slots hold a real token. A forward pass of T new
tokens writes their keys/values at slots `start .. start+T-1` and attends over the cache, using the model's own
`project_qkv` / `attend` / MLP so that cached and uncached forwards cannot drift apart. The cache is sharded
like the activations: the batch over the data-parallel axes, the key/value heads over `tensor`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from alignjax import sharding
from alignjax.models.attention import attention_mask
from alignjax.models.rope import inverse_frequencies
from alignjax.models.transformer import Transformer

CACHE_AXES = ("batch", "length", "kv_heads", "head_dim")


@struct.dataclass
class KVCache:
    """Per-layer keys and values [B, S, J, E] and `filled_BS`: True where a slot holds a real token."""

    keys: list[jax.Array]
    values: list[jax.Array]
    filled_BS: jax.Array

    @property
    def length(self) -> int:
        return self.filled_BS.shape[1]

    def repeat(self, n: int) -> KVCache:
        """Each row repeated n times in place (row b becomes rows b*n .. b*n+n-1): n samples share one prefill."""
        return jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), self)


def empty_cache(model: Transformer, batch: int, length: int, mesh=None) -> KVCache:
    """An all-empty cache for `batch` rows of `length` slots, in the model's compute dtype."""
    cfg = model.config
    shape = (batch, length, cfg.num_kv_heads, cfg.head_dim)
    zeros = [jnp.zeros(shape, cfg.dtype) for _ in range(cfg.num_layers)]
    cache = KVCache(keys=zeros, values=list(zeros), filled_BS=jnp.zeros((batch, length), bool))
    return constrain(cache, mesh)


def constrain(cache: KVCache, mesh) -> KVCache:
    """Pins the cache to its sharding on `mesh` (a no-op without a mesh)."""
    if mesh is None:
        return cache
    kv_sharding = sharding.logical_sharding(CACHE_AXES, cache.keys[0].shape, mesh)
    filled_sharding = sharding.logical_sharding(CACHE_AXES[:2], cache.filled_BS.shape, mesh)

    def pin(x, s):
        return jax.lax.with_sharding_constraint(x, s)

    return KVCache(
        keys=[pin(k, kv_sharding) for k in cache.keys],
        values=[pin(v, kv_sharding) for v in cache.values],
        filled_BS=pin(cache.filled_BS, filled_sharding),
    )


def forward_with_cache(
    model: Transformer,
    tokens_BT: jax.Array,
    positions_BT: jax.Array,
    real_BT: jax.Array,
    cache: KVCache,
    start: int | jax.Array,
    window: int | None = None,
) -> tuple[jax.Array, KVCache]:
    """Runs T new tokens through the model, reading and extending the cache.

    Args:
      tokens_BT: the new tokens.
      positions_BT: their positions (RoPE), counting real tokens only, so left padding does not shift them.
      real_BT: False for padding, which is stored but never attended to.
      cache: keys/values of slots before `start`.
      start: the slot of the first new token; a Python int (the prefill) lets attention read only the filled
        prefix of the cache, a traced int (a decode step) reads all of it under the mask, and an int array [B]
        gives each row its own slot (the serving engine's rows, each at its own point of its answer).
      window: with a traced `start`, attend over the first `window` slots only (the caller knows that no row has
        written past them): a decode step streams the keys/values it can see, not the whole context's.

    Returns:
      The final-norm hidden states of the new tokens [B, T, D] and the cache with their keys/values written.
    """
    cfg = model.config
    B, T = tokens_BT.shape
    filled_BS = _write(cache.filled_BS, real_BT, start)
    visible = start + T if isinstance(start, int) else window or cache.length
    slots_BS = jnp.broadcast_to(jnp.arange(visible, dtype=jnp.int32), (B, visible))
    q_slots_BT = jnp.reshape(start, (-1, 1)) + jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
    mask_B1TS = attention_mask(
        real_BT.astype(jnp.int32), filled_BS[:, :visible].astype(jnp.int32), q_slots_BT, slots_BS, cfg.sliding_window
    )
    inv_freq = inverse_frequencies(cfg.rope, cfg.head_dim)
    x_BTD = model.embed_tokens(tokens_BT)
    keys, values = [], []
    for block, cached_k, cached_v in zip(model.layers, cache.keys, cache.values):
        q_BTHE, k_BTJE, v_BTJE = block.attn.project_qkv(block.attn_norm(x_BTD), positions_BT, inv_freq)
        cached_k = _write(cached_k, k_BTJE.astype(cached_k.dtype), start)
        cached_v = _write(cached_v, v_BTJE.astype(cached_v.dtype), start)
        keys.append(cached_k)
        values.append(cached_v)
        x_BTD = x_BTD + block.attn.attend(q_BTHE, cached_k[:, :visible], cached_v[:, :visible], mask_B1TS)
        x_BTD = x_BTD + block.mlp(block.mlp_norm(x_BTD))
    return model.final_norm(x_BTD), KVCache(keys=keys, values=values, filled_BS=filled_BS)


def _write(cached_BS: jax.Array, new_BT: jax.Array, start: int | jax.Array) -> jax.Array:
    """`new_BT` written into `cached_BS` (any trailing dims) from slot `start`, or from row b's `start[b]`."""
    if jnp.ndim(start) == 1:
        at_row = jax.vmap(lambda cached, new, s: jax.lax.dynamic_update_slice_in_dim(cached, new, s, axis=0))
        return at_row(cached_BS, new_BT, start)
    return jax.lax.dynamic_update_slice_in_dim(cached_BS, new_BT, start, axis=1)
