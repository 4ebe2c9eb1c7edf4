"""A reward model: the causal LM's decoder with a scalar head reading every position's hidden state.

It is what transformers calls `*ForSequenceClassification` with one label, so checkpoints move both ways. The
head scores every token rather than only the last one: a sequence's reward is the value at its last real token
(`last_token_values`), and PPO's value model reads the same module per token.

The decoder keeps no LM head. Reward and value models never project onto the vocabulary, and an untied head is
a vocabulary-sized matrix (with its gradients and optimizer state) that would only cost memory; a
`*ForSequenceClassification` checkpoint has none either. The backbone is therefore for `hidden_states` only.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from alignjax.models.config import ModelConfig
from alignjax.models.layers import make_param
from alignjax.models.transformer import Transformer


def headless(model: Transformer) -> Transformer:
    """A copy of `model` without its LM head, sharing the other parameters' arrays; `model` is left unchanged."""
    backbone = nnx.clone(model)
    backbone.lm_head = None
    return backbone


class RewardModel(nnx.Module):
    """A decoder (`backbone`) and a linear `score` [hidden, 1], no bias, giving one float32 value per token.

    A new head is drawn from a normal distribution with std 1/sqrt(hidden + 1), the init of the reward and value
    heads of lm-human-preferences and TRL. The final-norm hidden states have unit RMS, so initial rewards are of
    order one; a zero head would also work but would pass no gradient to the backbone on the first steps.
    """

    def __init__(self, backbone: Transformer, *, rngs: nnx.Rngs):
        """Puts a new head on `backbone` (an SFT model, say), which is copied without its LM head.

        Args:
          backbone: the decoder; the given module is left unchanged.
          rngs: draws the head.
        """
        cfg = backbone.config
        init = jax.nn.initializers.normal(stddev=1 / math.sqrt(cfg.hidden_size + 1))
        self.backbone = headless(backbone)
        self.score = make_param(rngs, (cfg.hidden_size, 1), ("embed", None), cfg.param_dtype, init)

    @property
    def config(self) -> ModelConfig:
        """The decoder's configuration."""
        return self.backbone.config

    def __call__(
        self, tokens_BL: jax.Array, positions_BL: jax.Array | None = None, segment_ids_BL: jax.Array | None = None
    ) -> jax.Array:
        """The head's value at every position, float32 [B, L]; arguments as for `Transformer.__call__`."""
        return self.values(self.backbone.hidden_states(tokens_BL, positions_BL, segment_ids_BL))

    def values(self, h_BLD: jax.Array) -> jax.Array:
        """The head's value of final-norm hidden states [B, L, D], float32 [B, L]."""
        score_D = self.score[...][:, 0].astype(self.config.dtype)
        return jnp.einsum("bld,d->bl", h_BLD, score_D, preferred_element_type=jnp.float32)


def last_token_values(values_BL: jax.Array, segment_ids_BL: jax.Array) -> jax.Array:
    """Each row's value at its last real token (the rightmost with segment id > 0), [B].

    With right padding this is the sequence's last token, the one transformers' sequence classifier scores
    when padding holds `pad_token_id`. A row of padding only has no token to read and gives 0.

    Args:
      values_BL: per-token values, e.g. a RewardModel's output.
      segment_ids_BL: 0 on padding.
    """
    L = values_BL.shape[1]
    last_B = jnp.max(jnp.where(segment_ids_BL > 0, jnp.arange(L), -1), axis=1)
    picked_B = jnp.take_along_axis(values_BL, jnp.maximum(last_B, 0)[:, None], axis=1)[:, 0]
    return jnp.where(last_B >= 0, picked_B, jnp.zeros_like(picked_B))
