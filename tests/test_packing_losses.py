"""Packing changes the layout, not the numbers: each example's loss is the same packed or alone in a row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.data import encode_chat, load_builtin_tokenizer
from alignjax.data.packing import first_fit, layout_rows
from alignjax.losses import token_logprobs
from alignjax.models import ModelConfig, RopeConfig, init_model


def _per_segment_nll(model, batch) -> dict[tuple[int, int], float]:
    """(row, segment id) -> the summed response-token NLL of that segment."""
    graphdef, params = nnx.split(model)
    forward = jax.jit(lambda params, *inputs: nnx.merge(graphdef, params)(*inputs))  # 1 compile, not 1 per op
    logits_BLV = forward(
        params, jnp.asarray(batch["tokens"]), jnp.asarray(batch["positions"]), jnp.asarray(batch["segment_ids"])
    )
    nll_BL = -np.asarray(token_logprobs(logits_BLV, jnp.asarray(batch["targets"]))) * batch["loss_mask"]
    sums = {}
    for (r, l), segment in np.ndenumerate(batch["segment_ids"]):
        if segment:
            sums[(r, segment)] = sums.get((r, segment), 0.0) + float(nll_BL[r, l])
    return sums


@pytest.mark.slow
def test_packed_and_unpacked_per_example_losses_agree():
    tokenizer = load_builtin_tokenizer("toy_instructions")
    words = ["cat", "horse", "zebra", "ox", "lemon", "quartz", "jam", "bicycle", "fig", "kiwi", "plum", "yak"]
    tasks = ["reverse", "upper", "sort"]
    examples = [
        encode_chat(
            [{"role": "user", "content": f"{tasks[i % 3]}: {w}"}, {"role": "assistant", "content": w[::-1]}],
            tokenizer, where=f"example {i}",
        )
        for i, w in enumerate(words)
    ]
    seq_len = 64
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, rope=RopeConfig(theta=10000.0),
    )
    model = init_model(cfg, seed=0)
    pad_id = tokenizer.pad_token_id
    unpacked = layout_rows([[i] for i in range(len(examples))], examples, seq_len, pad_id)
    packed_rows = first_fit([len(e) for e in examples], seq_len)
    assert max(len(r) for r in packed_rows) > 1, "the test needs rows holding several examples"
    packed = layout_rows(packed_rows, examples, seq_len, pad_id)

    alone = _per_segment_nll(model, unpacked)
    together = _per_segment_nll(model, packed)
    for r, row in enumerate(packed_rows):
        for segment, example in enumerate(row, start=1):
            assert abs(together[(r, segment)] - alone[(example, 1)]) < 1e-5
    assert len(together) == len(alone) == len(examples)
