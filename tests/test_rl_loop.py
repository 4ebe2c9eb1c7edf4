"""On-policy training end to end on a tiny random model: rollouts line up with the model, each step and the
sampler compile once per run, times are logged per phase, a run stopped by SIGTERM resumes to the numbers of an
uninterrupted one, 8 devices give the numbers of one, and bad configs or prompts are refused with the field or
row named."""

import json
import os
import signal

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import alignjax.rl.policy_step as policy_step_module
from alignjax import sharding
from alignjax.config_errors import ConfigError
from alignjax.configs import toy
from alignjax.data.errors import DataError
from alignjax.models import ModelConfig, RopeConfig, init_model, save_pretrained
from alignjax.rl import algorithms, check_rl_config, rl_section, train_rl
from alignjax.rl.algorithms import registry
from alignjax.rl.batches import offline_rows
from alignjax.rl.prompts import Prompts, load_prompts
from alignjax.rl.rewards import FunctionScorer
from alignjax.rl.rollout import RolloutWorker, response_logps
from alignjax.rl.steps import offline_step
from alignjax.sampling import SamplingConfig
from alignjax.sampling.decode import decode
from alignjax.train.scaffold import RunStopped
from alignjax.train.trainee import create_train_state, train_state_shardings

from conftest import write_jsonl


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny random Llama with the toy tokenizer, saved as a Hugging Face directory."""
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, rope=RopeConfig(theta=10000.0),
        max_position_embeddings=64, tie_word_embeddings=True,
    )
    path = str(tmp_path_factory.mktemp("tiny_policy"))
    save_pretrained(init_model(cfg, seed=0), path, tokenizer=tokenizer)
    return path


def _config(algorithm, model_dir, workdir, steps=3, loss=None, **overrides):
    loss = loss or {"expert_iteration": "sft", "online_dpo": "dpo", "rso": "dpo"}.get(algorithm)
    config = toy.rl(algorithm, loss=loss, prompts_per_iteration=8, samples_per_prompt=2, eval_prompts=8, **overrides)
    del config["previous_stage"]
    config.model.path = model_dir
    config.train.update(steps=steps, log_every=1, eval_every=1, checkpoint_every=2, num_samples=0, export_hf=False,
                        workdir=str(workdir))
    return config


def _records(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_rollout_log_probs_rows_and_penalty_line_up_with_the_model(model_dir, tokenizer):
    from alignjax.models import from_pretrained

    mesh = sharding.make_mesh(data=jax.device_count())
    model = from_pretrained(model_dir, mesh=mesh)
    params = nnx.state(model)
    prompts = Prompts(["reverse: abc", "upper: xyz"], [
        tokenizer("<|bos|><|user|>reverse: abc<|assistant|>")["input_ids"],
        tokenizer("<|bos|><|user|>upper: xyz<|assistant|>")["input_ids"],
    ])
    worker = RolloutWorker(model, params, FunctionScorer("toy_exact"), tokenizer, mesh, max_prompt_len=24,
                           max_new_tokens=6, sampling=SamplingConfig(), missing_eos_penalty=0.5)
    rollout, times = worker.collect(params, prompts, jax.random.key(0), num_samples=4)
    assert set(times) == {"generate_seconds", "score_seconds"}
    # The sampler's log-probs are those a forward pass over the assembled rows gives: prompt and answer line up.
    rows = {k: jax.device_put(v) for k, v in rollout.rows.items()}
    recomputed = np.asarray(response_logps(params, rows, graphdef=nnx.graphdef(model), prompt_len=24))
    np.testing.assert_allclose(rollout.logps_NT, recomputed * rollout.mask_NT, atol=2e-5)
    np.testing.assert_allclose(rollout.ref_logps_NT, rollout.logps_NT, atol=2e-5)  # reference == policy here
    for n in range(8):  # each row reads back as its prompt then its answer
        real = rollout.rows["segment_ids"][n] > 0
        text = tokenizer.decode(rollout.rows["tokens"][n][real], skip_special_tokens=True)
        assert text == prompts.values[n // 4] + rollout.answers[n]
    penalty = np.where(rollout.stopped_N, 0.0, 0.5)
    np.testing.assert_allclose(rollout.rewards_N, rollout.scores_N - penalty)
    assert not rollout.stopped_N.all()  # a random model rarely ends within 6 tokens: the penalty is exercised


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "online_dpo"])
def test_each_step_and_the_sampler_compile_once_and_times_are_logged(algorithm, model_dir, tmp_path, monkeypatch,
                                                                     train_step_traces):
    traces, cache_sizes = {"policy_step": 0, "value_step": 0}, []
    def counting(name, original):
        def counting_step(*args, **kwargs):
            traces[name] += 1
            return original(*args, **kwargs)

        return counting_step

    for name in traces:
        monkeypatch.setattr(policy_step_module, name, counting(name, getattr(policy_step_module, name)))
    original_collect = RolloutWorker.collect

    def recording_collect(self, *args, **kwargs):
        out = original_collect(self, *args, **kwargs)
        cache_sizes.append(decode._cache_size())
        return out

    monkeypatch.setattr(RolloutWorker, "collect", recording_collect)
    train_rl(_config(algorithm, model_dir, tmp_path, steps=4))
    expected = 1 if algorithm == "ppo" else 0
    assert traces == {"policy_step": expected, "value_step": expected}
    assert len(train_step_traces) == (0 if algorithm == "ppo" else 1)
    # Rollouts and greedy evaluations (after every iteration) reuse their compiled decoders.
    assert len(set(cache_sizes)) == 1, cache_sizes
    records = [r for r in _records(tmp_path) if "train/generate_seconds" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert all(record[f"train/{phase}_seconds"] > 0 for phase in ("generate", "score", "train"))
        assert "train/eval_reward" in record and "train/eval_kl" in record
    if algorithm == "ppo":
        assert "train/value/loss" in records[0]
    assert os.path.exists(tmp_path / "curve.png")


@pytest.mark.slow
def test_sigterm_then_rerun_repeats_the_uninterrupted_run(model_dir, tmp_path, monkeypatch):
    train_rl(_config("grpo", model_dir, tmp_path / "straight", steps=4))
    original_collect, calls = RolloutWorker.collect, []

    def preempted_collect(self, *args, **kwargs):  # the scheduler's notice arrives during iteration 2
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original_collect(self, *args, **kwargs)

    monkeypatch.setattr(RolloutWorker, "collect", preempted_collect)
    with pytest.raises(RunStopped, match="SIGTERM: saved checkpoint at iteration 2"):
        train_rl(_config("grpo", model_dir, tmp_path / "resumed", steps=4))
    assert len(calls) == 2 and os.path.isdir(tmp_path / "resumed" / "checkpoints" / "2")
    train_rl(_config("grpo", model_dir, tmp_path / "resumed", steps=4))  # the same command continues at iteration 3
    assert len(calls) == 4
    straight = {r["step"]: r for r in _records(tmp_path / "straight") if "train/loss" in r}
    resumed = {r["step"]: r for r in _records(tmp_path / "resumed") if "train/loss" in r}
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):
        for key in ("train/loss", "train/reward", "train/kl", "train/eval_reward"):
            assert resumed[step][key] == pytest.approx(straight[step][key], abs=1e-6), (step, key)


@pytest.mark.slow
def test_policy_step_on_eight_devices_equals_one(model_dir):
    from alignjax.models import from_pretrained
    from alignjax.rl.policy_step import jit_policy_step

    rng = np.random.default_rng(0)
    N, P, T, K = 16, 12, 6, 4
    tokens = rng.integers(3, 60, size=(N, P + T)).astype(np.int32)
    tokens[:, :P] = np.repeat(tokens[::K, :P], K, axis=0)  # groups of K answers to one prompt
    mask = (np.arange(T) < rng.integers(1, T + 1, size=N)[:, None]).astype(np.float32)
    segment_ids = np.concatenate([np.ones((N, P), np.int32), mask.astype(np.int32)], axis=1)
    batch = dict(
        tokens=tokens, positions=np.tile(np.arange(P + T, dtype=np.int32), (N, 1)), segment_ids=segment_ids,
        mask_NT=mask, old_logps_NT=rng.normal(-4, 0.3, (N, T)).astype(np.float32) * mask,
        advantages_NT=rng.normal(size=(N, T)).astype(np.float32) * mask,
        ref_logps_NT=rng.normal(-4, 0.3, (N, T)).astype(np.float32) * mask,
    )
    results = []
    for shape in ((1, 1, 1), (2, 2, 2)):
        devices = jax.devices()[: int(np.prod(shape))]
        mesh = sharding.make_mesh(*shape, devices=devices)
        graphdef, params = nnx.split(from_pretrained(model_dir, mesh=mesh))
        optimizer = optax.adamw(1e-3)
        shardings = train_state_shardings(params, optimizer, mesh)
        state = create_train_state(params, optimizer, 0, shardings)
        step = jit_policy_step(graphdef, optimizer, optax.constant_schedule(1e-3), shardings, mesh, prompt_len=P,
                               group_size=K, clip_eps=0.2, kl_coef=0.04, kl_estimator="k3")
        for _ in range(2):
            state, metrics = step(state, sharding.put_batch(batch, mesh))
        results.append((jax.device_get(metrics), jax.device_get(state.params)))
    (metrics_one, params_one), (metrics_eight, params_eight) = results
    for name in ("loss", "grad_norm", "clip_fraction", "kl_per_token"):
        assert metrics_eight[name] == pytest.approx(metrics_one[name], abs=1e-5), name
    for a, b in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_eight)):
        np.testing.assert_allclose(a, b, atol=5e-5)  # Adam divides tiny gradients by their own scale


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c.rl.update(samples_per_prompt=1), "samples_per_prompt must be >= 2"),
        (lambda c: c.rl.reward.update(function="nope"), "rl.reward.function='nope' is not registered"),
        (lambda c: c.rl.update(minibatches=3), "rl.minibatches=3"),
        (lambda c: c.rl.algorithm.update(kl_estimator="k2"), "kl_estimator"),
        (lambda c: c.rl.update(temperature=0.0), "rl.temperature must be > 0"),
    ],
)
def test_bad_rl_config_values_name_the_field(change, message, model_dir, tmp_path):
    config = _config("grpo", model_dir, tmp_path)
    change(config)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_rl_config(config, jax.device_count())


def test_loss_must_fit_the_algorithm(model_dir, tmp_path):
    config = _config("online_dpo", model_dir, tmp_path)
    config.loss.name = "sft"
    with pytest.raises(ConfigError, match="online_dpo trains with a loss on 'pairs'"):
        check_rl_config(config, jax.device_count())


def test_the_registry_lists_the_algorithms_and_refuses_an_unknown_name(model_dir, tmp_path):
    registered = ("ppo", "rloo", "grpo", "expert_iteration", "online_dpo", "rso", "ditto")
    assert algorithms.names() == registered
    listed = str(registered).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ConfigError, match=rf"rl.algorithm.name must be one of {listed}, got 'nope'"):
        rl_section("nope")
    config = _config("grpo", model_dir, tmp_path)
    config.rl.algorithm.name = "nope"
    with pytest.raises(ConfigError, match=rf"rl.algorithm.name must be one of {listed}, got 'nope'"):
        check_rl_config(config, jax.device_count())


def _best_only_batch(rollout, algorithm, kl_coef, rng):
    """Expert iteration on a prompt's best answer only where it beats another answer to the prompt."""
    B, K = rollout.num_prompts, rollout.samples_per_prompt
    rewards_BK = rollout.rewards_N.reshape(B, K)
    best_N = np.arange(B) * K + np.argmax(rewards_BK, axis=1)
    kept_B = rewards_BK.max(axis=1) > rewards_BK.min(axis=1)
    rows = {k: v[best_N] for k, v in rollout.rows.items()}
    batch = offline_rows(rows, rollout.mask_NT[best_N] * kept_B[:, None], rollout.prompt_len)
    return batch, {"kept_prompts": int(kept_B.sum())}


@pytest.mark.slow
def test_an_algorithm_registered_outside_the_package_trains_without_other_edits(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_ALGORITHMS", dict(registry._ALGORITHMS))  # registered for this test only
    algorithms.register(algorithms.Algorithm(
        name="best_only", defaults={}, make_batch=_best_only_batch, make_step=offline_step, loss_format="sft",
        min_samples_per_prompt=2,
    ))
    config = _config("best_only", model_dir, tmp_path, steps=2, loss="sft")
    assert config.rl.algorithm.to_dict() == {"name": "best_only"}
    train_rl(config)
    records = [r for r in _records(tmp_path) if "train/loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert all(0 <= r["train/kept_prompts"] <= 8 and np.isfinite(r["train/loss"]) for r in records)
    config.rl.update(samples_per_prompt=1)
    with pytest.raises(ConfigError, match="best_only compares several answers per prompt"):
        check_rl_config(config, jax.device_count())


def test_bad_prompt_rows_are_named(tmp_path, tokenizer):
    config = toy.rl("grpo").data
    config.update(source="json", eval_fraction=0.0)
    config.path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "upper: abc"}, {"text": "no prompt"}])
    with pytest.raises(DataError, match=r"a.jsonl line 2: expected an object with a 'prompt' field"):
        load_prompts(config, tokenizer, max_prompt_len=24)
    config.path = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "upper: abc"}, {"prompt": "reverse: " + "x" * 40}])
    with pytest.raises(DataError, match=r"b.jsonl line 2: the prompt is 52 tokens .* rl.max_prompt_len=24"):
        load_prompts(config, tokenizer, max_prompt_len=24)
    config.on_bad_row = "skip"
    train, held_out, skipped = load_prompts(config, tokenizer, max_prompt_len=24)
    assert train.values == ["upper: abc"] and skipped == 1 and not len(held_out)


def test_prompts_follow_the_data_template(tmp_path):
    from alignjax.data import load_builtin_tokenizer

    base = load_builtin_tokenizer("toy_instructions")
    base.chat_template = None  # a base model's tokenizer: prompts are its plain text
    config = toy.rl("grpo").data
    config.update(source="json", eval_fraction=0.0, template="plain")
    config.path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "upper: abc:"}])
    train, _, _ = load_prompts(config, base, max_prompt_len=24)
    assert train.token_ids == [base("upper: abc:", add_special_tokens=False)["input_ids"]]
    config.template = "chat"
    with pytest.raises(DataError, match="tokenizer 'toy_instructions' has no chat template"):
        load_prompts(config, base, max_prompt_len=24)
