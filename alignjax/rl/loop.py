"""The on-policy loop: sample from the policy, score the answers, update, and from time to time evaluate.

Each iteration takes the next prompts, samples `rl.samples_per_prompt` answers to each with the current
policy (or with the frozen reference, for an algorithm that samples from it), scores them, and trains on them
(`rl.updates`). An algorithm with a memory (DITTO) samples the prompts its memory names every iteration, and
trains on what the memory draws from all its iterations' samples. The algorithm's record (`rl.algorithms`) says
which model samples, whether a value model trains beside the policy and whether it keeps a memory; the loop never
reads the algorithm's name. Generation, scoring and training time are logged separately for every iteration.
Evaluation answers held-out prompts greedily and reports their mean reward; the first evaluation is the starting
model's, so the gain is in the log.

Nothing is lost on a crash (`train.scaffold`): checkpoints hold the policy (and value model) states with the
iteration, the KL coefficient, the curve so far and the algorithm's memory, and the same command resumes;
SIGTERM saves one and exits. At the end the curve is plotted to `workdir/curve.png` and the policy exported as
a Hugging Face model.
"""

from __future__ import annotations

import os
import time
import warnings

import jax
import numpy as np
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import sharding
from alignjax.models import from_pretrained, reward_model_from_pretrained
from alignjax.rl import algorithms
from alignjax.rl.config import check_rl_config
from alignjax.rl.kl import AdaptiveKLController
from alignjax.rl.plots import plot_curves
from alignjax.rl.prompts import iteration_prompts, load_prompts
from alignjax.rl.rewards import make_scorer
from alignjax.rl.rollout import RolloutWorker
from alignjax.rl.updates import Updater
from alignjax.sampling import SamplingConfig
from alignjax.train.build import load_tokenizer, reference_params
from alignjax.train.scaffold import RunScaffold
from alignjax.train.trainee import Trainee

CURVE_FILE = "curve.png"
CURVE_KEYS = ("reward", "kl", "eval_reward", "eval_kl")  # what the checkpointed curve keeps of each iteration


def _critic(config: ConfigDict, algorithm: algorithms.Algorithm, total_updates: int, mesh) -> Trainee | None:
    """The value model of an algorithm that trains one (`has_critic`), else None: a reward model (or an LM with a
    new head) from `rl.algorithm.critic_path`, else from the policy's start, trained at `rl.algorithm.critic_lr`."""
    if not algorithm.has_critic:
        return None
    m, hyperparameters = config.model, config.rl.algorithm
    with warnings.catch_warnings():
        if not hyperparameters.critic_path:  # a new head on the policy's decoder is the intended default
            warnings.filterwarnings("ignore", message=".*not a reward model.*")
        model = reward_model_from_pretrained(
            hyperparameters.critic_path or m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh, seed=config.seed
        )
    optim = ConfigDict(config.optim.to_dict())
    optim.lr = hyperparameters.critic_lr
    return Trainee.create(model, optim, total_updates, config.seed + 1, mesh)


def _log_line(iteration: int, record: dict[str, float]) -> str:
    shown = (
        "reward",
        "eval_reward",
        "kl",
        "eval_kl",
        "answer_length",
        "generate_seconds",
        "score_seconds",
        "train_seconds",
    )
    return f"[iteration {iteration}] " + "  ".join(f"{k}={record[k]:.4g}" for k in shown if k in record)


def train_rl(config: ConfigDict) -> dict[str, float]:
    """Runs the on-policy experiment `config` to its end; returns the final eval metrics.

    `train.steps=0` evaluates the starting policy (or the checkpoint the workdir holds or `train.resume_from`
    names) on the held-out prompts, with no training, checkpoint or export.

    Raises:
      RunStopped: when SIGTERM or Ctrl-C stopped the run, after saving a checkpoint.
    """
    check_rl_config(config, jax.device_count())
    rl, t = config.rl, config.train
    algorithm = algorithms.get(rl.algorithm.name)
    from_reference = algorithm.samples_from == "reference"  # then the samples cannot drift from the reference
    mesh = sharding.mesh_from_config(config.mesh)
    with RunScaffold(t.workdir, t.keep_checkpoints, t.resume_from, echo=False) as scaffold:
        tokenizer = load_tokenizer(config)
        train_prompts, eval_prompts, skipped = load_prompts(config.data, tokenizer, rl.max_prompt_len)
        eval_prompts = eval_prompts.take(range(min(rl.eval_prompts, len(eval_prompts))))
        tqdm.write(
            f"prompts: {len(train_prompts)} to train on, {len(eval_prompts)} held out, {skipped} bad rows skipped"
        )
        m = config.model
        model = from_pretrained(m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh)
        total_updates = max(t.steps, 1) * rl.epochs * rl.minibatches
        policy = Trainee.create(model, config.optim, total_updates, config.seed, mesh)
        ref_params = reference_params(config, policy.state.params, mesh)
        critic = _critic(config, algorithm, total_updates, mesh)
        sampling = SamplingConfig(temperature=rl.temperature, top_k=rl.top_k, top_p=rl.top_p)
        worker = RolloutWorker(
            model,
            ref_params,
            make_scorer(rl.reward, mesh, m.dtype),
            tokenizer,
            mesh,
            max_prompt_len=rl.max_prompt_len,
            max_new_tokens=rl.max_new_tokens,
            sampling=sampling,
            missing_eos_penalty=rl.missing_eos_penalty,
            critic_graphdef=critic and critic.graphdef,
        )
        memory = algorithm.make_memory(config, tokenizer, worker) if algorithm.make_memory else None
        update = Updater(config, policy, critic, memory)
        hyperparameters = rl.algorithm
        kl_control = AdaptiveKLController(
            hyperparameters.get("kl_coef", 0.0),
            hyperparameters.get("kl_target", 0.0),
            hyperparameters.get("kl_horizon", 1.0),
        )
        states, shardings = {"policy": policy.state}, {"policy": policy.shardings}
        if critic:
            states["critic"], shardings["critic"] = critic.state, critic.shardings
        start, states, progress = scaffold.restore(states, shardings, unit="iteration")
        history = []
        if start:
            kl_control.coef, history = progress["kl_coef"], progress["history"]
            if memory:
                memory.load_state_dict(progress["memory"])
        del model

        def evaluate(params) -> dict[str, float]:
            scores, kl, _ = worker.greedy_scores(params, eval_prompts)
            return {"eval_reward": float(np.mean(scores)), "eval_kl": float(np.mean(kl))}

        if len(eval_prompts) and ((start == 0 and t.eval_every) or not t.steps):  # the start, or an evaluation
            start_eval = evaluate(states["policy"].params)
            history.append({"iteration": start, **start_eval})
            scaffold.writer.write(start, start_eval)
            reward = start_eval["eval_reward"]
            tqdm.write(f"[iteration {start}] eval_reward={reward:.4g} (the starting model's greedy answers)")
        scaffold.watch_signals()
        for iteration in tqdm(range(start, t.steps), initial=start, total=t.steps, desc=algorithm.name, disable=None):
            if memory:
                prompts = memory.prompts
            else:
                prompts = iteration_prompts(train_prompts, iteration, rl.prompts_per_iteration, config.data.seed)
            sampling_params = ref_params if from_reference else states["policy"].params
            critic_params = states["critic"].params if critic else None
            rng = jax.random.fold_in(jax.random.key(config.seed), iteration)
            rollout, times = worker.collect(sampling_params, prompts, rng, rl.samples_per_prompt, critic_params)
            if memory:
                memory.add(iteration, rollout, sampling_params)
            began = time.perf_counter()
            host_rng = np.random.default_rng([config.seed, iteration])
            states, metrics = update(states, rollout, kl_control.coef, host_rng)
            times["train_seconds"] = time.perf_counter() - began  # metrics were fetched: the updates are done
            kl = float(np.mean(rollout.kl_N()))
            record = {
                "reward": float(np.mean(rollout.rewards_N)),
                "score": float(np.mean(rollout.scores_N)),
                **({} if from_reference else {"kl": kl}),  # sampled from the reference: no drift to see
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
            scaffold.writer.write(done, record)
            history.append({"iteration": done, **{k: record[k] for k in CURVE_KEYS if k in record}})
            if t.log_every and (done % t.log_every == 0 or done == t.steps or "eval_reward" in record):
                tqdm.write(_log_line(done, record))
            progress = {"kl_coef": kl_control.coef, "history": history}
            if memory:
                progress["memory"] = memory.state_dict()
            scaffold.checkpoint(done, states, progress, t.checkpoint_every, final=done == t.steps, unit="iteration")
        policy.state = states["policy"]
        return _finish(config, policy, tokenizer, history, worker, eval_prompts, scaffold)


def _finish(config, policy: Trainee, tokenizer, history, worker, eval_prompts, scaffold) -> dict[str, float]:
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
        if config.train.answers_to_print:
            scores, _, answers = worker.greedy_scores(policy.state.params, eval_prompts)
            shown = list(zip(eval_prompts.values, answers, scores))[: config.train.answers_to_print]
            for prompt, answer, score in shown:
                tqdm.write(f"  {prompt!r} -> {answer!r} (reward {score:.3g})")
    if config.train.export_hf and config.train.steps:
        scaffold.export(policy.model(), tokenizer)
    return final
