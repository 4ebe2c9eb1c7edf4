"""Decode slots: the device side of continuous batching.

A fixed number S of rows ("slots"), each with its own cache row of C slots, its own next-token logits, position,
token budget, stop tokens, PRNG key and sampling strategy. Two compiled programs act on them:

  `admit`         a few prompts through the model, their cache rows and logits copied into free slots and the
                  slots' settings written (once per prompt batch and prompt bucket);
  `decode_steps`  a few decode steps of the first `active` slots at once, attending over the first `window`
                  cache slots (once per power of two of active slots and window bucket).

Each slot is at its own point of its answer, so a decode step writes each row's new key/value at that row's own
cache index. A slot that is not live still computes (the shapes are static) but emits nothing. The state is
donated to both, so the cache is updated in place.

Within a live slot, token t is drawn with the key fold_in(row key, t), and the logits and the cache are those
`decode` computes, so a request answers as `generate` does for the same prompt, strategy and key.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx, struct

from alignjax.sampling.kv_cache import KVCache, constrain, empty_cache, forward_with_cache
from alignjax.sampling.strategies import RowSampling, choose_tokens_per_row

# The counts of compilations, by program: the engine's statistics show that shapes stay static.
TRACES = {"admit": 0, "decode_steps": 0}
MAX_TOP_LOGPROBS = 20  # OpenAI's limit


@struct.dataclass
class Slots:
    """The state of S decode slots with C cache slots each; M stop tokens per slot (-1 unused)."""

    cache: KVCache
    logits_SV: jax.Array
    positions_S: jax.Array  # the RoPE position of the next token fed in (real tokens only)
    writes_S: jax.Array  # the cache index it is written at
    emitted_S: jax.Array  # tokens emitted so far: the draw's step, and what the budget counts
    budget_S: jax.Array
    live_S: jax.Array
    keys_S: jax.Array
    sampling: RowSampling
    stop_tokens_SM: jax.Array

    @property
    def num_slots(self) -> int:
        return self.live_S.shape[0]

    @property
    def context(self) -> int:
        return self.cache.length


def empty_slots(model, num_slots: int, context: int, max_stop_tokens: int, mesh=None) -> Slots:
    """S idle slots with C = `context` cache slots each (built by one compiled call, so that no two fields share a
    buffer: the state is donated)."""
    return jax.jit(functools.partial(_empty_slots, model, num_slots, context, max_stop_tokens, mesh))()


def _empty_slots(model, S: int, context: int, max_stop_tokens: int, mesh) -> Slots:
    zeros_S = jnp.zeros((S,), jnp.int32)
    return Slots(
        cache=empty_cache(model, S, context, mesh),
        logits_SV=jnp.zeros((S, model.config.vocab_size), jnp.float32),
        positions_S=zeros_S,
        writes_S=zeros_S,
        emitted_S=zeros_S,
        budget_S=zeros_S,
        live_S=jnp.zeros((S,), bool),
        keys_S=jax.random.split(jax.random.key(0), S),
        sampling=RowSampling(
            temperature_B=jnp.zeros((S,), jnp.float32),
            top_k_B=zeros_S,
            top_p_B=jnp.ones((S,), jnp.float32),
            min_p_B=jnp.zeros((S,), jnp.float32),
        ),
        stop_tokens_SM=jnp.full((S, max_stop_tokens), -1, jnp.int32),
    )


def _prefill(model, tokens_BP: jax.Array, real_BP: jax.Array) -> tuple[KVCache, jax.Array]:
    """Right-padded prompts through the model: their cache rows [B, P] and the logits after each one's last token
    [B, V].

    Right padding puts a prompt at cache slots 0..L-1, so its answer continues at slot L and a slot's budget is
    the context minus the prompt's own length, not its bucket's.
    """
    B, P = tokens_BP.shape
    positions_BP = jnp.maximum(jnp.cumsum(real_BP, axis=1) - 1, 0).astype(jnp.int32)
    h_BPD, cache = forward_with_cache(model, tokens_BP, positions_BP, real_BP, empty_cache(model, B, P), start=0)
    last_B1 = jnp.sum(real_BP, axis=1, keepdims=True) - 1
    h_BD = jnp.take_along_axis(h_BPD, last_B1[:, :, None], axis=1)
    return cache, model.logits(h_BD)[:, 0]


@struct.dataclass
class NewRows:
    """The rows to start, S entries of which the first `count` are real: which prefilled prompt each copies
    (`rows_S`), into which slot, and its settings. A fixed length and a traced count keep one program per prompt
    batch and bucket, however many samples start. Row k draws from fold_in(key(seeds_S[k]), samples_S[k]), the
    key `generate(..., rng=seed)` gives its sample j (a seed counts modulo 2**32 there too)."""

    count: jax.Array
    rows_S: jax.Array
    slots_S: jax.Array
    prompt_lengths_S: jax.Array
    budgets_S: jax.Array
    seeds_S: jax.Array
    samples_S: jax.Array
    sampling: RowSampling
    stop_tokens_SM: jax.Array


@functools.partial(jax.jit, donate_argnames=("slots",), static_argnames=("graphdef", "mesh"))
def admit(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    slots: Slots,
    tokens_BP: jax.Array,
    real_BP: jax.Array,
    new: NewRows,
    mesh=None,
) -> Slots:
    """Prefills B prompts and starts `new.count` rows from them: each one's cache row at cache slots 0..P-1 of its
    slot (the rest marked empty), its logits, budget, key, strategy and stop tokens. One program per (B, P)."""
    TRACES["admit"] += 1
    prompt_cache, logits_BV = _prefill(nnx.merge(graphdef, params), tokens_BP, real_BP)
    C, P = slots.context, prompt_cache.length
    filled_BC = jnp.pad(prompt_cache.filled_BS, ((0, 0), (0, C - P)))
    keys_S = jax.vmap(lambda seed, j: jax.random.fold_in(jax.random.key(seed), j))(new.seeds_S, new.samples_S)

    def start_row(k, slots: Slots) -> Slots:
        b, s = new.rows_S[k], new.slots_S[k]

        def put(all_S, rows_B):
            row = jax.lax.dynamic_index_in_dim(rows_B, b, axis=0, keepdims=True)
            return jax.lax.dynamic_update_slice_in_dim(all_S, row.astype(all_S.dtype), s, axis=0)

        def put_k(all_S, values_S):
            return all_S.at[s].set(values_S[k])

        cache = KVCache(
            keys=[put(k_, row) for k_, row in zip(slots.cache.keys, prompt_cache.keys)],
            values=[put(v, row) for v, row in zip(slots.cache.values, prompt_cache.values)],
            filled_BS=put(slots.cache.filled_BS, filled_BC),
        )
        return Slots(
            cache=cache,
            logits_SV=put(slots.logits_SV, logits_BV),
            positions_S=put_k(slots.positions_S, new.prompt_lengths_S),
            writes_S=put_k(slots.writes_S, new.prompt_lengths_S),
            emitted_S=slots.emitted_S.at[s].set(0),
            budget_S=put_k(slots.budget_S, new.budgets_S),
            live_S=slots.live_S.at[s].set(True),
            keys_S=put_k(slots.keys_S, keys_S),
            sampling=jax.tree.map(put_k, slots.sampling, new.sampling),
            stop_tokens_SM=put_k(slots.stop_tokens_SM, new.stop_tokens_SM),
        )

    slots = jax.lax.fori_loop(0, new.count, start_row, slots)
    return slots.replace(cache=constrain(slots.cache, mesh))


@functools.partial(
    jax.jit,
    donate_argnames=("slots",),
    static_argnames=("graphdef", "steps", "active", "window", "pad_id", "mesh"),
)
def decode_steps(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    slots: Slots,
    release_S: jax.Array,
    want_top: jax.Array,
    *,
    steps: int,
    active: int,
    window: int,
    pad_id: int,
    mesh=None,
) -> tuple[Slots, dict[str, jax.Array]]:
    """`steps` decode steps of the first `active` slots (the others hold no live row), after ending the slots in
    `release_S` (finished on the host). With few requests in flight a step costs what their rows cost, not S; with
    short answers it reads the first `window` cache slots, not the whole context (the caller picks a window that
    every live row's writes of this call fit in). One program per (active, window).

    Returns:
      The new state, and per step k and slot s < active: tokens_KS (pad_id where nothing was emitted), logprobs_KS
      under the model's own softmax, emitted_KS, stopped_KS (emitted a stop token), and the most likely tokens' ids
      and log-probabilities top_ids_KSW / top_logprobs_KSW (W = MAX_TOP_LOGPROBS; computed only when `want_top`,
      else zeros).
    """
    TRACES["decode_steps"] += 1
    model = nnx.merge(graphdef, params)

    def top(logprobs_SV):
        return tuple(jax.lax.top_k(logprobs_SV, MAX_TOP_LOGPROBS))

    def no_top(logprobs_SV):
        S = logprobs_SV.shape[0]
        return jnp.zeros((S, MAX_TOP_LOGPROBS), logprobs_SV.dtype), jnp.zeros((S, MAX_TOP_LOGPROBS), jnp.int32)

    def step(slots: Slots, _):
        keys_S = jax.vmap(jax.random.fold_in)(slots.keys_S, slots.emitted_S.astype(jnp.uint32))
        tokens_S = choose_tokens_per_row(keys_S, slots.logits_SV, slots.sampling)
        logprobs_SV = jax.nn.log_softmax(slots.logits_SV)
        emitted_S = slots.live_S
        tokens_S = jnp.where(emitted_S, tokens_S, pad_id)
        h_S1D, cache = forward_with_cache(
            model,
            tokens_S[:, None],
            slots.positions_S[:, None],
            emitted_S[:, None],
            slots.cache,
            slots.writes_S,
            window=window,
        )
        stopped_S = emitted_S & jnp.any(tokens_S[:, None] == slots.stop_tokens_SM, axis=-1)
        advance_S = emitted_S.astype(jnp.int32)
        emitted_count_S = slots.emitted_S + advance_S
        top_logprobs_SW, top_ids_SW = jax.lax.cond(want_top, top, no_top, logprobs_SV)
        out = {
            "tokens_KS": tokens_S,
            "logprobs_KS": jnp.take_along_axis(logprobs_SV, tokens_S[:, None], axis=-1)[:, 0],
            "emitted_KS": emitted_S,
            "stopped_KS": stopped_S,
            "top_logprobs_KSW": top_logprobs_SW,
            "top_ids_KSW": top_ids_SW,
        }
        slots = slots.replace(
            cache=constrain(cache, mesh),
            logits_SV=model.logits(h_S1D)[:, 0],
            positions_S=slots.positions_S + advance_S,
            # a finished row keeps writing (masked) at its last index, which stays inside the cache
            writes_S=jnp.minimum(slots.writes_S + advance_S, slots.context - 1),
            emitted_S=emitted_count_S,
            live_S=slots.live_S & ~stopped_S & (emitted_count_S < slots.budget_S),
        )
        return slots, out

    slots = slots.replace(live_S=slots.live_S & ~release_S)
    if active == slots.num_slots:
        return jax.lax.scan(step, slots, length=steps)
    rows, out = jax.lax.scan(step, jax.tree.map(lambda x: x[:active], slots), length=steps)
    return jax.tree.map(lambda all_S, rows_A: all_S.at[:active].set(rows_A), slots, rows), out
