"""Reward models equal transformers' one-label sequence classifiers, export both ways, and shard like the LM."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from alignjax import sharding
from alignjax.models import (
    ModelConfig,
    ModelConfigError,
    RewardModel,
    from_pretrained,
    init_reward_model,
    last_token_values,
    reward_model_from_causal,
    reward_model_from_pretrained,
    save_pretrained,
)

from hf_tiny import hf_rewards, make_hf_reward_model, random_batch, save_hf_model, transformers

TOL = 1e-5


def padded_batch(vocab_size: int, pad_id: int, batch: int = 3, seed: int = 0):
    """Right-padded rows of lengths 16, 12, 8 whose padding holds `pad_id` and whose real tokens never do, so
    that transformers' rightmost-non-pad rule finds each row's last real token."""
    ids_BL, mask_BL = random_batch(vocab_size, batch=batch, seed=seed)
    ids_BL = np.where(ids_BL == pad_id, (pad_id + 1) % vocab_size, ids_BL)
    return np.where(mask_BL == 1, ids_BL, pad_id).astype(np.int32), mask_BL


def sequence_rewards(model: RewardModel, ids_BL, mask_BL) -> np.ndarray:
    segment_ids_BL = jnp.asarray(mask_BL)
    return np.asarray(last_token_values(model(jnp.asarray(ids_BL), segment_ids_BL=segment_ids_BL), segment_ids_BL))


@pytest.mark.parametrize("kind,pad_id", [("llama", 0), ("qwen2", 5)])
def test_rewards_match_transformers_sequence_classifier(kind, pad_id, tmp_path):
    hf_model = make_hf_reward_model(kind, pad_token_id=pad_id)
    hf_model.save_pretrained(tmp_path)
    model = reward_model_from_pretrained(str(tmp_path))
    assert model.backbone.lm_head is None
    ids_BL, mask_BL = padded_batch(model.config.vocab_size, pad_id)
    np.testing.assert_allclose(
        sequence_rewards(model, ids_BL, mask_BL), hf_rewards(hf_model, ids_BL, mask_BL), atol=TOL, rtol=0
    )


def test_last_token_values_reads_the_last_real_token():
    values_BL = jnp.arange(12, dtype=jnp.float32).reshape(3, 4) + 1
    segment_ids_BL = jnp.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(last_token_values(values_BL, segment_ids_BL), [4.0, 6.0, 0.0])


def test_export_loads_in_transformers_and_back(tmp_path):
    save_hf_model("llama3_rope", tmp_path / "sft")
    model = reward_model_from_causal(from_pretrained(str(tmp_path / "sft")), seed=1)
    with pytest.warns(UserWarning, match="pad_token_id=0"):
        save_pretrained(model, str(tmp_path / "rm"))
    config = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["num_labels"] == 1 and config["pad_token_id"] == 0
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    assert type(theirs).__name__ == "LlamaForSequenceClassification" and theirs.config.num_labels == 1
    ids_BL, mask_BL = padded_batch(model.config.vocab_size, pad_id=0, seed=1)
    ours = sequence_rewards(model, ids_BL, mask_BL)
    np.testing.assert_allclose(ours, hf_rewards(theirs, ids_BL, mask_BL), atol=TOL, rtol=0)
    again = reward_model_from_pretrained(str(tmp_path / "rm"))
    np.testing.assert_array_equal(sequence_rewards(again, ids_BL, mask_BL), ours)


def test_export_takes_pad_token_id_from_the_source_config(tmp_path):
    make_hf_reward_model("qwen3", pad_token_id=7).save_pretrained(tmp_path / "src")
    save_pretrained(reward_model_from_pretrained(str(tmp_path / "src")), str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["pad_token_id"] == 7


def test_causal_directory_gives_its_decoder_a_new_head(tmp_path):
    save_hf_model("llama", tmp_path)  # untied: the LM head is in the checkpoint and must be left out
    causal = from_pretrained(str(tmp_path))
    with pytest.warns(UserWarning, match="new, untrained score head"):
        model = reward_model_from_pretrained(str(tmp_path), seed=3)
    assert model.backbone.lm_head is None and causal.lm_head is not None
    ids_BL, mask_BL = padded_batch(model.config.vocab_size, pad_id=0)
    segment_ids_BL = jnp.asarray(mask_BL)
    h_BLD = np.asarray(causal.hidden_states(jnp.asarray(ids_BL), segment_ids_BL=segment_ids_BL))
    np.testing.assert_array_equal(
        np.asarray(model.backbone.hidden_states(jnp.asarray(ids_BL), segment_ids_BL=segment_ids_BL)), h_BLD
    )
    expected_BL = h_BLD @ np.asarray(model.score[...])[:, 0]
    ours_BL = np.asarray(model(jnp.asarray(ids_BL), segment_ids_BL=segment_ids_BL))
    np.testing.assert_allclose(ours_BL, expected_BL, atol=TOL, rtol=0)
    # The head is drawn as documented, std 1/sqrt(hidden + 1), from the seed.
    assert 0.5 < np.std(np.asarray(model.score[...])) * np.sqrt(model.config.hidden_size + 1) < 1.5
    same_seed = reward_model_from_causal(causal, seed=3)
    np.testing.assert_array_equal(np.asarray(same_seed.score[...]), np.asarray(model.score[...]))


def test_two_labels_is_a_clear_error(tmp_path):
    hf_model = make_hf_reward_model("llama", num_labels=2)
    hf_model.save_pretrained(tmp_path)
    with pytest.raises(ModelConfigError, match="num_labels.*=2.*expected num_labels=1"):
        reward_model_from_pretrained(str(tmp_path))


def test_causal_loader_points_reward_directories_to_the_reward_loader(tmp_path):
    make_hf_reward_model("llama").save_pretrained(tmp_path)
    with pytest.raises(ModelConfigError, match="reward_model_from_pretrained"):
        from_pretrained(str(tmp_path))


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices; conftest sets jax_num_cpu_devices=8")
    return sharding.make_mesh(data=2, fsdp=2, tensor=2, devices=jax.devices()[:8])


@pytest.mark.slow
def test_sharded_rewards_equal_single_device(tmp_path, mesh):
    make_hf_reward_model("qwen2").save_pretrained(tmp_path)
    single = reward_model_from_pretrained(str(tmp_path))
    sharded = reward_model_from_pretrained(str(tmp_path), mesh=mesh)
    assert sharded.score[...].sharding.spec == P("fsdp", None)
    assert sharded.backbone.embed[...].sharding.spec == P("tensor", "fsdp")
    ids_BL, mask_BL = padded_batch(single.config.vocab_size, pad_id=0, batch=4)
    expected_B = sequence_rewards(single, ids_BL, mask_BL)
    batch_sharding = sharding.logical_sharding(("batch", "length"), ids_BL.shape, mesh)
    ids, mask = (jax.device_put(jnp.asarray(a), batch_sharding) for a in (ids_BL, mask_BL))
    graphdef, state = nnx.split(sharded)

    @jax.jit
    def rewards_fn(state, ids_BL, segment_ids_BL):
        return last_token_values(nnx.merge(graphdef, state)(ids_BL, segment_ids_BL=segment_ids_BL), segment_ids_BL)

    with jax.set_mesh(mesh):
        np.testing.assert_allclose(np.asarray(rewards_fn(state, ids, mask)), expected_B, atol=TOL, rtol=0)


def test_init_and_new_head_are_born_sharded(mesh):
    cfg = ModelConfig(
        "LlamaForCausalLM", vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=1, num_heads=4,
        num_kv_heads=2, head_dim=8,
    )
    model = init_reward_model(cfg, seed=0, mesh=mesh)
    assert model.backbone.lm_head is None
    assert model.score[...].sharding.spec == P("fsdp", None)
    assert model.backbone.layers[0].attn.q[...].sharding.spec == P("fsdp", "tensor", None)
    fresh = reward_model_from_causal(model.backbone, seed=1)
    assert fresh.score[...].sharding.spec == P("fsdp", None)
