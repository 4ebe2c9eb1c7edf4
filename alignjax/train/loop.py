"""The training loop: build everything from the config, then step, log, evaluate, checkpoint and export.

Nothing is lost on a crash or preemption: checkpoints hold the train state and the data position together,
the same command resumes from the latest one, and SIGTERM (a preemptible TPU VM's notice) saves one and exits.
"""

from __future__ import annotations

import os
import signal
import time

import jax
import numpy as np
import transformers
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import losses, sharding
from alignjax.data import build_sft_data, load_builtin_tokenizer
from alignjax.models import ModelConfig, RopeConfig, from_pretrained, init_model, save_pretrained
from alignjax.models.config import dtype_from_name
from alignjax.sampling import GREEDY, generate
from alignjax.train.checkpoint import Checkpointer, abstract_like
from alignjax.train.config_checks import check_config, resolve_mesh_shape
from alignjax.train.metrics import MetricWriter
from alignjax.train.optimizer import make_optimizer
from alignjax.train.state import create_train_state, train_state_shardings
from alignjax.train.step import BATCH_KEYS_BL, jit_eval_step, jit_train_step


class _StopOnSigterm:
    """Turns SIGTERM into a flag the loop polls between steps, so the step in flight completes."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


def _tokenizer(config: ConfigDict):
    if config.model.path:
        return transformers.AutoTokenizer.from_pretrained(config.model.path)
    if config.data.source == "builtin":
        return load_builtin_tokenizer(config.data.path)
    raise ValueError("model.path is empty and data.source is not 'builtin': set model.path to a model directory")


def _model(config: ConfigDict, vocab_size: int, mesh):
    m = config.model
    if m.path:
        model = from_pretrained(m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh)
        model.config = model.config.replace(remat=m.remat)
        return model
    init = m.init
    cfg = ModelConfig(
        architecture=init.architecture,
        vocab_size=vocab_size,
        hidden_size=init.hidden_size,
        intermediate_size=init.intermediate_size,
        num_layers=init.num_layers,
        num_heads=init.num_heads,
        num_kv_heads=init.num_kv_heads,
        head_dim=init.hidden_size // init.num_heads,
        rope=RopeConfig(theta=init.rope_theta),
        max_position_embeddings=config.data.seq_len,
        tie_word_embeddings=init.tie_word_embeddings,
        remat=m.remat,
        dtype=dtype_from_name(m.dtype),
        param_dtype=dtype_from_name(m.param_dtype, "param_dtype"),
    )
    return init_model(cfg, seed=config.seed, mesh=mesh)


def put_batch(batch: dict, mesh) -> dict:
    """The global batch onto the mesh; each process supplies only the rows its devices hold."""
    placement = sharding.batch_sharding(mesh)
    return {k: sharding.put_sharded(batch[k], placement) for k in BATCH_KEYS_BL}


def evaluate(eval_fn, params, eval_batches: list[dict], mesh) -> dict[str, float]:
    """Held-out loss per token and exact match per example over all eval batches."""
    total = weight = 0.0
    matches = {}
    for batch in eval_batches:
        out = jax.device_get(eval_fn(params, put_batch(batch, mesh)))
        total, weight = total + float(out["total"]), weight + float(out["weight"])
        for index, match in zip(batch["example_index"], out["exact_match_B"]):
            if index >= 0:
                matches[int(index)] = bool(match)
    return {"loss": total / max(weight, 1.0), "exact_match": float(np.mean(list(matches.values())))}


def print_samples(model, tokenizer, eval_batches: list[dict], count: int, mesh) -> None:
    """Greedy answers to the first `count` held-out prompts, next to their references."""
    batch = eval_batches[0]
    rows = [r for r in range(len(batch["tokens"])) if batch["example_index"][r] >= 0][:count]
    prompts = [batch["tokens"][r, : int(np.argmax(batch["loss_mask"][r] > 0)) + 1].tolist() for r in rows]
    references = [batch["targets"][r][batch["loss_mask"][r] > 0].tolist() for r in rows]
    budget = max(len(reference) for reference in references) + 4
    answers = generate(model, prompts, max_new_tokens=budget, config=GREEDY, tokenizer=tokenizer, mesh=mesh).texts
    for prompt, answer, reference in zip(prompts, answers, references):
        tqdm.write(
            f"  prompt {tokenizer.decode(prompt, skip_special_tokens=True)!r} -> "
            f"{answer!r} "
            f"(reference {tokenizer.decode(reference, skip_special_tokens=True)!r})"
        )


def train(config: ConfigDict) -> dict[str, float]:
    """Runs the experiment `config` to completion (or to SIGTERM); returns the final eval metrics."""
    if config.distributed.enabled:
        d = config.distributed
        sharding.initialize_distributed(d.coordinator_address, d.num_processes, d.process_id)
    check_config(config)
    mesh = sharding.make_mesh(*resolve_mesh_shape(config.mesh, jax.device_count()))
    workdir = config.train.workdir
    tokenizer = _tokenizer(config)
    train_iter, eval_batches, tokenizer, report = build_sft_data(config.data, tokenizer)
    tqdm.write(f"data: {report}")
    model = _model(config, len(tokenizer), mesh)
    graphdef, params = nnx.split(model)
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

    loss_fn = losses.get(config.loss.name)
    step_fn = jit_train_step(graphdef, loss_fn, optimizer, schedule, config.optim.grad_accum, shardings, mesh)
    eval_fn = jit_eval_step(graphdef, loss_fn, shardings.params, mesh)
    writer = MetricWriter(workdir)
    stop = _StopOnSigterm()
    t = config.train
    tokens_since_log, last_log = 0, time.perf_counter()
    try:
        if t.eval_every and start == 0 and eval_batches:
            writer.write(0, evaluate(eval_fn, state.params, eval_batches, mesh), prefix="eval")
        for step in tqdm(range(start, t.steps), initial=start, total=t.steps, desc="train", disable=None):
            batch = next(train_iter)
            tokens_since_log += int(np.count_nonzero(batch["segment_ids"]))
            state, metrics = step_fn(state, put_batch(batch, mesh))
            done = step + 1
            if t.log_every and (done % t.log_every == 0 or done == t.steps):
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                elapsed = time.perf_counter() - last_log
                metrics["tokens_per_second"] = tokens_since_log / elapsed
                writer.write(done, metrics)
                tokens_since_log, last_log = 0, time.perf_counter()
            if t.eval_every and done % t.eval_every == 0 and done != t.steps and eval_batches:
                writer.write(done, evaluate(eval_fn, state.params, eval_batches, mesh), prefix="eval")
            if stop.requested or (t.checkpoint_every and done % t.checkpoint_every == 0):
                checkpointer.save(done, state, train_iter.state(), force=stop.requested)
            if stop.requested:
                tqdm.write(f"SIGTERM: saved checkpoint at step {done}; rerun the same command to resume")
                return {}
        final = evaluate(eval_fn, state.params, eval_batches, mesh) if eval_batches else {}
        if final:
            writer.write(t.steps, final, prefix="eval")
        checkpointer.save(t.steps, state, train_iter.state(), force=True)
        model = nnx.merge(graphdef, state.params)
        if t.export_hf:
            save_pretrained(model, os.path.join(workdir, "hf"), tokenizer=tokenizer)
            tqdm.write(f"exported Hugging Face model to {workdir}/hf")
        if t.num_samples and eval_batches:
            print_samples(model, tokenizer, eval_batches, t.num_samples, mesh)
        return final
    finally:
        checkpointer.wait()
        checkpointer.close()
        writer.close()
        stop.restore()
