"""The training loop: build everything from the config, then step, log, evaluate, checkpoint and export.

Nothing is lost on a crash or preemption: checkpoints hold the train state and the data position together,
the same command resumes from the latest one, and SIGTERM (a preemptible TPU VM's notice) saves one and exits.

An experiment may chain stages (SFT, then DPO from its export): `config.previous_stage` holds the whole config of
the stage before, which `run` trains first unless its export already exists.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import losses, sharding
from alignjax.data import build_data
from alignjax.data.builtin import get_builtin
from alignjax.models import save_pretrained
from alignjax.rl import check_rl_config, train_rl
from alignjax.rl.best_of_n import check_best_of_n_config, run_best_of_n
from alignjax.train.build import build_model, load_tokenizer, reference_params
from alignjax.train.checkpoint import Checkpointer, abstract_like
from alignjax.train.config_checks import check_config, resolve_mesh_shape
from alignjax.train.evaluation import evaluate, greedy_answers, print_answers, print_samples, put_batch, rule_rate
from alignjax.train.metrics import MetricWriter
from alignjax.train.optimizer import make_optimizer
from alignjax.train.preemption import StopOnSigterm
from alignjax.train.reference import ReferenceTables
from alignjax.train.state import create_train_state, train_state_shardings
from alignjax.train.step import jit_eval_step, jit_train_step

EXPORT_DIR = "hf"
_RULE_ANSWER_TOKENS = 8  # greedy tokens per held-out prompt when checking a dataset's rule


class _RuleCheck:
    """Greedy answers to a builtin dataset's held-out prompts, scored by its rule (absent: nothing to check)."""

    def __init__(self, config: ConfigDict, objective: losses.Objective):
        data = config.data
        dataset = get_builtin(data.path) if data.source == "builtin" else None
        wanted = config.train.rule_prompts and dataset and objective.inputs != "rewards"
        self.rule = dataset.rule if wanted else None
        if self.rule:
            self.prompts = [row["prompt"] for row in dataset.rows(dataset.eval_split)][: config.train.rule_prompts]
            self.tag = data.control_good if data.format == "conditional" else ""

    def __call__(self, model, tokenizer, mesh, count: int = 0) -> float:
        answers = greedy_answers(model, tokenizer, self.prompts, mesh, _RULE_ANSWER_TOKENS, self.tag)
        print_answers(self.prompts, answers, self.rule, count)
        return rule_rate(answers, self.prompts, self.rule)


def _print_summary(config: ConfigDict, final: dict[str, float], rule_rate_before: float | None) -> None:
    """The stage's outcome in words: held-out preference accuracy and the rule rate before and after."""
    lines = []
    if "rewards/accuracy" in final:
        lines.append(f"held-out preference accuracy: {100 * final['rewards/accuracy']:.1f}%")
    if "rule_rate" in final:
        before = "" if rule_rate_before is None else f"{100 * rule_rate_before:.1f}% before this stage -> "
        lines.append(f"greedy answers that follow the task's rule: {before}{100 * final['rule_rate']:.1f}% after")
    if "exact_match" in final:
        lines.append(f"held-out exact match: {100 * final['exact_match']:.1f}%")
    for line in lines:
        tqdm.write(f"[{config.loss.name}] {line}")


def _stages(config: ConfigDict) -> list[ConfigDict]:
    """The configs of the experiment's stages, earliest first."""
    return (_stages(config.previous_stage) if "previous_stage" in config else []) + [config]


def _export_done(config: ConfigDict) -> bool:
    return os.path.exists(os.path.join(config.train.workdir, EXPORT_DIR, "config.json"))


def _check_stage(stage: ConfigDict) -> None:
    if "best_of_n" in stage:
        check_best_of_n_config(stage)
    elif "rl" in stage:
        check_rl_config(stage, jax.device_count())
    else:
        check_config(stage)


def _run_stage(stage: ConfigDict) -> dict[str, float]:
    """Trains the stage offline or on-policy, or evaluates best-of-n sampling."""
    if "best_of_n" in stage:
        return run_best_of_n(stage)
    return train_rl(stage) if "rl" in stage else train(stage)


def run(config: ConfigDict) -> dict[str, float]:
    """Runs the experiment `config`, after the stages before it; returns its final eval metrics.

    Every stage's config is checked before any trains, so a mistake in the last stage does not wait for the first
    one. A stage whose export exists is done and skipped; one that stops early (SIGTERM) stops the run, and the
    same command resumes it.
    """
    if config.distributed.enabled:
        d = config.distributed
        sharding.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    stages = _stages(config)
    for stage in stages:
        _check_stage(stage)
    final: dict[str, float] = {}
    for stage in stages:
        if stage is not config and _export_done(stage):
            tqdm.write(f"stage {stage.train.workdir}: done, using its export (delete that directory to redo it)")
            continue
        final = _run_stage(stage)
        if stage is not config and not _export_done(stage):
            tqdm.write(f"stage {stage.train.workdir} stopped before its end; rerun the same command to resume")
            return {}
    return final


def train(config: ConfigDict) -> dict[str, float]:
    """Trains the one stage `config` to completion (or to SIGTERM); returns the final eval metrics."""
    check_config(config)
    objective = losses.objective(config.loss.name)
    loss_fn = losses.bind(config.loss)
    mesh = sharding.make_mesh(*resolve_mesh_shape(config.mesh, jax.device_count()))
    workdir = config.train.workdir
    train_iter, eval_batches, tokenizer, report = build_data(config.data, load_tokenizer(config))
    tqdm.write(f"data: {report}")
    model = build_model(config, objective, len(tokenizer), mesh)
    graphdef, params = nnx.split(model)
    ref_params = reference_params(config, params, mesh) if objective.reference else None
    optimizer, schedule = make_optimizer(config.optim, config.train.steps)
    shardings = train_state_shardings(params, optimizer, mesh)
    state = create_train_state(params, optimizer, config.seed, shardings)
    del model, params

    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.train.keep_checkpoints)
    start = checkpointer.latest_step() or 0
    if start:
        state, data_position = checkpointer.restore(start, abstract_like(state, shardings))
        train_iter.restore(data_position)
        tqdm.write(f"resumed from {workdir}/checkpoints step {start}")

    ref_shardings = shardings.params if ref_params is not None else None
    tables = None
    if ref_params is not None and config.reference.precompute:
        tables = ReferenceTables.compute(graphdef, ref_params, train_iter, eval_batches, mesh)
        ref_params = ref_shardings = None  # the reference's memory is freed for the run
    step_fn = jit_train_step(
        graphdef, objective, loss_fn, optimizer, schedule, config.optim.grad_accum, shardings, mesh, ref_shardings
    )
    eval_fn = jit_eval_step(graphdef, objective, loss_fn, shardings.params, mesh, ref_shardings)
    if tables:
        eval_batches = [tables.attach(batch, "eval") for batch in eval_batches]
    check_rule = _RuleCheck(config, objective)
    writer = MetricWriter(workdir)
    stop = StopOnSigterm()
    t = config.train
    tokens_since_log, last_log = 0, time.perf_counter()
    try:
        if start == 0 and eval_batches and t.eval_every:
            writer.write(0, evaluate(eval_fn, state.params, ref_params, eval_batches, mesh), prefix="eval")
        rule_rate_before = None
        if start == 0 and check_rule.rule:
            rule_rate_before = check_rule(nnx.merge(graphdef, state.params), tokenizer, mesh)
            writer.write(0, {"rule_rate": rule_rate_before}, prefix="eval")
        for step in tqdm(range(start, t.steps), initial=start, total=t.steps, desc="train", disable=None):
            batch = next(train_iter)
            if tables:
                batch = tables.attach(batch, "train")
            tokens_since_log += int(np.count_nonzero(batch["segment_ids"]))
            state, metrics = step_fn(state, put_batch(batch, mesh), ref_params)
            done = step + 1
            if t.log_every and (done % t.log_every == 0 or done == t.steps):
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                elapsed = time.perf_counter() - last_log
                metrics["tokens_per_second"] = tokens_since_log / elapsed
                writer.write(done, metrics)
                tokens_since_log, last_log = 0, time.perf_counter()
            if t.eval_every and done % t.eval_every == 0 and done != t.steps and eval_batches:
                writer.write(done, evaluate(eval_fn, state.params, ref_params, eval_batches, mesh), prefix="eval")
            if stop.requested or (t.checkpoint_every and done % t.checkpoint_every == 0):
                checkpointer.save(done, state, train_iter.state(), force=stop.requested)
            if stop.requested:
                tqdm.write(f"SIGTERM: saved checkpoint at step {done}; rerun the same command to resume")
                return {}
        final = evaluate(eval_fn, state.params, ref_params, eval_batches, mesh) if eval_batches else {}
        checkpointer.save(t.steps, state, train_iter.state(), force=True)
        model = nnx.merge(graphdef, state.params)
        if check_rule.rule:
            final["rule_rate"] = check_rule(model, tokenizer, mesh, count=t.num_samples)
        elif t.num_samples and eval_batches and objective.inputs == "tokens":
            print_samples(model, tokenizer, eval_batches, t.num_samples, mesh)
        if final:
            writer.write(t.steps, final, prefix="eval")
            _print_summary(config, final, rule_rate_before)
        if t.export_hf:
            save_pretrained(model, os.path.join(workdir, EXPORT_DIR), tokenizer=tokenizer)
            tqdm.write(f"exported Hugging Face model to {workdir}/{EXPORT_DIR}")
        return final
    finally:
        checkpointer.wait()
        checkpointer.close()
        writer.close()
        stop.restore()
