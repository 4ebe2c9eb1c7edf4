"""SFT training throughput of alignjax against TRL's `SFTTrainer`: same weights, same data, same shapes, one run.

For each model the script builds a `transformers` LlamaForCausalLM from a fixed torch seed, saves it to a temporary
directory, and trains it for the same steps on the same fixed token batches twice, each in a fresh subprocess (so
peak memory and thread pools are each framework's own):

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
    python scripts/bench_sft.py                                   # both models
    python scripts/bench_sft.py --models tiny --steps 200 --repeats 3
    python scripts/bench_sft.py --models 25m --steps 10 --repeats 2 --batch-size 8 --seq-len 256

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
from bench_common import (
    DATA_SEED,
    LLAMAS,
    add_worker_arguments,
    jax_environment,
    load_json,
    loss_recording,
    peak_rss_mib,
    prepare_workdir,
    run_alternating,
    run_jax_steps,
    save_json,
    save_llama,
    torch_environment,
    trl_matched_arguments,
    trl_step_timer,
)

# The model shapes (`bench_common.LLAMAS`) with each one's default training shape.
MODELS = {
    "tiny": dict(LLAMAS["tiny"], seq_len=32, batch=32, steps=200),
    "25m": dict(LLAMAS["25m"], seq_len=256, batch=8, steps=12),
}
FRAMEWORKS = ("alignjax", "trl")


# ---------------------------------------------------------------------------------------------------------------
# Parent: the shared weights and data, the workers, the ratio.


def prepare(workdir: str, name: str, spec: dict, args) -> dict:
    """Writes the model (HF format), the token ids and the run's settings into `workdir`; returns the settings."""
    batch, seq_len = args.batch_size or spec["batch"], args.seq_len or spec["seq_len"]
    steps = args.steps or spec["steps"]
    if not 0 < args.warmup < steps:
        raise SystemExit(f"need 0 < --warmup ({args.warmup}) < --steps ({steps})")
    model = save_llama(os.path.join(workdir, "model"), spec, max_positions=max(seq_len, 2048))
    vocab = model.config.vocab_size
    n_params = sum(p.numel() for p in model.parameters())  # a tied embedding counts once
    n_matmul = n_params - (0 if spec["tied"] else vocab * spec["hidden"])  # the input lookup does no matmul
    head_dim = spec["hidden"] // spec["heads"]
    # Random ids avoiding 0 (pad) and 1 (eos); one distinct batch per step, in order, for both frameworks.
    ids = np.random.default_rng(DATA_SEED).integers(2, vocab, size=(steps * batch, seq_len), dtype=np.int32)
    np.save(os.path.join(workdir, "ids.npy"), ids)
    settings = dict(
        model=name,
        vocab=vocab,
        hidden=spec["hidden"],
        layers=spec["layers"],
        heads=spec["heads"],
        kv_heads=spec["kv_heads"],
        tied=spec["tied"],
        batch=batch,
        seq_len=seq_len,
        steps=steps,
        warmup=args.warmup,
        lr=args.lr,
        threads=args.threads,
        n_params=n_params,
        flop_per_token=6 * n_params,
        flop_per_token_attn=6 * n_matmul + 12 * spec["layers"] * spec["heads"] * head_dim * seq_len,
        peak_flops=args.peak_flops,
    )
    save_json(workdir, "settings.json", settings)
    return settings


def ratio_record(ours: dict, theirs: dict) -> dict:
    first_diff = abs(ours["loss_first"] - theirs["loss_first"])
    return {
        "model": ours["model"],
        "ratio": "alignjax/trl",
        "tokens_per_s_ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        "step_ms_ratio": round(ours["step_ms_median"] / theirs["step_ms_median"], 3),
        "peak_rss_ratio": round(ours["peak_rss_mib"] / theirs["peak_rss_mib"], 3),
        "loss_first_abs_diff": first_diff,
        "loss_last_abs_diff": abs(ours["loss_last"] - theirs["loss_last"]),
        "same_work": first_diff < 1e-3 * max(1.0, abs(theirs["loss_first"])),
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each trains the saved model on the saved ids and reports one record.


def _record(framework: str, settings: dict, begins, ends, cpu_at_ends, losses, extra: dict) -> dict:
    """The common record from per-step begin/end timestamps and CPU seconds (at each end), and per-step losses."""
    w, b, l = settings["warmup"], settings["batch"], settings["seq_len"]
    if not 0 < w < len(ends):
        raise ValueError(f"need 0 < warmup ({w}) < steps ({len(ends)})")
    measured = len(ends) - w
    wall_s = ends[-1] - ends[w - 1]
    tokens_per_s = measured * b * l / wall_s
    record = {
        "model": settings["model"],
        "framework": framework,
        "batch": b,
        "seq_len": l,
        "steps_measured": measured,
        "n_params": settings["n_params"],
        "tokens_per_s": round(tokens_per_s, 1),
        "step_ms_median": round(1e3 * statistics.median(e - s for s, e in zip(begins[w:], ends[w:])), 3),
        "first_step_s": round(ends[0] - begins[0], 3),
        **extra,
        # Cores kept busy in the steady state; well below the core count means waiting, or another process
        # competing for the CPU (`loadavg_1m` counts this run's own threads too).
        "cpu_util_cores": round((cpu_at_ends[-1] - cpu_at_ends[w - 1]) / wall_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "flop_per_s": round(settings["flop_per_token"] * tokens_per_s, -6),
        "flop_per_s_attn": round(settings["flop_per_token_attn"] * tokens_per_s, -6),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    if settings["peak_flops"]:
        record["mfu"] = round(record["flop_per_s_attn"] / settings["peak_flops"], 4)
    return record


def _batches_np(ids: np.ndarray, batch: int):
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
    from alignjax.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # first, as alignjax's command-line entry points do
    import jax
    from flax import nnx

    from alignjax import losses, sharding
    from alignjax.models import from_pretrained
    from alignjax.train.defaults import base_config
    from alignjax.train.optimizer import make_optimizer
    from alignjax.train.state import create_train_state, train_state_shardings
    from alignjax.train.step import jit_train_step

    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    model = from_pretrained(os.path.join(workdir, "model"), mesh=mesh)
    graphdef, params = nnx.split(model)
    cfg = base_config()
    cfg.optim.update(lr=settings["lr"], warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0)
    optimizer, schedule = make_optimizer(cfg.optim, settings["steps"])
    shardings = train_state_shardings(params, optimizer, mesh)
    state = create_train_state(params, optimizer, seed=0, shardings=shardings)
    del model, params
    sft = losses.objective("sft")
    step_fn = jit_train_step(graphdef, sft, sft.fn, optimizer, schedule, 1, shardings, mesh)
    placement = sharding.batch_sharding(mesh)

    def put(batch_np):
        return {k: sharding.put_sharded(v, placement) for k, v in batch_np.items()}

    batches = list(_batches_np(np.load(os.path.join(workdir, "ids.npy")), settings["batch"]))
    jax.block_until_ready(state)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    step_fn.lower(state, put(batches[0]), None).compile()  # the calls below reuse this executable
    compile_s = time.perf_counter() - t0

    state, begins, ends, cpu, step_losses = run_jax_steps(step_fn, state, batches, put, None)
    extra = {
        "setup_s": round(setup_s, 3),
        "compile_s": round(compile_s, 3),
        "import_rss_mib": round(import_rss, 1),
        **jax_environment(),
    }
    return _record("alignjax", settings, begins, ends, cpu, step_losses, extra)


def worker_trl(workdir: str, settings: dict) -> dict:
    import datasets
    import tokenizers
    import torch
    import transformers
    import trl

    torch.set_num_threads(settings["threads"])
    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    # TRL wants a tokenizer (pad / eos ids only, since the data are token ids): one word per id.
    vocab = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i for i in range(2, settings["vocab"])}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(workdir, "model"), dtype=torch.float32)
    ids = np.load(os.path.join(workdir, "ids.npy"))
    dataset = datasets.Dataset.from_dict({"input_ids": ids.tolist()})
    use_cpu = not torch.cuda.is_available()
    config = trl.SFTConfig(
        output_dir=os.path.join(workdir, "trl_out"),
        max_steps=settings["steps"],
        per_device_train_batch_size=settings["batch"],
        gradient_accumulation_steps=1,
        max_length=settings["seq_len"],
        packing=False,
        padding_free=False,
        **trl_matched_arguments(settings["lr"], use_cpu=use_cpu),
    )

    timer = trl_step_timer()
    trainer = loss_recording(trl.SFTTrainer)(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
    )
    setup_s = time.perf_counter() - t0
    trainer.train()
    step_losses = [float(x) for x in trainer.step_losses]
    extra = {
        "setup_s": round(setup_s, 3),
        "compile_s": 0.0,
        "import_rss_mib": round(import_rss, 1),
        **torch_environment(model, f"trl {trl.__version__}", f"optim {config.optim}"),
    }
    return _record("trl", settings, timer.begins, timer.ends, timer.cpu, step_losses, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,25m", help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument("--frameworks", default="alignjax,trl", help="comma-separated, from alignjax,trl")
    parser.add_argument("--steps", type=int, default=0, help="total steps per framework (0: the model's default)")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the steady state")
    parser.add_argument("--batch-size", type=int, default=0, help="rows per step (0: the model's default)")
    parser.add_argument("--seq-len", type=int, default=0, help="tokens per row (0: the model's default)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for TRL")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="device peak FLOP/s; when given, prints MFU")
    add_worker_arguments(parser, FRAMEWORKS)
    args = parser.parse_args()

    if args._worker:
        if args._worker == "prepare":
            saved = argparse.Namespace(**load_json(args._workdir, "args.json"))
            print(json.dumps(prepare(args._workdir, saved.model, MODELS[saved.model], saved)), flush=True)
            return
        settings = load_json(args._workdir, "settings.json")
        worker = worker_alignjax if args._worker == "alignjax" else worker_trl
        print(json.dumps(worker(args._workdir, settings)), flush=True)
        return

    frameworks = [f for f in args.frameworks.split(",") if f]
    for name in args.models.split(","):
        if name not in MODELS or any(f not in FRAMEWORKS for f in frameworks):
            raise SystemExit(f"unknown model {name!r} or framework in {frameworks}")
        if not 0 < args.warmup < (args.steps or MODELS[name]["steps"]):
            raise SystemExit(f"need 0 < --warmup ({args.warmup}) < --steps ({args.steps or MODELS[name]['steps']})")
        with tempfile.TemporaryDirectory(prefix=f"bench_sft_{name}_") as workdir:
            prepare_workdir(__file__, workdir, dict(vars(args), model=name))
            best = run_alternating(__file__, frameworks, args.repeats, workdir, key=lambda record: record["framework"])
            if len(best) == 2:
                print(json.dumps({**ratio_record(best["alignjax"], best["trl"]), "of": f"best of {args.repeats}"}))


if __name__ == "__main__":
    main()
