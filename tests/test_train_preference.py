"""The preference train step: one forward pass per pair, the reference in the step or precomputed, mesh
invariance, one trace, and the SFT → DPO loop on the builtin task with a precomputed reference."""

import functools
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

import alignjax.train.step as step_module
from alignjax import losses, sharding
from alignjax.config_errors import ConfigError
from alignjax.configs import base_config, toy
from alignjax.data.batching import trim_to_bucket
from alignjax.models import ModelConfig, init_model, state_shardings
from alignjax.run import run
from alignjax.train.forward import forward_loss, reference_logps
from alignjax.train.trainee import Trainee

MODEL = ModelConfig(
    architecture="LlamaForCausalLM", vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2,
    num_heads=4, num_kv_heads=2, head_dim=8,
)
B, K, L = 8, 2, 16


def _pairs_batch(seed=0):
    """Random pairs: a prompt of 3..5 tokens, then responses of 2..6 tokens, right-padded to L."""
    rng = np.random.RandomState(seed)
    tokens = np.zeros((B, K, L), np.int32)
    segment_ids = np.zeros((B, K, L), np.int32)
    loss_mask = np.zeros((B, K, L), np.float32)
    for b in range(B):
        prompt = rng.randint(1, 64, rng.randint(3, 6))
        for k in range(K):
            response = rng.randint(1, 64, rng.randint(2, 7))
            row = np.concatenate([prompt, response])
            tokens[b, k, : len(row)] = row
            segment_ids[b, k, : len(row)] = 1
            loss_mask[b, k, len(prompt) - 1 : len(row) - 1] = 1.0  # position t predicts token t + 1
    targets = np.concatenate([tokens[..., 1:], np.zeros((B, K, 1), np.int32)], axis=-1)
    return dict(
        tokens=tokens, positions=np.broadcast_to(np.arange(L, dtype=np.int32), (B, K, L)).copy(),
        segment_ids=segment_ids, targets=targets, loss_mask=loss_mask,
        valid_BK=np.ones((B, K), np.float32), scores_BK=np.tile(np.array([1.0, 0.0], np.float32), (B, 1)),
        labels_B=np.zeros((B,), np.float32),
    )


def _params(seed):
    return nnx.split(init_model(MODEL, seed=seed))


@pytest.mark.slow
def test_summed_logps_sum_exactly_the_response_tokens():
    graphdef, params = _params(0)
    batch = _pairs_batch()
    logps_BK = np.asarray(jax.jit(functools.partial(reference_logps, graphdef=graphdef))(params, batch))
    rows = {k: batch[k].reshape(B * K, L) for k in ("tokens", "positions", "segment_ids")}
    logits_NLV = jax.jit(lambda p, t, pos, seg: nnx.merge(graphdef, p)(t, pos, seg))(
        params, rows["tokens"], rows["positions"], rows["segment_ids"]
    )
    logp_NLV = np.asarray(jax.nn.log_softmax(logits_NLV, axis=-1)).reshape(B, K, L, -1)
    for b in range(B):
        for k in range(K):
            tokens = batch["tokens"][b, k]
            start = int(np.argmax(batch["loss_mask"][b, k]))  # the last prompt position predicts the first answer
            end = int(batch["segment_ids"][b, k].sum())
            expected = sum(logp_NLV[b, k, t, tokens[t + 1]] for t in range(start, end - 1))
            assert abs(logps_BK[b, k] - expected) < 1e-4


@pytest.mark.slow
def test_reference_in_step_equals_precomputed():
    graphdef, params = _params(0)
    _, ref_params = _params(1)
    batch = _pairs_batch()
    forward = jax.jit(functools.partial(
        forward_loss, graphdef=graphdef, objective=losses.objective("dpo"),
        loss_fn=losses.bind(losses.loss_config("dpo")),
    ))
    in_step = forward(params, batch, ref_params)
    ref_logps_BK = jax.jit(functools.partial(reference_logps, graphdef=graphdef))(ref_params, batch)
    precomputed = forward(params, {**batch, "ref_logps_BK": ref_logps_BK}, None)
    assert abs(float(in_step.total) - float(precomputed.total)) < 1e-5
    assert float(in_step.total) != pytest.approx(float(forward(params, batch, params).total), abs=1e-3)  # ref matters
    for name, value in in_step.metrics.items():
        assert abs(float(value) - float(precomputed.metrics[name])) < 1e-4, name


def test_length_buckets_cut_only_padding():
    graphdef, params = _params(0)
    batch = _pairs_batch()
    longest = int(batch["segment_ids"].sum(-1).max())
    trimmed = trim_to_bucket(batch, 4)
    assert trimmed["tokens"].shape[-1] == -(-longest // 4) * 4 < L
    assert trim_to_bucket(batch, 0) is batch and trim_to_bucket(batch, 64)["tokens"].shape[-1] == L
    np.testing.assert_array_equal(trimmed["valid_BK"], batch["valid_BK"])
    logps = jax.jit(functools.partial(reference_logps, graphdef=graphdef))
    np.testing.assert_allclose(logps(params, trimmed), logps(params, batch), atol=1e-5)


def test_kl_per_token_is_zero_against_itself_and_positive_otherwise():
    graphdef, params = _params(0)
    _, other = _params(1)
    batch = _pairs_batch()
    forward = jax.jit(functools.partial(
        forward_loss, graphdef=graphdef, objective=losses.objective("dpo"),
        loss_fn=losses.bind(losses.loss_config("dpo")), with_kl=True,
    ))
    assert abs(float(forward(params, batch, params).metrics["kl_per_token"])) < 1e-5
    assert float(forward(params, batch, other).metrics["kl_per_token"]) > 1e-3


@functools.cache
def _drawn_params(seed):
    """MODEL's initial params, drawn once per seed and kept on the host: each draw compiles its own init program
    (seconds on CPU), and test_mesh.py checks that `init_model` on a mesh draws these same values."""
    graphdef, params = _params(seed)
    return graphdef, jax.device_get(params)


def _model_on(mesh, seed):
    """MODEL initialised with `seed`, its params placed on `mesh` as the sharding rules say, in fresh buffers (the
    train state takes over, and donates, its params' buffers)."""
    graphdef, params = _drawn_params(seed)
    return nnx.merge(graphdef, jax.device_put(params, state_shardings(params, mesh)))


def _run_dpo(mesh_shape, steps=2, grad_accum=1):
    mesh = sharding.make_mesh(*mesh_shape, devices=jax.devices()[: int(np.prod(mesh_shape))])
    _, ref_params = nnx.split(_model_on(mesh, seed=1))
    config = base_config()
    config.optim.warmup_steps = 0
    trainee = Trainee.create(_model_on(mesh, seed=0), config.optim, 100, 0, mesh)
    state = trainee.state
    step_fn = step_module.jit_train_step(
        trainee.graphdef, losses.objective("dpo"), losses.bind(losses.loss_config("dpo", beta=0.5)), trainee.optimizer,
        trainee.schedule, grad_accum, trainee.shardings, mesh, trainee.shardings.params,
    )
    history = []
    for i in range(steps):
        batch = sharding.put_batch(_pairs_batch(seed=i), mesh)
        state, metrics = step_fn(state, batch, ref_params)
        history.append(jax.device_get(metrics))
    return history


@pytest.mark.slow
def test_dpo_step_on_eight_devices_equals_one_accumulates_exactly_and_traces_once(train_step_traces):
    one = _run_dpo((1, 1, 1), steps=3)
    assert len(train_step_traces) == 1
    eight = _run_dpo((2, 2, 2))
    accumulated = _run_dpo((1, 1, 1), grad_accum=4)
    for name in ("loss", "rewards/accuracy", "rewards/margin", "grad_norm"):
        np.testing.assert_allclose([m[name] for m in eight], [m[name] for m in one[:2]], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose([m[name] for m in accumulated], [m[name] for m in one[:2]], atol=1e-5, rtol=1e-5)
    assert abs(one[0]["loss"] - np.log(2.0)) > 1e-4  # a reference other than the policy: the first loss is not log 2


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r["train/loss"] for r in map(json.loads, f) if "train/loss" in r}


@pytest.mark.slow
def test_precomputed_reference_trains_like_the_reference_in_the_step(tmp_path, previous_stages):
    runs = {}
    for precompute in (False, True):
        config = toy.preference("dpo", smoke=True)
        sft = config.previous_stage.train  # the smoke SFT stage: trained here, or by the experiment tests before
        sft.workdir = str(previous_stages / os.path.basename(sft.workdir))
        config.train.update(workdir=str(tmp_path / f"dpo_{precompute}"), steps=3, answers_to_print=0, export_hf=False)
        config.reference.precompute = precompute
        config.train.rule_prompts = 8  # the smoke variant checks none
        config.optim.update(lr=1e-3, warmup_steps=0)  # steps that move the policy away from the reference
        final = run(config)
        assert 0.0 <= final["rule_rate"] <= 1.0 and 0.0 <= final["rewards/accuracy"] <= 1.0
        runs[precompute] = _losses(config.train.workdir)
    assert sorted(runs[True]) == [1, 2, 3]
    for step, loss in runs[False].items():
        assert abs(runs[True][step] - loss) < 1e-5, step
    assert abs(runs[True][1] - np.log(2.0)) < 1e-5  # the reference is the starting policy
    assert runs[True][3] < runs[True][1] - 1e-3


def test_every_stage_is_checked_before_any_trains(tmp_path):
    config = toy.preference("simpo", smoke=True)
    config.previous_stage.train.workdir = str(tmp_path / "sft")
    config.reference.precompute = True  # SimPO has no reference
    with pytest.raises(ConfigError, match="uses no reference model"):
        run(config)
    config.reference.precompute = False
    config.previous_stage.train.export_hf = False  # the DPO stage could not start from it
    with pytest.raises(ConfigError, match="export_hf"):
        run(config)
    assert not os.path.exists(tmp_path / "sft")
