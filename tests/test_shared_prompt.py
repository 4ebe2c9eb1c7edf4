"""The shared-prompt forward pass (each group's prompt runs once) equals the plain pass over the full rows: the
answer logits and their gradient, for prompts of different lengths (left padding), answers that end early, a
sliding window, Qwen3-style q/k norms with biases, and rematerialised blocks; and a value model's values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.models import ModelConfig, RopeConfig, init_model
from alignjax.models.reward import RewardModel
from alignjax.rl.rollout import answer_logits, response_values, token_rows

PROMPT_LEN, T, K = 7, 5, 3

VARIANTS = {
    "llama": {},
    "sliding_window": {"sliding_window": 4},
    "qk_norm_and_biases": {"qk_norm": True, "qkv_bias": True, "o_bias": True, "mlp_bias": True},
    "remat": {"remat": True},
}


def _model(**changes):
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=50, hidden_size=32, intermediate_size=48, num_layers=2,
        num_heads=4, num_kv_heads=2, head_dim=8, rope=RopeConfig(theta=10000.0), max_position_embeddings=64,
        **changes,
    )
    return init_model(cfg, seed=0)


def _rows(rng):
    prompts = [list(rng.integers(2, 50, n)) for n in (7, 3, 5, 1)]  # 4 prompts, k = 3 answers each
    prompt_index_N = np.repeat(np.arange(len(prompts)), K)
    tokens_NT = rng.integers(2, 50, (len(prompt_index_N), T))
    lengths_N = rng.integers(1, T + 1, len(prompt_index_N))
    rows = token_rows(prompts, prompt_index_N, tokens_NT, lengths_N, PROMPT_LEN, pad_id=0)
    return {k: jnp.asarray(v) for k, v in rows.items()}, (np.arange(T) < lengths_N[:, None])


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_shared_prompt_logits_and_gradients_equal_the_full_rows(variant):
    model = _model(**VARIANTS[variant])
    graphdef, params = nnx.split(model)
    rows, answer_mask_NT = _rows(np.random.default_rng(0))
    weights_NTV = jax.random.normal(jax.random.key(1), (len(answer_mask_NT), T, 50)) * answer_mask_NT[..., None]

    def weighted_logits(params, group_size):
        logits_NTV = answer_logits(params, rows, graphdef=graphdef, prompt_len=PROMPT_LEN, group_size=group_size)
        return jnp.sum(logits_NTV * weights_NTV), logits_NTV

    results = {
        k: jax.jit(jax.value_and_grad(weighted_logits, has_aux=True), static_argnums=1)(params, k) for k in (1, K)
    }
    (_, plain_NTV), plain_grads = results[1]
    (_, shared_NTV), shared_grads = results[K]
    real = answer_mask_NT.astype(bool)
    np.testing.assert_allclose(np.asarray(shared_NTV)[real], np.asarray(plain_NTV)[real], atol=1e-5)
    for path, plain, shared in zip(
        jax.tree_util.tree_leaves_with_path(plain_grads), jax.tree.leaves(plain_grads), jax.tree.leaves(shared_grads)
    ):
        np.testing.assert_allclose(shared, plain, atol=1e-4, rtol=1e-4, err_msg=jax.tree_util.keystr(path[0]))


@pytest.mark.slow
def test_rows_must_split_into_groups():
    model = _model()
    graphdef, params = nnx.split(model)
    rows, _ = _rows(np.random.default_rng(0))
    with pytest.raises(AssertionError, match="12 rows do not split into groups of 5"):
        answer_logits(params, rows, graphdef=graphdef, prompt_len=PROMPT_LEN, group_size=5)


@pytest.mark.slow
def test_shared_prompt_values_of_a_value_model_equal_the_full_rows():
    critic = RewardModel(_model(), rngs=nnx.Rngs(1))
    graphdef, params = nnx.split(critic)
    rows, answer_mask_NT = _rows(np.random.default_rng(1))
    plain_NT, shared_NT = (
        response_values(params, rows, graphdef=graphdef, prompt_len=PROMPT_LEN, group_size=k) for k in (1, K)
    )
    np.testing.assert_allclose(np.asarray(shared_NT) * answer_mask_NT, np.asarray(plain_NT) * answer_mask_NT, atol=1e-5)
