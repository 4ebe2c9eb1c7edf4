"""Greedy continuation by re-running the whole sequence each step: a plain reference decoder.

It has no KV cache and exists for checks and for printing a few answers; on-policy data comes from the
sampler. One fixed-length buffer keeps shapes static, and causal attention hides its unfilled tail, so the
model compiles once per (batch, length).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def greedy_continue(model, prompts: list[list[int]], max_new_tokens: int, eos_id: int | None) -> list[list[int]]:
    """The greedy continuation of each prompt (token ids), stopping after `eos_id` (included) or the budget."""
    graphdef, state = nnx.split(model)
    logits_fn = jax.jit(lambda state, tokens_BL: nnx.merge(graphdef, state)(tokens_BL))
    outputs = []
    for prompt in prompts:
        tokens_1L = np.zeros((1, len(prompt) + max_new_tokens), np.int32)
        tokens_1L[0, : len(prompt)] = prompt
        end = tokens_1L.shape[1]
        for n in range(len(prompt), tokens_1L.shape[1]):
            tokens_1L[0, n] = int(jnp.argmax(logits_fn(state, jnp.asarray(tokens_1L))[0, n - 1]))
            if tokens_1L[0, n] == eos_id:
                end = n + 1
                break
        outputs.append(tokens_1L[0, len(prompt) : end].tolist())
    return outputs
