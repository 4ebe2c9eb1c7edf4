"""Parameters load straight onto a data x fsdp x tensor mesh of 8 simulated devices, as the rules say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from alignjax import sharding
from alignjax.models import from_pretrained, init_model, load_config

from hf_tiny import random_batch, save_hf_model


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < 8:
        pytest.skip("needs 8 (simulated) devices; conftest sets jax_num_cpu_devices=8")
    return sharding.make_mesh(data=2, fsdp=2, tensor=2, devices=jax.devices()[:8])


@pytest.fixture(scope="module", params=["llama3_rope", "qwen3"])
def checkpoint(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save_hf_model(request.param, directory)
    return str(directory)


def test_params_are_sharded_as_the_rules_say(checkpoint, mesh):
    model = from_pretrained(checkpoint, mesh=mesh)
    cfg = model.config
    layer = model.layers[0]
    assert model.embed[...].sharding.spec == P("tensor", "fsdp")
    assert layer.attn.q[...].sharding.spec == P("fsdp", "tensor", None)
    assert layer.attn.o[...].sharding.spec == P("tensor", None, "fsdp")
    assert layer.mlp.gate[...].sharding.spec == P("fsdp", "tensor")
    assert layer.mlp.down[...].sharding.spec == P("tensor", "fsdp")
    assert layer.attn_norm.scale[...].sharding.spec == P(None)
    # Key/value heads that the tensor axis does not divide (qwen3 here has one) are replicated over it.
    expected_kv = P("fsdp", "tensor", None) if cfg.num_kv_heads % 2 == 0 else P("fsdp", None, None)
    assert layer.attn.k[...].sharding.spec == expected_kv
    # Each device holds only its slice: a quarter of the q kernel (fsdp 2 x tensor 2).
    q = layer.attn.q[...]
    shard_shapes = {s.data.shape for s in q.addressable_shards}
    assert shard_shapes == {(q.shape[0] // 2, q.shape[1] // 2, q.shape[2])}


@pytest.mark.slow
def test_sharded_logits_equal_single_device(checkpoint, mesh):
    single = from_pretrained(checkpoint)
    sharded = from_pretrained(checkpoint, mesh=mesh)
    ids_BL, mask_BL = random_batch(single.config.vocab_size, batch=4)
    batch_sharding = sharding.logical_sharding(("batch", "length"), ids_BL.shape, mesh)
    ids = jax.device_put(jnp.asarray(ids_BL), batch_sharding)
    mask = jax.device_put(jnp.asarray(mask_BL), batch_sharding)
    expected = np.asarray(single(jnp.asarray(ids_BL), segment_ids_BL=jnp.asarray(mask_BL)))
    with jax.set_mesh(mesh):
        eager = np.asarray(sharded(ids, segment_ids_BL=mask))
        graphdef, state = nnx.split(sharded)
        logits_fn = jax.jit(lambda state, ids, mask: nnx.merge(graphdef, state)(ids, segment_ids_BL=mask))
        jitted = logits_fn(state, ids, mask)
    np.testing.assert_allclose(eager, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(jitted), expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_random_init_is_born_sharded(checkpoint, mesh):
    cfg = load_config(checkpoint)
    model = init_model(cfg, seed=1, mesh=mesh)
    assert model.layers[0].mlp.up[...].sharding.spec == P("fsdp", "tensor")
    unsharded = init_model(cfg, seed=1)
    np.testing.assert_array_equal(np.asarray(model.layers[0].mlp.up[...]), np.asarray(unsharded.layers[0].mlp.up[...]))


def test_mesh_must_use_the_available_devices():
    with pytest.raises(ValueError, match="product is 8"):
        sharding.make_mesh(data=3, fsdp=1, tensor=1, devices=jax.devices()[:8])


def test_logical_spec_skips_mesh_axes_that_do_not_divide(mesh):
    assert sharding.logical_to_spec(("batch", "length"), (4, 16), mesh) == P(("data", "fsdp"), None)
    assert sharding.logical_to_spec(("batch", "length"), (2, 16), mesh) == P("data", None)
    with pytest.raises(ValueError, match="no sharding rule"):
        sharding.logical_to_spec(("nonsense",), (4,), mesh)
