"""The compiled decoder: one prefill of the prompts, then a `jax.lax.while_loop` of single-token steps.

Everything between the prompts going in and the samples coming out runs on device in one program: no host
round-trip per token, and the loop exits as soon as every row has emitted a stop token. Shapes are static (the
batch, the prompt bucket and `max_new_tokens`), so repeated calls with the same shapes reuse the compiled program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.experimental import io_callback

from alignjax.sampling.kv_cache import constrain, empty_cache, forward_with_cache
from alignjax.sampling.strategies import SamplingConfig, choose_tokens

# A host function called with (tokens_N, emitted_N) after every decode step; None for no streaming.
StreamFn = Callable[[jax.Array, jax.Array], None] | None


@functools.partial(
    jax.jit, static_argnames=("graphdef", "max_new_tokens", "config", "num_samples", "pad_id", "mesh", "stream")
)
def decode(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    prompts_BP: jax.Array,
    prompt_real_BP: jax.Array,
    row_live_B: jax.Array,
    stop_tokens_BM: jax.Array,
    rng: jax.Array,
    *,
    max_new_tokens: int,
    config: SamplingConfig,
    num_samples: int,
    pad_id: int,
    mesh=None,
    stream: StreamFn = None,
) -> dict[str, jax.Array]:
    """Samples `num_samples` continuations of each left-padded prompt.

    Args:
      graphdef, params: the model, split (`nnx.split`); params may be a training state's, used in place.
      prompts_BP: left-padded prompt tokens; the last column is every live row's last prompt token.
      prompt_real_BP: False on padding.
      row_live_B: False for rows that only pad the batch to its bucket; they start finished.
      stop_tokens_BM: each row's stop tokens, -1 where unused.
      rng: the PRNG key; sample j of prompt b draws from fold_in(rng, b * num_samples + j), whatever the batch.

    Returns:
      Arrays over N = B * num_samples rows (row b * num_samples + j is sample j of prompt b):
      tokens_NT (pad_id after the end), logprobs_NT under the model's own softmax and sampling_logprobs_NT under
      the filtered, tempered distribution (both 0 after the end), lengths_N (tokens emitted, the stop token
      included), stopped_N (ended on a stop token rather than the budget).
    """
    model = nnx.merge(graphdef, params)
    B, P = prompts_BP.shape
    N, T = B * num_samples, max_new_tokens
    positions_BP = jnp.maximum(jnp.cumsum(prompt_real_BP, axis=1) - 1, 0).astype(jnp.int32)
    cache = empty_cache(model, B, P + T, mesh)
    h_BPD, cache = forward_with_cache(model, prompts_BP, positions_BP, prompt_real_BP, cache, start=0)
    logits_NV = jnp.repeat(model.logits(h_BPD[:, -1:])[:, 0], num_samples, axis=0)
    cache = constrain(cache.repeat(num_samples), mesh)
    stop_tokens_NM = jnp.repeat(stop_tokens_BM, num_samples, axis=0)
    row_keys_N = jax.vmap(jax.random.fold_in, (None, 0))(rng, jnp.arange(N, dtype=jnp.uint32))

    def still_going(carry):
        return (carry["t"] < T) & ~jnp.all(carry["done_N"])

    def step(carry):
        t, logits_NV, done_N = carry["t"], carry["logits_NV"], carry["done_N"]
        keys_N = jax.vmap(jax.random.fold_in, (0, None))(row_keys_N, t)
        tokens_N, sampling_logprobs_N = choose_tokens(keys_N, logits_NV, config)
        logprobs_N = jnp.take_along_axis(jax.nn.log_softmax(logits_NV), tokens_N[:, None], axis=-1)[:, 0]
        emitted_N = ~done_N
        tokens_N = jnp.where(emitted_N, tokens_N, pad_id)
        if stream is not None:
            io_callback(stream, None, tokens_N, emitted_N, ordered=True)
        h_N1D, cache = forward_with_cache(
            model, tokens_N[:, None], carry["positions_N"][:, None], emitted_N[:, None], carry["cache"], P + t
        )

        def column(out_NT, value_N):
            return jax.lax.dynamic_update_slice(out_NT, value_N[:, None], (0, t))

        return {
            "t": t + 1,
            "logits_NV": model.logits(h_N1D)[:, 0],
            "done_N": done_N | jnp.any(tokens_N[:, None] == stop_tokens_NM, axis=-1),
            "positions_N": carry["positions_N"] + 1,
            "cache": cache,
            "tokens_NT": column(carry["tokens_NT"], tokens_N),
            "logprobs_NT": column(carry["logprobs_NT"], jnp.where(emitted_N, logprobs_N, 0.0)),
            "sampling_logprobs_NT": column(
                carry["sampling_logprobs_NT"], jnp.where(emitted_N, sampling_logprobs_N, 0.0)
            ),
            "lengths_N": carry["lengths_N"] + emitted_N,
        }

    start = {
        "t": jnp.int32(0),
        "logits_NV": logits_NV,
        "done_N": ~jnp.repeat(row_live_B, num_samples),
        "positions_N": jnp.repeat(positions_BP[:, -1] + 1, num_samples),
        "cache": cache,
        "tokens_NT": jnp.full((N, T), pad_id, jnp.int32),
        "logprobs_NT": jnp.zeros((N, T), jnp.float32),
        "sampling_logprobs_NT": jnp.zeros((N, T), jnp.float32),
        "lengths_N": jnp.zeros((N,), jnp.int32),
    }
    end = jax.lax.while_loop(still_going, step, start)
    stopped_N = end["done_N"] & jnp.repeat(row_live_B, num_samples)  # live rows are done only by a stop token
    keep = ("tokens_NT", "logprobs_NT", "sampling_logprobs_NT", "lengths_N")
    return {**{name: end[name] for name in keep}, "stopped_N": stopped_N}
