"""Bad checkpoints and unsupported configs fail loudly, naming the file, tensor or field."""

import json

import numpy as np
import pytest
import safetensors.numpy

from alignjax.models import CheckpointError, ModelConfigError, config_from_hf, from_pretrained

from hf_tiny import save_hf_model


@pytest.fixture
def checkpoint(tmp_path):
    save_hf_model("llama", tmp_path)
    return tmp_path


def _edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _edit_tensors(directory, edit):
    path = directory / "model.safetensors"
    tensors = safetensors.numpy.load_file(str(path))
    edit(tensors)
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "pt"})


def test_missing_config(tmp_path):
    with pytest.raises(ModelConfigError, match=r"no config\.json"):
        from_pretrained(str(tmp_path))


def test_config_not_json(checkpoint):
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(ModelConfigError, match=r"config\.json: not valid JSON"):
        from_pretrained(str(checkpoint))


def test_unknown_architecture(checkpoint):
    _edit_config(checkpoint, architectures=["GPT2LMHeadModel"])
    with pytest.raises(ModelConfigError, match=r"architectures=\['GPT2LMHeadModel'\] is not supported"):
        from_pretrained(str(checkpoint))


def test_missing_required_field(checkpoint):
    _edit_config(checkpoint, hidden_size=None)
    with pytest.raises(ModelConfigError, match="'hidden_size' is missing"):
        from_pretrained(str(checkpoint))


@pytest.mark.parametrize(
    "changes, field",
    [
        (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}), "rope_parameters.rope_type"),
        (dict(rope_parameters=None, rope_theta=1e4, rope_scaling={"type": "dynamic", "factor": 2.0}), "rope_scaling"),
        (dict(rope_parameters={"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}), "low_freq_factor"),
        (dict(hidden_act="gelu"), "hidden_act"),
        (dict(num_key_value_heads=3), "num_key_value_heads"),
    ],
)
def test_unsupported_config_values(checkpoint, changes, field):
    _edit_config(checkpoint, **changes)
    with pytest.raises(ModelConfigError, match=field):
        from_pretrained(str(checkpoint))


def test_missing_tensor(checkpoint):
    _edit_tensors(checkpoint, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"'model\.layers\.1\.mlp\.up_proj\.weight' is missing"):
        from_pretrained(str(checkpoint))


def test_wrong_shape(checkpoint):
    def shrink(tensors):
        tensors["model.layers.0.self_attn.k_proj.weight"] = tensors["model.layers.0.self_attn.k_proj.weight"][:8]

    _edit_tensors(checkpoint, shrink)
    expected = r"model\.safetensors: tensor 'model\.layers\.0\.self_attn\.k_proj\.weight' has shape \(8, 64\)"
    with pytest.raises(CheckpointError, match=expected + r", expected \(32, 64\)"):
        from_pretrained(str(checkpoint))


def test_weights_that_the_config_does_not_explain(checkpoint):
    """Biases in the file but attention_bias=false in the config: refuse rather than drop them."""
    _edit_tensors(checkpoint, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": np.zeros(64, np.float32)}))
    with pytest.raises(CheckpointError, match=r"q_proj\.bias.*config and the weights disagree"):
        from_pretrained(str(checkpoint))


def test_index_naming_a_missing_shard(checkpoint):
    (checkpoint / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})
    )
    with pytest.raises(CheckpointError, match=r"index\.json names files that do not exist"):
        from_pretrained(str(checkpoint))


def test_corrupt_safetensors(checkpoint):
    (checkpoint / "model.safetensors").write_bytes(b"\x05")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        from_pretrained(str(checkpoint))


def test_both_rope_layouts_read_the_same():
    base = dict(
        architectures=["LlamaForCausalLM"], vocab_size=8, hidden_size=16, intermediate_size=32,
        num_hidden_layers=1, num_attention_heads=2,
    )
    scaling = dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64)
    old = config_from_hf({**base, "rope_theta": 5e5, "rope_scaling": {"type": "llama3", **scaling}})
    new = config_from_hf({**base, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, **scaling}})
    assert old.rope == new.rope
    assert new.rope.rope_type == "llama3" and new.rope.theta == 5e5 and new.rope.factor == 8.0
    assert config_from_hf(base).rope.theta == 10000.0


def test_qwen_sliding_window_only_when_enabled():
    base = dict(
        architectures=["Qwen2ForCausalLM"], vocab_size=8, hidden_size=16, intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=2, sliding_window=4,
    )
    assert config_from_hf(base).sliding_window is None
    assert config_from_hf({**base, "use_sliding_window": False}).sliding_window is None
    assert config_from_hf({**base, "use_sliding_window": True}).sliding_window == 4
    assert config_from_hf({**base, "layer_types": ["sliding_attention"] * 2}).sliding_window == 4
    assert config_from_hf({**base, "layer_types": ["full_attention"] * 2}).sliding_window is None
    with pytest.raises(ModelConfigError, match="mixes 'sliding_attention' and 'full_attention'"):
        config_from_hf({**base, "layer_types": ["full_attention", "sliding_attention"]})
