"""How the next token is chosen from the model's logits: greedy, or sampling with temperature, top-k, top-p, min-p.

A strategy is either one static `SamplingConfig` for the whole batch (`generate`) or one per row (`RowSampling`,
the serving engine's slots, where requests with different parameters decode together).

The filters run in the order transformers applies them (temperature, top-k, top-p, min-p), each one removing
tokens by setting their logit to -inf, so the sampling distribution is the model's softmax renormalised over the
kept set. Ties at a threshold are kept, so a filter may keep a few more than k tokens but never drops one that
belongs in its set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """A decoding strategy. Frozen and hashable: it is a static argument of the compiled decoder.

    Attributes:
      temperature: 0 for greedy decoding (argmax); otherwise logits are divided by it before sampling.
      top_k: keep the k most likely tokens (0: off).
      top_p: keep the smallest set of most likely tokens whose probability reaches p (1.0: off).
      min_p: keep tokens at least min_p times as likely as the most likely one (0.0: off).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 disables it), got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError(f"min_p must be in [0, 1] (0 disables it), got {self.min_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@struct.dataclass
class RowSampling:
    """One decoding strategy per row, as arrays [B]: rows with different strategies share one compiled step.

    The same fields as `SamplingConfig`, with the same meaning (temperature 0: greedy; top_k 0, top_p 1, min_p 0:
    off). A row's tokens equal those `choose_tokens` draws with its strategy as a static config.
    """

    temperature_B: jax.Array
    top_k_B: jax.Array
    top_p_B: jax.Array
    min_p_B: jax.Array

    @classmethod
    def of(cls, configs: Sequence[SamplingConfig]) -> RowSampling:
        """The rows' strategies as numpy arrays, to place on device or write into a batch."""
        return cls(
            temperature_B=np.array([c.temperature for c in configs], np.float32),
            top_k_B=np.array([c.top_k for c in configs], np.int32),
            top_p_B=np.array([c.top_p for c in configs], np.float32),
            min_p_B=np.array([c.min_p for c in configs], np.float32),
        )


def filtered_logits(logits_BV: jax.Array, config: SamplingConfig) -> jax.Array:
    """The logits of the sampling distribution: tempered, with the tokens outside every filter set to -inf."""
    logits_BV = logits_BV.astype(jnp.float32) / config.temperature
    if config.top_k > 0 and config.top_k < logits_BV.shape[-1]:
        logits_BV = _keep_from(logits_BV, jax.lax.top_k(logits_BV, config.top_k)[0][..., -1:])
    if config.top_p < 1.0:
        logits_BV = _top_p(logits_BV, config.top_p)
    if config.min_p > 0.0:
        logits_BV = _min_p(logits_BV, config.min_p)
    return logits_BV


def filtered_logits_per_row(logits_BV: jax.Array, rows: RowSampling) -> jax.Array:
    """`filtered_logits` with each row's own strategy (greedy rows are left untempered)."""
    V = logits_BV.shape[-1]
    temperature_B1 = jnp.where(rows.temperature_B > 0, rows.temperature_B, 1.0)[:, None]
    top_k_B1, top_p_B1, min_p_B1 = rows.top_k_B[:, None], rows.top_p_B[:, None], rows.min_p_B[:, None]
    logits_BV = logits_BV.astype(jnp.float32) / temperature_B1

    def rank_filters(logits_BV):
        descending_BV = -jnp.sort(-logits_BV, axis=-1)
        kth_largest_B1 = jnp.take_along_axis(descending_BV, jnp.clip(top_k_B1 - 1, 0, V - 1), axis=-1)
        logits_BV = jnp.where(top_k_B1 > 0, _keep_from(logits_BV, kth_largest_B1), logits_BV)
        return jnp.where(top_p_B1 < 1.0, _top_p(logits_BV, top_p_B1), logits_BV)

    # the sorts cost as much as a small model's decode step: only when some row filters by rank
    needs_rank = jnp.any((rows.top_k_B > 0) | (rows.top_p_B < 1.0))
    logits_BV = jax.lax.cond(needs_rank, rank_filters, lambda x: x, logits_BV)
    return jnp.where(min_p_B1 > 0.0, _min_p(logits_BV, min_p_B1), logits_BV)


def _keep_from(logits_BV: jax.Array, threshold_B1: jax.Array) -> jax.Array:
    """Keeps the logits at or above each row's threshold (top-k's k-th largest: ties at it are kept)."""
    return jnp.where(logits_BV >= threshold_B1, logits_BV, -jnp.inf)


def _top_p(logits_BV: jax.Array, top_p) -> jax.Array:
    """Keeps the most likely tokens until their mass reaches `top_p` (the token that crosses it included)."""
    probs_BV = jax.nn.softmax(logits_BV)
    descending_BV = -jnp.sort(-probs_BV, axis=-1)
    mass_before_BV = jnp.cumsum(descending_BV, axis=-1) - descending_BV
    kept_count_B1 = jnp.sum(mass_before_BV < top_p, axis=-1, keepdims=True)
    smallest_kept_B1 = jnp.take_along_axis(descending_BV, kept_count_B1 - 1, axis=-1)
    return jnp.where(probs_BV >= smallest_kept_B1, logits_BV, -jnp.inf)


def _min_p(logits_BV: jax.Array, min_p) -> jax.Array:
    """Keeps the tokens at least `min_p` times as likely as the most likely one."""
    logprobs_BV = jax.nn.log_softmax(logits_BV)
    threshold_B1 = jnp.max(logprobs_BV, axis=-1, keepdims=True) + jnp.log(min_p)
    return jnp.where(logprobs_BV >= threshold_B1, logits_BV, -jnp.inf)


def choose_tokens(keys_B: jax.Array, logits_BV: jax.Array, config: SamplingConfig) -> tuple[jax.Array, jax.Array]:
    """The next token of each row and its log-probability under the sampling distribution.

    Args:
      keys_B: one PRNG key per row, so a row's draw does not depend on the other rows of the batch.
      logits_BV: the model's next-token logits.

    Returns:
      tokens_B (int32) and sampling_logprobs_B (0 for greedy decoding, whose distribution is a point mass).
    """
    if config.greedy:
        return first_argmax(logits_BV), jnp.zeros(logits_BV.shape[:1], jnp.float32)
    return _draw(keys_B, filtered_logits(logits_BV, config))


def choose_tokens_per_row(keys_B: jax.Array, logits_BV: jax.Array, rows: RowSampling) -> jax.Array:
    """`choose_tokens` with each row's own strategy: the next token of each row (int32)."""
    greedy_tokens_B = first_argmax(logits_BV)
    greedy_B = rows.temperature_B == 0

    def sample(_):
        tokens_B, _ = _draw(keys_B, filtered_logits_per_row(logits_BV, rows))
        return jnp.where(greedy_B, greedy_tokens_B, tokens_B)

    return jax.lax.cond(jnp.all(greedy_B), lambda _: greedy_tokens_B, sample, None)


def _draw(keys_B: jax.Array, filtered_BV: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A draw from each row's softmax of `filtered_BV`, and its log-probability.

    `jax.random.categorical`'s draw (the Gumbel-max trick with the same noise), with a faster argmax.
    """
    V = filtered_BV.shape[-1]
    gumbel_BV = jax.vmap(lambda key: jax.random.gumbel(key, (V,), filtered_BV.dtype))(keys_B)
    tokens_B = first_argmax(filtered_BV + gumbel_BV)
    logprobs_BV = jax.nn.log_softmax(filtered_BV)
    return tokens_B, jnp.take_along_axis(logprobs_BV, tokens_B[:, None], axis=-1)[:, 0]


def first_argmax(x_BV: jax.Array) -> jax.Array:
    """`jnp.argmax(x_BV, axis=-1)` as int32 (the first index of each row's maximum); a row with NaN gives its last
    index (argmax: the NaN's), still a valid token.

    XLA:CPU runs `argmax` as one reduction over (value, index) pairs, which it does not vectorise; a max and then a
    min over the indices that reach it are two vectorised reductions, several times faster on a decode step's
    logits (benchmarks/RESULTS.md).
    """
    max_B1 = jnp.max(x_BV, axis=-1, keepdims=True)
    index_V = jnp.arange(x_BV.shape[-1], dtype=jnp.int32)
    return jnp.minimum(jnp.min(jnp.where(x_BV == max_B1, index_V, x_BV.shape[-1]), axis=-1), x_BV.shape[-1] - 1)
