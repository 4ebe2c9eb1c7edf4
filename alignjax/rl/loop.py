"""The on-policy loop: sample from the policy, score the answers, update, and from time to time evaluate.

Each iteration takes the next prompts, samples `rl.samples_per_prompt` answers to each with the current
policy (RSO samples from the frozen SFT reference), scores them, and trains on them (`rl.updates`). Generation,
scoring and training time are logged separately for every iteration. Evaluation answers held-out prompts
greedily and reports their mean reward; the first evaluation is the starting model's, so the gain is in the log.

Nothing is lost on a crash: checkpoints hold the policy (and value model) states with the iteration, the KL
coefficient and the curve so far, and the same command resumes; SIGTERM saves one and exits. At the end the
curve is plotted to `workdir/curve.png` and the policy exported as a Hugging Face model.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import sharding
from alignjax.models import from_pretrained, reward_model_from_pretrained, save_pretrained
from alignjax.rl.config import check_rl_config
from alignjax.rl.kl import AdaptiveKLController
from alignjax.rl.plots import plot_curves
from alignjax.rl.prompts import iteration_prompts, load_prompts
from alignjax.rl.rewards import make_scorer
from alignjax.rl.rollout import RolloutWorker
from alignjax.rl.updates import Updater
from alignjax.sampling import SamplingConfig
from alignjax.train.build import load_tokenizer, reference_params
from alignjax.train.checkpoint import Checkpointer, abstract_like
from alignjax.train.config_checks import resolve_mesh_shape
from alignjax.train.metrics import MetricWriter
from alignjax.train.optimizer import make_optimizer
from alignjax.train.preemption import StopOnSigterm
from alignjax.train.state import create_train_state, train_state_shardings

EXPORT_DIR = "hf"
CURVE_FILE = "curve.png"
CURVE_KEYS = ("reward", "kl", "eval_reward", "eval_kl")  # what the checkpointed curve keeps of each iteration


@dataclasses.dataclass
class _Trainee:
    """A model being trained: its structure, train state and the state's shardings and optimizer."""

    graphdef: nnx.GraphDef
    state: object
    shardings: object
    optimizer: object
    schedule: object


def _trainee(model, optim: ConfigDict, total_updates: int, seed: int, mesh) -> _Trainee:
    graphdef, params = nnx.split(model)
    optimizer, schedule = make_optimizer(optim, total_updates)
    shardings = train_state_shardings(params, optimizer, mesh)
    return _Trainee(graphdef, create_train_state(params, optimizer, seed, shardings), shardings, optimizer, schedule)


def _critic(config: ConfigDict, total_updates: int, mesh) -> _Trainee | None:
    """PPO's value model: a reward model (or an LM with a new head) from `critic_path`, else from the policy's start."""
    algorithm = config.rl.algorithm
    if algorithm.name != "ppo":
        return None
    m = config.model
    with warnings.catch_warnings():
        if not algorithm.critic_path:  # a new head on the policy's decoder is the intended default, not a mistake
            warnings.filterwarnings("ignore", message=".*not a reward model.*")
        model = reward_model_from_pretrained(
            algorithm.critic_path or m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh, seed=config.seed
        )
    optim = ConfigDict(config.optim.to_dict())
    optim.lr = algorithm.critic_lr
    return _trainee(model, optim, total_updates, config.seed + 1, mesh)


def _log_line(iteration: int, record: dict[str, float]) -> str:
    shown = ("reward", "eval_reward", "kl", "eval_kl", "answer_length", "generate_seconds", "score_seconds", "train_seconds")
    return f"[iteration {iteration}] " + "  ".join(f"{k}={record[k]:.4g}" for k in shown if k in record)


def train_rl(config: ConfigDict) -> dict[str, float]:
    """Runs the on-policy experiment `config` to its end (or to SIGTERM); returns the final eval metrics."""
    check_rl_config(config, jax.device_count())
    rl, algorithm, workdir = config.rl, config.rl.algorithm, config.train.workdir
    mesh = sharding.make_mesh(*resolve_mesh_shape(config.mesh, jax.device_count()))
    tokenizer = load_tokenizer(config)
    train_prompts, eval_prompts, skipped = load_prompts(config.data, tokenizer, rl.max_prompt_len)
    eval_prompts = eval_prompts.take(range(min(rl.eval_prompts, len(eval_prompts))))
    tqdm.write(f"prompts: {len(train_prompts)} to train on, {len(eval_prompts)} held out, {skipped} bad rows skipped")
    m = config.model
    model = from_pretrained(m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh)
    total_updates = config.train.steps * rl.epochs * rl.minibatches
    policy = _trainee(model, config.optim, total_updates, config.seed, mesh)
    ref_params = reference_params(config, policy.state.params, mesh)
    critic = _critic(config, total_updates, mesh)
    sampling = SamplingConfig(temperature=rl.temperature, top_k=rl.top_k, top_p=rl.top_p)
    worker = RolloutWorker(
        model, ref_params, make_scorer(rl.reward, mesh, m.dtype), tokenizer, mesh,
        max_prompt_len=rl.max_prompt_len, max_new_tokens=rl.max_new_tokens, sampling=sampling,
        missing_eos_penalty=rl.missing_eos_penalty, critic_graphdef=critic and critic.graphdef,
    )
    critic_spec = critic and (critic.graphdef, critic.optimizer, critic.schedule, critic.shardings)
    update = Updater(config, policy.graphdef, policy.optimizer, policy.schedule, policy.shardings, mesh, critic_spec)
    kl_control = AdaptiveKLController(
        algorithm.get("kl_coef", 0.0), algorithm.get("kl_target", 0.0), algorithm.get("kl_horizon", 1.0)
    )

    states, shardings = {"policy": policy.state}, {"policy": policy.shardings}
    if critic:
        states["critic"], shardings["critic"] = critic.state, critic.shardings
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.train.keep_checkpoints)
    start, history = checkpointer.latest_step() or 0, []
    if start:
        states, progress = checkpointer.restore(start, abstract_like(states, shardings))
        kl_control.coef, history = progress["kl_coef"], progress["history"]
        tqdm.write(f"resumed from {workdir}/checkpoints iteration {start}")
    del model

    def evaluate(params) -> dict[str, float]:
        scores, kl, _ = worker.greedy_scores(params, eval_prompts)
        return {"eval_reward": float(np.mean(scores)), "eval_kl": float(np.mean(kl))}

    writer = MetricWriter(workdir, echo=False)
    stop = StopOnSigterm()
    t = config.train
    try:
        if start == 0 and t.eval_every and len(eval_prompts):
            start_eval = evaluate(states["policy"].params)
            history.append({"iteration": 0, **start_eval})
            writer.write(0, start_eval)
            tqdm.write(f"[iteration 0] eval_reward={start_eval['eval_reward']:.4g} (the starting model's greedy answers)")
        for iteration in tqdm(range(start, t.steps), initial=start, total=t.steps, desc=algorithm.name, disable=None):
            prompts = iteration_prompts(train_prompts, iteration, rl.prompts_per_iteration, config.data.seed)
            sampling_params = ref_params if algorithm.name == "rso" else states["policy"].params
            critic_params = states["critic"].params if critic else None
            rng = jax.random.fold_in(jax.random.key(config.seed), iteration)
            rollout, times = worker.collect(sampling_params, prompts, rng, rl.samples_per_prompt, critic_params)
            began = time.perf_counter()
            host_rng = np.random.default_rng([config.seed, iteration])
            states, metrics = update(states, rollout, kl_control.coef, host_rng)
            times["train_seconds"] = time.perf_counter() - began  # metrics were fetched: the updates are done
            kl = float(np.mean(rollout.kl_N()))
            record = {
                "reward": float(np.mean(rollout.rewards_N)),
                "score": float(np.mean(rollout.scores_N)),
                **({} if algorithm.name == "rso" else {"kl": kl}),  # RSO samples from the reference: no drift to see
                "kl_coef": kl_control.coef,
                "answer_length": float(np.mean(rollout.lengths_N)),
                "stop_rate": float(np.mean(rollout.stopped_N)),
                **times,
                **metrics,
            }
            kl_control.update(kl, len(rollout.rewards_N))
            done = iteration + 1
            if t.eval_every and (done % t.eval_every == 0 or done == t.steps) and len(eval_prompts):
                record.update(evaluate(states["policy"].params))
            writer.write(done, record)
            history.append({"iteration": done, **{k: record[k] for k in CURVE_KEYS if k in record}})
            if t.log_every and (done % t.log_every == 0 or done == t.steps or "eval_reward" in record):
                tqdm.write(_log_line(done, record))
            if stop.requested or (t.checkpoint_every and done % t.checkpoint_every == 0) or done == t.steps:
                progress = {"kl_coef": kl_control.coef, "history": history}
                checkpointer.save(done, states, progress, force=stop.requested or done == t.steps)
            if stop.requested:
                tqdm.write(f"SIGTERM: saved checkpoint at iteration {done}; rerun the same command to resume")
                return {}
        return _finish(config, states["policy"], policy.graphdef, tokenizer, history, worker, eval_prompts)
    finally:
        checkpointer.wait()
        checkpointer.close()
        writer.close()
        stop.restore()


def _finish(config, policy_state, graphdef, tokenizer, history, worker, eval_prompts) -> dict[str, float]:
    """Plots the curve, prints a few greedy answers and the outcome, exports the policy; returns final metrics."""
    workdir, name = config.train.workdir, config.rl.algorithm.name
    final = {}
    evals = [h for h in history if "eval_reward" in h]
    if jax.process_index() == 0 and history:
        plot_curves(history, os.path.join(workdir, CURVE_FILE), f"{name}: {workdir}")
        tqdm.write(f"[{name}] curve saved to {workdir}/{CURVE_FILE}")
    if evals:
        final = {k: evals[-1][k] for k in ("eval_reward", "eval_kl")}
        tqdm.write(
            f"[{name}] mean reward of greedy answers to {len(eval_prompts)} held-out prompts: "
            f"{evals[0]['eval_reward']:.3f} at the start -> {final['eval_reward']:.3f} after {config.train.steps} "
            f"iterations; their KL to the reference: {final['eval_kl']:.3f} per answer"
        )
        if config.train.num_samples:
            scores, _, answers = worker.greedy_scores(policy_state.params, eval_prompts)
            for prompt, answer, score in list(zip(eval_prompts.values, answers, scores))[: config.train.num_samples]:
                tqdm.write(f"  {prompt!r} -> {answer!r} (reward {score:.3g})")
    if config.train.export_hf:
        save_pretrained(nnx.merge(graphdef, policy_state.params), os.path.join(workdir, EXPORT_DIR), tokenizer=tokenizer)
        tqdm.write(f"exported Hugging Face model to {workdir}/{EXPORT_DIR}")
    return final
