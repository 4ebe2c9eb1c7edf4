"""save_pretrained writes what transformers loads, sharded indexes load both ways, tokenizers come along."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax.models import from_pretrained, save_pretrained

from hf_tiny import hf_logits, random_batch, save_hf_model, transformers

TOL = 1e-4


@pytest.mark.parametrize("kind", ["llama3_rope", "qwen2", "qwen3"])
def test_save_then_transformers_loads_same_logits(kind, tmp_path):
    save_hf_model(kind, tmp_path / "src")
    model = from_pretrained(str(tmp_path / "src"))
    save_pretrained(model, str(tmp_path / "out"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids_BL, mask_BL = random_batch(model.config.vocab_size)
    ours = np.asarray(model(jnp.asarray(ids_BL), segment_ids_BL=jnp.asarray(mask_BL)))
    real = mask_BL.astype(bool)
    assert np.abs(ours - hf_logits(reloaded, ids_BL, mask_BL))[real].max() < TOL


def test_sharded_index_written_by_us_loads_in_both(tmp_path):
    hf_model = save_hf_model("llama", tmp_path / "src")
    model = from_pretrained(str(tmp_path / "src"))
    save_pretrained(model, str(tmp_path / "out"), max_shard_size=40_000)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert not (tmp_path / "out" / "model.safetensors").exists()
    ids_BL, _ = random_batch(model.config.vocab_size)
    expected = hf_logits(hf_model, ids_BL)
    ours = np.asarray(from_pretrained(str(tmp_path / "out"))(jnp.asarray(ids_BL)))
    np.testing.assert_allclose(ours, expected, atol=TOL, rtol=0)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    np.testing.assert_allclose(hf_logits(theirs, ids_BL), expected, atol=TOL, rtol=0)


def test_sharded_index_written_by_transformers_loads(tmp_path):
    hf_model = save_hf_model("qwen2", tmp_path / "src", seed=3)
    hf_model.save_pretrained(tmp_path / "sharded", max_shard_size="30KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    ids_BL, _ = random_batch(hf_model.config.vocab_size)
    ours = np.asarray(from_pretrained(str(tmp_path / "sharded"))(jnp.asarray(ids_BL)))
    np.testing.assert_allclose(ours, hf_logits(hf_model, ids_BL), atol=TOL, rtol=0)


def test_bfloat16_params_round_trip(tmp_path):
    save_hf_model("mistral", tmp_path / "src")
    model = from_pretrained(str(tmp_path / "src"), param_dtype="bfloat16")
    save_pretrained(model, str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == "bfloat16"
    again = from_pretrained(str(tmp_path / "out"), param_dtype="bfloat16")
    for a, b in zip(jnp.asarray(model.embed[...]).ravel()[:50], jnp.asarray(again.embed[...]).ravel()[:50]):
        assert a == b
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert str(reloaded.dtype) == "torch.bfloat16"


def test_tokenizer_files_travel_with_the_model(tmp_path):
    save_hf_model("llama", tmp_path / "src")
    tokenizer = _tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "src")
    save_pretrained(from_pretrained(str(tmp_path / "src")), str(tmp_path / "out"))
    assert os.path.exists(tmp_path / "out" / "tokenizer.json")
    loaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert loaded("hello world")["input_ids"] == tokenizer("hello world")["input_ids"]


def _tiny_tokenizer():
    """A word-level tokenizer built in memory: enough to check that tokenizer files are exported."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "hello": 1, "world": 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def test_weights_are_written_with_the_mode_of_every_other_file(tmp_path):
    """safetensors writes through a 0600 temporary file; the weights must still be as readable as config.json."""
    save_hf_model("llama", tmp_path / "src")
    model = from_pretrained(str(tmp_path / "src"))
    umask = os.umask(0o027)
    try:
        save_pretrained(model, str(tmp_path / "single"))
        save_pretrained(model, str(tmp_path / "sharded"), max_shard_size=40_000)
    finally:
        os.umask(umask)
    for directory in ("single", "sharded"):
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / directory).iterdir()}
        assert any(name.endswith(".safetensors") for name in modes)
        assert set(modes.values()) == {"0o640"}, modes
