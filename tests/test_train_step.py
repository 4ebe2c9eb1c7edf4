"""The pure train step: exact gradient accumulation, mesh invariance, one trace per shape, the SFT loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import alignjax.train.step as step_module
from alignjax import losses, sharding
from alignjax.configs import base_config
from alignjax.models import ModelConfig, init_model
from alignjax.train.optimizer import learning_rate_schedule
from alignjax.train.trainee import Trainee

MODEL = ModelConfig(
    architecture="LlamaForCausalLM", vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
    num_heads=4, num_kv_heads=2, head_dim=8,
)


def _batch(seed=0, B=8, L=16):
    rng = np.random.RandomState(seed)
    loss_mask = (rng.rand(B, L) < 0.6).astype(np.float32)  # uneven token counts per micro-batch
    return dict(
        tokens=rng.randint(0, 64, (B, L)).astype(np.int32),
        positions=np.tile(np.arange(L, dtype=np.int32), (B, 1)),
        segment_ids=np.ones((B, L), np.int32),
        targets=rng.randint(0, 64, (B, L)).astype(np.int32),
        loss_mask=loss_mask,
    )


def _run(mesh_shape=(1, 1, 1), grad_accum=1, steps=4, model_cfg=MODEL, vary_batches=True):
    mesh = sharding.make_mesh(*mesh_shape, devices=jax.devices()[: int(np.prod(mesh_shape))])
    config = base_config()
    config.optim.warmup_steps = 0
    trainee = Trainee.create(init_model(model_cfg, seed=0, mesh=mesh), config.optim, 100, 0, mesh)
    state = trainee.state
    step_fn = step_module.jit_train_step(
        trainee.graphdef, losses.objective("sft"), losses.get("sft"), trainee.optimizer, trainee.schedule, grad_accum,
        trainee.shardings, mesh,
    )
    history = []
    for i in range(steps):
        batch = sharding.put_batch(_batch(seed=i if vary_batches else 0), mesh)
        state, metrics = step_fn(state, batch, None)
        history.append(jax.device_get(metrics))
    return history, state


@pytest.mark.slow
def test_gradient_accumulation_equals_full_batch():
    full, full_state = _run(grad_accum=1)
    accumulated, acc_state = _run(grad_accum=4)
    for a, b in zip(full, accumulated):
        assert abs(a["loss"] - b["loss"]) < 1e-6
        assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-6
    for a, b in zip(jax.tree.leaves(full_state.params), jax.tree.leaves(acc_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)  # Adam rescales tiny gradients


@pytest.mark.slow
def test_eight_devices_equal_one():
    one, _ = _run()
    eight, _ = _run(mesh_shape=(2, 2, 2))
    np.testing.assert_allclose([m["loss"] for m in eight], [m["loss"] for m in one], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_loss_decreases_and_metrics_are_complete():
    history, state = _run(steps=6, vary_batches=False)
    assert int(state.step) == 6
    assert history[-1]["loss"] < history[0]["loss"]
    assert set(history[0]) == {"loss", "grad_norm", "learning_rate", "loss_terms", "token_accuracy"}


@pytest.mark.slow
def test_bfloat16_compute_with_remat_trains():
    cfg = MODEL.replace(dtype=jnp.bfloat16, remat=True)
    history, state = _run(steps=3, model_cfg=cfg)
    assert jax.tree.leaves(state.params)[0].dtype == jnp.float32  # float32 master weights
    assert np.isfinite([m["loss"] for m in history]).all()


@pytest.mark.slow
def test_traced_once_per_shape(train_step_traces):
    _run(steps=5)
    assert len(train_step_traces) == 1


def test_sft_loss_matches_hand_computation():
    logits_BLV = jnp.asarray(np.random.RandomState(0).randn(2, 3, 5), jnp.float32)
    targets_BL = jnp.asarray([[1, 2, 3], [4, 0, 1]])
    mask_BL = jnp.asarray([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    out = losses.get("sft")(logits_BLV, {"targets": targets_BL, "loss_mask": mask_BL})
    logp = jax.nn.log_softmax(np.asarray(logits_BLV), axis=-1)
    expected = -(logp[0, 1, 2] + logp[0, 2, 3] + logp[1, 0, 4])
    assert abs(float(out.total) - float(expected)) < 1e-5
    assert float(out.weight) == 3.0
    with pytest.raises(ValueError, match="registered losses"):
        losses.get("nope")


def test_schedule_warms_up_then_decays():
    optim = base_config().optim
    optim.update(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    schedule = learning_rate_schedule(optim, total_steps=110)
    assert float(schedule(0)) == 0.0
    assert abs(float(schedule(10)) - 1.0) < 1e-6
    assert abs(float(schedule(110)) - 0.1) < 1e-6
    assert float(schedule(60)) < 1.0


@pytest.mark.slow
def test_remat_changes_memory_not_numbers():
    plain, _ = _run(steps=2)
    remat, _ = _run(steps=2, model_cfg=MODEL.replace(remat=True))
    np.testing.assert_allclose([m["loss"] for m in remat], [m["loss"] for m in plain], atol=1e-6, rtol=0)
