"""The supervised and preference training loop: build everything from the config, then step, log, evaluate,
checkpoint and export.

SFT, the offline preference losses and reward models share this loop; what differs between them is the loss
(`losses.Objective`), which decides the model (causal LM or reward model), the batches and what the step computes.
The run's scaffold (`train.scaffold`) keeps its work: checkpoints hold the train state and the data position
together, the same command resumes from the latest one, and SIGTERM saves one and exits. With
`train.stop_below_loss`, the run stops (and exports) at the first step whose training loss is below it, as DITTO's
SFT warm-up does; its last checkpoint says so, and a rerun trains no further.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import losses, sharding
from alignjax.data import build_data
from alignjax.data.builtin import get_builtin
from alignjax.train.build import build_model, load_tokenizer, reference_params
from alignjax.train.config_checks import check_config
from alignjax.train.evaluation import evaluate, greedy_answers, print_answers, print_samples, rule_rate
from alignjax.train.reference import ReferenceTables
from alignjax.train.scaffold import RunScaffold
from alignjax.train.step import DEVICE_KEYS, jit_eval_step, jit_train_step
from alignjax.train.trainee import Trainee

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


def _before_after(name: str, before: dict, after: dict, scale: float = 100.0, unit: str = "%") -> str | None:
    """'name: B before -> A after' (or 'name: A' without a before), None when `after` lacks it."""
    if name not in after:
        return None
    if name not in before:
        return f"{after[name] * scale:.4g}{unit}"
    return f"{before[name] * scale:.4g}{unit} before this stage -> {after[name] * scale:.4g}{unit} after"


def _print_summary(config: ConfigDict, final: dict[str, float], before: dict[str, float]) -> None:
    """The stage's outcome in words, each figure before and after the stage: held-out preference accuracy and
    reward margin (a saturated accuracy says little without the margin), the rule rate, exact match."""
    figures = (
        ("held-out preference accuracy", "rewards/accuracy", 100.0, "%"),
        ("held-out reward margin (chosen - rejected)", "rewards/margin", 1.0, ""),
        ("greedy answers that follow the task's rule", "rule_rate", 100.0, "%"),
        ("held-out exact match", "exact_match", 100.0, "%"),
    )
    for words, name, scale, unit in figures:
        line = _before_after(name, before, final, scale, unit)
        if line:
            tqdm.write(f"[{config.loss.name}] {words}: {line}")


# in the checkpoint's data position: the run stopped below `train.stop_below_loss`, so a resume trains no further
_STOPPED_EARLY = "stopped_below_loss"


def train(config: ConfigDict) -> dict[str, float]:
    """Trains the one stage `config` to completion; returns the final eval metrics.

    `train.steps=0` evaluates instead: the starting model (`model.path`), or the checkpoint a workdir holds or
    `train.resume_from` names, on the held-out data, with no training, checkpoint or export.

    Raises:
      RunStopped: when SIGTERM or Ctrl-C stopped the run, after saving a checkpoint.
    """
    check_config(config)
    objective = losses.objective(config.loss.name)
    loss_fn = losses.bind(config.loss)
    mesh = sharding.mesh_from_config(config.mesh)
    t = config.train
    with RunScaffold(t.workdir, t.keep_checkpoints, t.resume_from) as scaffold:
        train_iter, eval_batches, tokenizer, report = build_data(config.data, load_tokenizer(config))
        tqdm.write(f"data: {report}")
        model = build_model(config, objective, len(tokenizer), mesh)
        ref_params = reference_params(config, nnx.state(model), mesh) if objective.reference else None
        trainee = Trainee.create(model, config.optim, max(t.steps, 1), config.seed, mesh)
        del model
        start, trainee.state, data_position = scaffold.restore(trainee.state, trainee.shardings)
        if start:
            train_iter.restore(data_position)

        ref_shardings = trainee.shardings.params if ref_params is not None else None
        tables = None
        if ref_params is not None and config.reference.precompute:
            tables = ReferenceTables.compute(trainee.graphdef, ref_params, train_iter, eval_batches, mesh)
            ref_params = ref_shardings = None  # the reference's memory is freed for the run
            eval_batches = [tables.attach(batch, "eval") for batch in eval_batches]
        step_fn = jit_train_step(
            trainee.graphdef,
            objective,
            loss_fn,
            trainee.optimizer,
            trainee.schedule,
            config.optim.grad_accum,
            trainee.shardings,
            mesh,
            ref_shardings,
        )
        eval_fn = jit_eval_step(trainee.graphdef, objective, loss_fn, trainee.shardings.params, mesh, ref_shardings)

        def evaluate_now() -> dict[str, float]:
            return evaluate(eval_fn, trainee.state.params, ref_params, eval_batches, mesh) if eval_batches else {}

        check_rule = _RuleCheck(config, objective)
        if start == 0 and t.steps:  # the starting model's figures, for the summary's "before"
            starting = evaluate_now() if t.eval_every else {}
            if check_rule.rule:
                starting["rule_rate"] = check_rule(trainee.model(), tokenizer, mesh)
            scaffold.writer.write(0, starting, prefix="eval")
        scaffold.watch_signals()
        tokens_since_log, last_log = 0, time.perf_counter()
        steps = range(start, t.steps) if not (data_position or {}).get(_STOPPED_EARLY) else range(0)
        last = start  # the step the final evaluation is logged at: where training ended
        for step in tqdm(steps, initial=start, total=t.steps, desc="train", disable=None):
            batch = next(train_iter)
            if tables:
                batch = tables.attach(batch, "train")
            tokens_since_log += int(np.count_nonzero(batch["segment_ids"]))
            trainee.state, metrics = step_fn(trainee.state, sharding.put_batch(batch, mesh, DEVICE_KEYS), ref_params)
            last = done = step + 1
            # the early stop reads every step's loss, as the DITTO reference's SFT warm-up does
            stop_now = bool(t.stop_below_loss) and float(metrics["loss"]) < t.stop_below_loss
            if stop_now or (t.log_every and (done % t.log_every == 0 or done == t.steps)):
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                metrics["tokens_per_second"] = tokens_since_log / (time.perf_counter() - last_log)
                scaffold.writer.write(done, metrics)
                tokens_since_log, last_log = 0, time.perf_counter()
            if t.eval_every and done % t.eval_every == 0 and done != t.steps and eval_batches:
                scaffold.writer.write(done, evaluate_now(), prefix="eval")
            position = {**train_iter.state(), **({_STOPPED_EARLY: True} if stop_now else {})}
            scaffold.checkpoint(done, trainee.state, position, t.checkpoint_every, final=done == t.steps or stop_now)
            if stop_now:
                tqdm.write(
                    f"[{config.loss.name}] stopped at step {done} of {t.steps}: the training loss "
                    f"{metrics['loss']:.4g} is below train.stop_below_loss={t.stop_below_loss}"
                )
                break
        before = scaffold.writer.logged(0, "eval")
        final = evaluate_now()
        model = trainee.model()
        if check_rule.rule:
            final["rule_rate"] = check_rule(model, tokenizer, mesh, count=t.answers_to_print)
        elif t.answers_to_print and eval_batches and objective.inputs == "tokens":
            print_samples(model, tokenizer, eval_batches, t.answers_to_print, mesh)
        if final:
            scaffold.writer.write(last, final, prefix="eval")
            _print_summary(config, final, before)
        if t.export_hf and t.steps:
            scaffold.export(model, tokenizer)
        return final
