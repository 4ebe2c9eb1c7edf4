"""The decoder-only transformer shared by every supported architecture (Llama, Mistral, Qwen2, Qwen3).

Inputs are token ids, positions and segment ids rather than an attention-mask tensor: segment ids express padding
(0) and packing (1, 2, ... within a row) in one small integer array, and a Hugging Face 0/1 `attention_mask` is
already a valid value for them.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from alignjax.models.attention import Attention, attention_mask
from alignjax.models.config import ModelConfig
from alignjax.models.layers import MLP, RMSNorm, make_param, project
from alignjax.models.rope import inverse_frequencies


class Block(nnx.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        pd = cfg.param_dtype
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        self.mlp = MLP(
            cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, dtype=cfg.dtype, param_dtype=pd, rngs=rngs
        )

    def __call__(self, x_BLD, positions_BL, mask_B1LL, inv_freq):
        x_BLD = x_BLD + self.attn(self.attn_norm(x_BLD), positions_BL, mask_B1LL, inv_freq)
        return x_BLD + self.mlp(self.mlp_norm(x_BLD))


def rematerialized(layer: Callable, block: Block, *xs: jax.Array):
    """`layer(block, *xs)` whose activations are recomputed in the backward pass instead of stored.

    The block is split into pure arrays first so that `jax.checkpoint` sees a plain function of pytrees.
    """
    graphdef, params = nnx.split(block)

    def run(params, *xs):
        return layer(nnx.merge(graphdef, params), *xs)

    return jax.checkpoint(run)(params, *xs)


class Transformer(nnx.Module):
    """A causal language model: embeddings, `num_layers` blocks, a final norm and the vocabulary projection."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        pd = cfg.param_dtype
        self.config = cfg
        self.embed = make_param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pd)
        self.layers = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype=pd, rngs=rngs)
        self.lm_head = (
            None
            if cfg.tie_word_embeddings
            else make_param(rngs, (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), pd)
        )

    def __call__(
        self, tokens_BL: jax.Array, positions_BL: jax.Array | None = None, segment_ids_BL: jax.Array | None = None
    ) -> jax.Array:
        """Next-token logits, float32 [B, L, V].

        Args:
          tokens_BL: token ids.
          positions_BL: each token's position for RoPE; defaults to 0..L-1 in every row.
          segment_ids_BL: 0 for padding, k > 0 for the k-th example packed into the row; defaults to all ones.
        """
        return self.logits(self.hidden_states(tokens_BL, positions_BL, segment_ids_BL))

    def hidden_states(
        self, tokens_BL: jax.Array, positions_BL: jax.Array | None = None, segment_ids_BL: jax.Array | None = None
    ) -> jax.Array:
        """The final-norm hidden states [B, L, D] that the LM head (or a value/reward head) reads."""
        cfg = self.config
        B, L = tokens_BL.shape
        index_BL = jnp.broadcast_to(jnp.arange(L, dtype=jnp.int32), (B, L))
        positions_BL = index_BL if positions_BL is None else positions_BL
        segment_ids_BL = jnp.ones((B, L), jnp.int32) if segment_ids_BL is None else segment_ids_BL
        mask_B1LL = attention_mask(segment_ids_BL, segment_ids_BL, index_BL, index_BL, cfg.sliding_window)
        inv_freq = inverse_frequencies(cfg.rope, cfg.head_dim)

        def layer(block, x_BLD):
            return block(x_BLD, positions_BL, mask_B1LL, inv_freq)

        x_BLD = self.embed_tokens(tokens_BL)
        for block in self.layers:
            x_BLD = rematerialized(layer, block, x_BLD) if cfg.remat else layer(block, x_BLD)
        return self.final_norm(x_BLD)

    def embed_tokens(self, tokens_BL: jax.Array) -> jax.Array:
        """The input embeddings [B, L, D] of token ids, in the compute dtype."""
        return jnp.take(self.embed[...], tokens_BL, axis=0).astype(self.config.dtype)

    def logits(self, h_BLD: jax.Array) -> jax.Array:
        """Projects hidden states onto the vocabulary (the tied embedding when there is no separate head)."""
        dtype = self.config.dtype
        head_DV = self.embed[...].T if self.lm_head is None else self.lm_head[...]
        return project(h_BLD, head_DV.astype(dtype), contract=1, preferred_element_type=jnp.float32)
