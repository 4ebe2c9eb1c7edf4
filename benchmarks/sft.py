"""SFT training throughput of alignjax against TRL's `SFTTrainer`: same weights, same data, same shapes, one run.

For each model the benchmark builds a `transformers` LlamaForCausalLM from a fixed torch seed, saves it to a
temporary directory, and trains it for the same steps on the same fixed token batches twice, each in a fresh
subprocess (so peak memory and thread pools are each framework's own):

  alignjax: `alignjax.models.from_pretrained` + the real jitted train step (`alignjax.train.step.jit_train_step`);
  trl:      `trl.SFTTrainer` on a pre-tokenised `datasets.Dataset` of the same token ids, in the same order.

Both use AdamW (same lr, betas, eps, no weight decay, constant schedule, no warmup), global-norm clipping at 1.0,
float32, no rematerialisation / gradient checkpointing, batches of exactly [batch, seq_len] with no padding and the
loss on every next-token target. It prints one JSON line per (model, framework) and one per model with the ratio
alignjax / TRL; the first-step losses must agree, which checks that both did the same work.

Steady state excludes the first `--warmup` steps (alignjax's first step also carries the jit compile, reported
separately as `compile_s`). tokens/s counts the non-padding input tokens per second of wall time from the end of the
last warmup step to the end of the last step, so it includes everything between steps (batch collation, host-to-
device copies, the trainer's bookkeeping); `step_ms_median` is the median of single steps (alignjax: put the batch,
run the step, block on the new state and metrics; TRL: `on_step_begin` -> `on_step_end`). FLOP/s is the standard
6 * n_params * tokens/s, and `flop_per_s_attn` the more careful 6 * n_matmul_params + 12 * layers * heads * head_dim *
seq_len per token (PaLM appendix B; counts the full, not causal, attention matrix). `cpu_util_cores` is CPU seconds
per wall second in the steady state: on a shared machine, a run far below the core count was competing for the CPU;
`--repeats` alternates the frameworks and the ratio line uses each one's best run.

    pip install trl   # the peer; not a dependency of alignjax
    python -m benchmarks.sft                                      # both models
    python -m benchmarks.sft --models tiny --steps 200 --repeats 3
    python -m benchmarks.sft --models 25m --steps 10 --repeats 2 --batch-size 8 --seq-len 256

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks import alignjax_side, harness, peers
from benchmarks.harness import DATA_SEED, LLAMAS, pick

# The model shapes (`harness.LLAMAS`) with each one's default training shape.
MODELS = {
    "tiny": dict(LLAMAS["tiny"], seq_len=32, batch=32, steps=200),
    "25m": dict(LLAMAS["25m"], seq_len=256, batch=8, steps=12),
}


def add_arguments(parser) -> None:
    harness.add_training_arguments(
        parser, "--steps", 0, "total steps per framework (0: the model's default)", warmup=3, lr=1e-3
    )
    parser.add_argument("--batch-size", type=int, default=0, help="rows per step (0: the model's default)")
    parser.add_argument("--seq-len", type=int, default=0, help="tokens per row (0: the model's default)")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="device peak FLOP/s; when given, prints MFU")


def check(args) -> None:
    for name in args.models.split(","):
        harness.require_warmup(args.warmup, args.steps or MODELS[name]["steps"])


# ---------------------------------------------------------------------------------------------------------------
# Prepare: the shared weights and data.


def prepare(workdir: str, args) -> dict:
    """Writes the model (HF format) and the token ids into `workdir`; returns the run's settings."""
    spec = MODELS[args.model]
    batch, seq_len = args.batch_size or spec["batch"], args.seq_len or spec["seq_len"]
    steps = args.steps or spec["steps"]
    model = peers.save_llama(os.path.join(workdir, "model"), spec, max_positions=max(seq_len, 2048))
    vocab = model.config.vocab_size
    n_params = peers.n_params(model)
    n_matmul = n_params - (0 if spec["tied"] else vocab * spec["hidden"])  # the input lookup does no matmul
    head_dim = spec["hidden"] // spec["heads"]
    # Random ids avoiding 0 (pad) and 1 (eos); one distinct batch per step, in order, for both frameworks.
    ids = np.random.default_rng(DATA_SEED).integers(2, vocab, size=(steps * batch, seq_len), dtype=np.int32)
    np.save(os.path.join(workdir, "ids.npy"), ids)
    return dict(
        model=args.model,
        vocab=vocab,
        **pick(spec, "hidden", "layers", "heads", "kv_heads", "tied"),
        batch=batch,
        seq_len=seq_len,
        steps=steps,
        **pick(args, "warmup", "lr", "threads"),
        n_params=n_params,
        flop_per_token=6 * n_params,
        flop_per_token_attn=6 * n_matmul + 12 * spec["layers"] * spec["heads"] * head_dim * seq_len,
        peak_flops=args.peak_flops,
    )


def ratio(ours: dict, theirs: dict, workdir: str) -> dict:
    return {
        **harness.ratios(ours, theirs, **harness.STEP_RATIOS),
        **harness.loss_agreement(ours, theirs, tolerance=1e-3 * max(1.0, abs(theirs["loss_first"]))),
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each trains the saved model on the saved ids and reports one record.


def _record(framework: str, settings: dict, clock, losses, extra: dict) -> dict:
    """The record from the steps' clock and per-step losses; every step trains on batch x seq_len tokens."""
    w, tokens_per_step = settings["warmup"], settings["batch"] * settings["seq_len"]
    timing = clock.steady_state(w, [tokens_per_step] * len(clock.ends))
    del timing["steps_per_s"]  # not in SFT's records: it is tokens/s over batch x seq_len
    tokens_per_s = timing["steps_measured"] * tokens_per_step / clock.wall_s(w)  # unrounded, for the FLOP rates
    record = {
        **harness.record_head(framework, settings, "batch", "seq_len", "n_params"),
        **timing,
        **extra,
        "flop_per_s": round(settings["flop_per_token"] * tokens_per_s, -6),
        "flop_per_s_attn": round(settings["flop_per_token_attn"] * tokens_per_s, -6),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    if settings["peak_flops"]:
        record["mfu"] = round(record["flop_per_s_attn"] / settings["peak_flops"], 4)
    return record


def _batches(ids: np.ndarray, batch: int):
    """alignjax batches of the ids: every token real, the target of position t is token t + 1 (none for the last)."""
    for start in range(0, len(ids), batch):
        tokens = ids[start : start + batch]
        B, L = tokens.shape
        targets = np.zeros_like(tokens)
        targets[:, :-1] = tokens[:, 1:]
        loss_mask = np.ones((B, L), np.float32)
        loss_mask[:, -1] = 0.0
        yield {
            "tokens": tokens,
            "positions": np.broadcast_to(np.arange(L, dtype=np.int32), (B, L)).copy(),
            "segment_ids": np.ones((B, L), np.int32),
            "targets": targets,
            "loss_mask": loss_mask,
        }


def worker_alignjax(workdir: str, settings: dict) -> dict:
    setup = alignjax_side.start(*alignjax_side.TRAINING_MODULES, "alignjax.losses")
    import jax

    from alignjax import losses, sharding
    from alignjax.train.step import jit_train_step
    from alignjax.train.trainee import Trainee

    mesh, model = alignjax_side.load_model(workdir)
    config = alignjax_side.matched_config(settings["lr"])
    trainee = Trainee.create(model, config.optim, settings["steps"], seed=0, mesh=mesh)
    del model
    sft = losses.objective("sft")
    step_fn = jit_train_step(
        trainee.graphdef, sft, sft.fn, trainee.optimizer, trainee.schedule, 1, trainee.shardings, mesh
    )

    def put(batch_np):
        return sharding.put_batch(batch_np, mesh)

    batches = list(_batches(np.load(os.path.join(workdir, "ids.npy")), settings["batch"]))
    jax.block_until_ready(trainee.state)
    setup.done()

    t0 = time.perf_counter()
    step_fn.lower(trainee.state, put(batches[0]), None).compile()  # the calls below reuse this executable
    compile_s = time.perf_counter() - t0

    trainee.state, clock, step_losses = alignjax_side.run_steps(step_fn, trainee.state, batches, put, None)
    extra = {**setup.fields(), "compile_s": round(compile_s, 3), **alignjax_side.environment()}
    return _record("alignjax", settings, clock, step_losses, extra)


def worker_trl(workdir: str, settings: dict) -> dict:
    setup = peers.start_trl(settings["threads"])
    import datasets
    import trl

    model = peers.load_model(workdir)
    ids = np.load(os.path.join(workdir, "ids.npy"))
    trainer, clock = peers.trl_trainer(
        trl.SFTTrainer,
        trl.SFTConfig,
        workdir,
        settings["lr"],
        {
            "max_steps": settings["steps"],
            "per_device_train_batch_size": settings["batch"],
            "max_length": settings["seq_len"],
            "packing": False,
            "padding_free": False,
        },
        model=model,
        train_dataset=datasets.Dataset.from_dict({"input_ids": ids.tolist()}),
        processing_class=peers.id_tokenizer(settings["vocab"]),  # pad / eos ids only: the data are token ids
    )
    setup.done()
    trainer.train()
    extra = {**setup.fields(), "compile_s": 0.0, **peers.trl_environment(trainer)}
    return _record("trl", settings, clock, trainer.losses(), extra)


BENCHMARK = harness.Benchmark.of(globals(), peer="trl", default_models="tiny,25m")

if __name__ == "__main__":
    harness.main(BENCHMARK)
