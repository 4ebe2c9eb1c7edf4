"""The decoder's forward pass over groups of rows that share their prompt, running each prompt once per group.

On-policy methods sample k answers to each prompt; the reference's forward pass and the policy's update then read
k rows [prompt | answer_j] per prompt, so a plain forward pass computes every prompt k times. Here each layer
runs a group's prompt tokens once; the answers' queries attend over the prompt's keys and values (the same for
all k answers) and over their own answer's. Every other part of a layer (norms, projections, MLP) is per token,
so the hidden states equal the plain pass's on the same rows. With prompts as long as answers and k = 4 this
runs 5/8 of the tokens; the gradient reaching a prompt token is the sum over its k answers, as in the plain pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.models.attention import attention_mask
from alignjax.models.rope import inverse_frequencies
from alignjax.models.transformer import Block, Transformer, rematerialized


def shared_prompt_hidden_states(
    model: Transformer, rows: dict[str, jax.Array], *, prompt_len: int, group_size: int
) -> tuple[jax.Array, jax.Array]:
    """Final-norm hidden states of the prompts [G, P, D] and of the answers [N, T, D].

    Args:
      model: the decoder.
      rows: `tokens`, `positions`, `segment_ids`, [N, P + T]: N = G x group_size rows, each group's rows
        consecutive and holding the same prompt in their first `prompt_len` slots (segment id 0 on padding),
        answers after it, as `alignjax.rl.rollout.token_rows` lays them out.
      prompt_len: P, the prompt's slots in each row.
      group_size: k, the rows per group.
    """
    cfg = model.config
    N, S = rows["tokens"].shape
    G, k, P, T = N // group_size, group_size, prompt_len, S - prompt_len
    assert N % k == 0, f"{N} rows do not split into groups of {k}"

    def prompt_of(x_NS):  # the group's first row's prompt slots, [G, P]
        return x_NS.reshape(G, k, S)[:, 0, :P]

    positions_GP, segments_GP = prompt_of(rows["positions"]), prompt_of(rows["segment_ids"])
    positions_NT, segments_NT = rows["positions"][:, P:], rows["segment_ids"][:, P:]
    index_GP = jnp.broadcast_to(jnp.arange(P, dtype=jnp.int32), (G, P))
    index_NT = jnp.broadcast_to(jnp.arange(P, S, dtype=jnp.int32), (N, T))
    prompt_mask_G1PP = attention_mask(segments_GP, segments_GP, index_GP, index_GP, cfg.sliding_window)
    answer_mask_N1TS = attention_mask(
        segments_NT,
        jnp.concatenate([jnp.repeat(segments_GP, k, axis=0), segments_NT], axis=1),
        index_NT,
        jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (N, S)),
        cfg.sliding_window,
    )
    inv_freq = inverse_frequencies(cfg.rope, cfg.head_dim)

    def layer(block: Block, x_GPD, x_NTD):
        attn = block.attn
        q_GPHE, k_GPJE, v_GPJE = attn.project_qkv(block.attn_norm(x_GPD), positions_GP, inv_freq)
        q_NTHE, k_NTJE, v_NTJE = attn.project_qkv(block.attn_norm(x_NTD), positions_NT, inv_freq)
        x_GPD = x_GPD + attn.attend(q_GPHE, k_GPJE, v_GPJE, prompt_mask_G1PP)
        k_NSJE = jnp.concatenate([jnp.repeat(k_GPJE, k, axis=0), k_NTJE], axis=1)
        v_NSJE = jnp.concatenate([jnp.repeat(v_GPJE, k, axis=0), v_NTJE], axis=1)
        x_NTD = x_NTD + attn.attend(q_NTHE, k_NSJE, v_NSJE, answer_mask_N1TS)
        return x_GPD + block.mlp(block.mlp_norm(x_GPD)), x_NTD + block.mlp(block.mlp_norm(x_NTD))

    x_GPD, x_NTD = model.embed_tokens(prompt_of(rows["tokens"])), model.embed_tokens(rows["tokens"][:, P:])
    for block in model.layers:
        x_GPD, x_NTD = rematerialized(layer, block, x_GPD, x_NTD) if cfg.remat else layer(block, x_GPD, x_NTD)
    return model.final_norm(x_GPD), model.final_norm(x_NTD)
