"""DPO training throughput of alignjax against TRL's `DPOTrainer`: same weights, same pairs, same batches, one run.

The parent builds the *25m* `transformers` LlamaForCausalLM from a fixed torch seed (`bench_common.LLAMAS`) and
the preference pairs of HH-RLHF (harmless-base, test split): each conversation is split into the prompt (up to its
last "Assistant:" turn, the part both responses share) and the chosen and rejected replies, tokenised with a byte-
level BPE of the model's vocabulary size (8,000) trained on those texts, the prompt cut to its last
`--max-prompt` tokens and each reply to what fits in `--max-length` with the prompt, ending in <eos>. Both
frameworks then train on exactly these ids, in the same order, `--batch-size` pairs per step, each in a fresh
subprocess:

  alignjax: `alignjax.models.from_pretrained` + the real jitted train step (`alignjax.train.step.jit_train_step`)
            with `losses.objective("dpo")`, beta 0.1, on [B, 2, L] batches of `preference_batching`, each cut to
            its longest row rounded up to `--length-bucket` tokens (`data.length_bucket`; one compiled program per
            bucket, compiled before the timed steps), or padded to one fixed L with `--length-bucket 0`;
  trl:      `trl.DPOTrainer` on a dataset of prompt / chosen / rejected text that its tokenizer maps back to the
            same ids one word per id (`bench_common.id_tokenizer`); it pads each batch to its longest row.

Two settings each:
  default: the reference model runs in every step (alignjax's default; TRL's: a second copy of the model);
  fastest: the reference's log-probs precomputed in one pass before training (alignjax `reference.precompute=True`
           through `ReferenceTables`; TRL `precompute_ref_log_probs=True`, its one documented DPO speed-up that
           works here: `padding_free` is "temporarily unavailable" in TRL 1.16 and falls back to padding, and
           Liger kernels are Triton / GPU only and deprecated). The pass is timed as `precompute_s`, outside the
           steady state.

Both use AdamW (same lr, betas (0.9, 0.95), eps 1e-8, no weight decay, constant schedule, no warmup), global-norm
clipping at 1.0, float32, no rematerialisation / gradient checkpointing (TRL's config defaults to gradient
checkpointing and bf16; both are turned off, as in `bench_sft.py`), and DPO's sigmoid loss with beta 0.1 averaged
over pairs. The first-step losses must agree (policy == reference, so both are log 2 = 0.693147), and so should
the last, which checks that both did the same work.

tokens/s counts the real (non-padding) tokens of both rows of every pair, prompt included, per second of wall time
from the end of the last warmup step to the end of the last step; steps/s is over the same time. The padding each
framework computed on is reported as `padding_fraction`: alignjax's fixed L against TRL's longest-in-batch.
`step_ms_median`, `cpu_util_cores`, `peak_rss_mib` are as in `bench_sft.py`.

    pip install trl   # the peer; not a dependency of alignjax
    python scripts/bench_dpo.py --repeats 2
    python scripts/bench_dpo.py --settings default --steps 8 --warmup 2

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time

import numpy as np
from bench_common import (
    LLAMAS,
    add_worker_arguments,
    id_tokenizer,
    ids_to_text,
    jax_environment,
    load_json,
    loss_recording,
    peak_rss_mib,
    prepare_workdir,
    run_alternating,
    run_jax_steps,
    save_json,
    save_llama,
    steady_state,
    torch_environment,
    trl_matched_arguments,
    trl_step_timer,
)

# The HH-RLHF file of the workspace's shared data, next to the repository.
DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "hh_rlhf_harmless_base_test.jsonl.gz"
)
MODEL = "25m"
SETTINGS = ("default", "fastest")
FRAMEWORKS = ("alignjax", "trl")
ROLES = tuple(f"{f}:{s}" for s in SETTINGS for f in FRAMEWORKS)
TURN = "\n\nAssistant:"


# ---------------------------------------------------------------------------------------------------------------
# Parent: the shared weights and pairs, the workers, the ratios.


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """An HH-RLHF pair as (prompt, chosen reply, rejected reply): the prompt ends with the last "Assistant:" turn
    that both conversations share."""
    common = 0
    while common < min(len(chosen), len(rejected)) and chosen[common] == rejected[common]:
        common += 1
    cut = chosen.rfind(TURN, 0, common + 1) + len(TURN)
    if cut < len(TURN):
        raise ValueError("no shared Assistant turn")
    return chosen[:cut], chosen[cut:], rejected[cut:]


def prepare(workdir: str, args) -> dict:
    """Writes the model (HF format), the pairs' token ids and the run's settings into `workdir`; returns the
    settings."""
    import tokenizers

    spec = LLAMAS[MODEL]
    if not 0 < args.warmup < args.steps:
        raise SystemExit(f"need 0 < --warmup ({args.warmup}) < --steps ({args.steps})")
    with gzip.open(args.data, "rt") as f:
        triples = [split_pair(**json.loads(line)) for line in f]
    # A byte-level BPE of the model's vocabulary on these texts; ids 0 and 1 are <pad> and <eos>.
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=spec["vocab"],
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text for triple in triples for text in triple], trainer)
    assert (tok.token_to_id("<pad>"), tok.token_to_id("<eos>")) == (0, 1)
    n = args.steps * args.batch_size
    pairs = []
    for prompt, chosen, rejected in triples[:n]:
        prompt_ids = tok.encode(prompt).ids[-args.max_prompt :]  # keep the end: the turn being answered
        room = args.max_length - len(prompt_ids) - 1  # the rest, less the <eos>
        pair = {"prompt_ids": prompt_ids}
        for name, text in (("chosen_ids", chosen), ("rejected_ids", rejected)):
            pair[name] = tok.encode(text).ids[:room] + [1]
        pairs.append(pair)
    save_json(workdir, "pairs.json", pairs)
    model = save_llama(os.path.join(workdir, "model"), spec, max_positions=2048)
    n_params = sum(p.numel() for p in model.parameters())

    rows = [len(p["prompt_ids"]) + len(p[k]) for p in pairs for k in ("chosen_ids", "rejected_ids")]
    longest = max(rows)
    seq_len = args.seq_len or longest
    if seq_len < longest:
        raise SystemExit(f"--seq-len {seq_len} is shorter than the longest row ({longest})")
    b2 = 2 * args.batch_size
    tokens_per_step = [sum(rows[i : i + b2]) for i in range(0, len(rows), b2)]
    trl_padded_per_step = [b2 * max(rows[i : i + b2]) for i in range(0, len(rows), b2)]
    bucket = args.length_bucket
    ours_padded_per_step = [
        b2 * (min(seq_len, -(-max(rows[i : i + b2]) // bucket) * bucket) if bucket else seq_len)
        for i in range(0, len(rows), b2)
    ]
    settings = dict(
        model=MODEL,
        vocab=spec["vocab"],
        n_params=n_params,
        data=os.path.basename(args.data),
        pairs=n,
        batch=args.batch_size,
        max_prompt=args.max_prompt,
        max_length=args.max_length,
        seq_len=seq_len,
        length_bucket=bucket,
        steps=args.steps,
        warmup=args.warmup,
        lr=args.lr,
        beta=args.beta,
        threads=args.threads,
        tokens_per_step=tokens_per_step,
        padded_tokens_per_step={"alignjax": ours_padded_per_step, "trl": trl_padded_per_step},
        row_tokens={
            "mean": round(float(np.mean(rows)), 1),
            "median": float(np.median(rows)),
            "max": longest,
            "prompt_mean": round(float(np.mean([len(p["prompt_ids"]) for p in pairs])), 1),
        },
    )
    save_json(workdir, "settings.json", settings)
    return {k: v for k, v in settings.items() if k not in ("tokens_per_step", "padded_tokens_per_step")}


def ratio_record(ours: dict, theirs: dict) -> dict:
    first_diff = abs(ours["loss_first"] - theirs["loss_first"])
    return {
        "model": ours["model"],
        "setting": ours["setting"],
        "ratio": "alignjax/trl",
        "steps_per_s_ratio": round(ours["steps_per_s"] / theirs["steps_per_s"], 3),
        "tokens_per_s_ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        "step_ms_ratio": round(ours["step_ms_median"] / theirs["step_ms_median"], 3),
        "peak_rss_ratio": round(ours["peak_rss_mib"] / theirs["peak_rss_mib"], 3),
        "loss_first_abs_diff": first_diff,
        "loss_last_abs_diff": abs(ours["loss_last"] - theirs["loss_last"]),
        "same_work": first_diff < 1e-4,
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each trains the saved model on the saved pairs and reports one record.


def _record(framework: str, setting: str, settings: dict, begins, ends, cpu, losses, extra: dict) -> dict:
    w = settings["warmup"]
    padded = settings["padded_tokens_per_step"][framework]
    padded = padded if isinstance(padded, list) else [padded] * settings["steps"]
    real = settings["tokens_per_step"]
    return {
        "model": settings["model"],
        "framework": framework,
        "setting": setting,
        "batch_pairs": settings["batch"],
        "seq_len": (
            (f"longest in batch, rounded up to {settings['length_bucket']}" if settings["length_bucket"] else settings["seq_len"])
            if framework == "alignjax"
            else "longest in batch"
        ),
        "n_params": settings["n_params"],
        **steady_state(begins, ends, cpu, w, real),
        "padding_fraction": round(1.0 - sum(real[w:]) / sum(padded[w:]), 3),
        **extra,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def worker_alignjax(workdir: str, settings: dict, setting: str) -> dict:
    import types

    from alignjax.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # first, as alignjax's command-line entry points do
    import jax
    from flax import nnx

    from alignjax import losses, sharding
    from alignjax.data.batching import trim_to_bucket
    from alignjax.data.preference_batching import preference_eval_batches, preference_layout
    from alignjax.data.preference_tokenization import PreferenceTokens
    from alignjax.models import from_pretrained
    from alignjax.train.build import reference_params
    from alignjax.train.defaults import base_config
    from alignjax.train.evaluation import put_batch
    from alignjax.train.optimizer import make_optimizer
    from alignjax.train.reference import ReferenceTables
    from alignjax.train.state import create_train_state, train_state_shardings
    from alignjax.train.step import jit_train_step

    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    model = from_pretrained(os.path.join(workdir, "model"), mesh=mesh)
    graphdef, params = nnx.split(model)
    cfg = base_config()
    cfg.optim.update(lr=settings["lr"], warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0)
    cfg.reference.precompute = setting == "fastest"
    objective = losses.objective("dpo")
    loss_fn = losses.bind(losses.loss_config("dpo", beta=settings["beta"]))
    ref_params = reference_params(cfg, params, mesh)
    optimizer, schedule = make_optimizer(cfg.optim, settings["steps"])
    shardings = train_state_shardings(params, optimizer, mesh)
    state = create_train_state(params, optimizer, seed=0, shardings=shardings)
    del model, params

    examples = [
        PreferenceTokens(
            np.asarray(p["prompt_ids"], np.int32),
            (np.asarray(p["chosen_ids"], np.int32), np.asarray(p["rejected_ids"], np.int32)),
            (1.0, 0.0),
        )
        for p in load_json(workdir, "pairs.json")
    ]
    L, B = settings["seq_len"], settings["batch"]
    # In order, as the eval batches are (a training BatchIterator shuffles); exactly `steps` full batches.
    batches = preference_eval_batches(examples, seq_len=L, batch_size=B)
    assert len(batches) == settings["steps"] and all((b["example_index"] >= 0).all() for b in batches)
    jax.block_until_ready((state, ref_params))
    setup_s = time.perf_counter() - t0

    ref_shardings = shardings.params
    precompute_s = 0.0
    if cfg.reference.precompute:
        t0 = time.perf_counter()
        train_iter = types.SimpleNamespace(
            examples=examples,
            seq_len=L,
            batch_size=B,
            pad_id=0,
            layout=preference_layout(examples),
            length_bucket=settings["length_bucket"],
        )
        tables = ReferenceTables.compute(graphdef, ref_params, train_iter, [], mesh)
        precompute_s = time.perf_counter() - t0
        batches = [tables.attach(b, "train") for b in batches]
        ref_params = ref_shardings = None  # the reference's memory is freed for the run, as in `loop.train`
    step_fn = jit_train_step(graphdef, objective, loss_fn, optimizer, schedule, 1, shardings, mesh, ref_shardings)
    batches = [trim_to_bucket(b, settings["length_bucket"]) for b in batches]

    # One executable per bucketed length, compiled ahead of the timed steps (as a real run compiles each once).
    t0 = time.perf_counter()
    executables = {}
    for batch in batches:
        L_batch = batch["tokens"].shape[-1]
        if L_batch not in executables:
            executables[L_batch] = step_fn.lower(state, put_batch(batch, mesh), ref_params).compile()
    compile_s = time.perf_counter() - t0

    def run_step(state, batch, ref_params):
        return executables[batch["tokens"].shape[-1]](state, batch, ref_params)

    put = lambda batch: put_batch(batch, mesh)  # noqa: E731
    state, begins, ends, cpu, step_losses = run_jax_steps(run_step, state, batches, put, ref_params)
    extra = {
        "setup_s": round(setup_s, 3),
        "precompute_s": round(precompute_s, 3),
        "compile_s": round(compile_s, 3),
        "compiled_lengths": sorted(executables),
        "import_rss_mib": round(import_rss, 1),
        **jax_environment(),
    }
    return _record("alignjax", setting, settings, begins, ends, cpu, step_losses, extra)


def worker_trl(workdir: str, settings: dict, setting: str) -> dict:
    import datasets
    import torch
    import transformers
    import trl

    torch.set_num_threads(settings["threads"])
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    tokenizer = id_tokenizer(settings["vocab"])
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(workdir, "model"), dtype=torch.float32)
    pairs = load_json(workdir, "pairs.json")
    # Text that `tokenizer` reads back as exactly the ids (TRL 1.16 tokenises prompt and prompt + reply itself).
    dataset = datasets.Dataset.from_dict(
        {
            "prompt": [ids_to_text(p["prompt_ids"]) for p in pairs],
            "chosen": [" " + ids_to_text(p["chosen_ids"]) for p in pairs],
            "rejected": [" " + ids_to_text(p["rejected_ids"]) for p in pairs],
        }
    )
    config = trl.DPOConfig(
        output_dir=os.path.join(workdir, "trl_out"),
        max_steps=settings["steps"],
        per_device_train_batch_size=settings["batch"],
        gradient_accumulation_steps=1,
        max_length=settings["max_length"],
        beta=settings["beta"],
        loss_type=["sigmoid"],
        precompute_ref_log_probs=setting == "fastest",
        **trl_matched_arguments(settings["lr"], use_cpu=not torch.cuda.is_available()),
    )
    timed = {"precompute_s": 0.0}

    class DPOTrainer(trl.DPOTrainer):
        def _precompute_ref_logps(self, *args, **kwargs):
            start = time.perf_counter()
            out = super()._precompute_ref_logps(*args, **kwargs)
            timed["precompute_s"] += time.perf_counter() - start
            return out

    timer = trl_step_timer()
    trainer = loss_recording(DPOTrainer)(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer]
    )
    # The trainer's collated ids must be ours (prompt + reply per row, chosen rows then rejected rows).
    first = trainer.data_collator([trainer.train_dataset[i] for i in range(settings["batch"])])
    ours = [p["prompt_ids"] + p[k] for k in ("chosen_ids", "rejected_ids") for p in pairs[: settings["batch"]]]
    theirs = [row[mask.bool()].tolist() for row, mask in zip(first["input_ids"], first["attention_mask"])]
    assert theirs == ours, "TRL's tokenised rows differ from the prepared ids"
    setup_s = time.perf_counter() - t0 - timed["precompute_s"]
    trainer.train()
    step_losses = [float(x) for x in trainer.step_losses]
    extra = {
        "setup_s": round(setup_s, 3),
        "precompute_s": round(timed["precompute_s"], 3),
        "compile_s": 0.0,
        "import_rss_mib": round(import_rss, 1),
        **torch_environment(model, f"trl {trl.__version__}", f"optim {config.optim}"),
    }
    return _record("trl", setting, settings, timer.begins, timer.ends, timer.cpu, step_losses, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="default,fastest", help="comma-separated, from default,fastest")
    parser.add_argument("--frameworks", default="alignjax,trl", help="comma-separated, from alignjax,trl")
    parser.add_argument("--steps", type=int, default=12, help="total steps per framework and setting")
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the steady state")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-prompt", type=int, default=128, help="prompt tokens kept (its last ones)")
    parser.add_argument("--max-length", type=int, default=256, help="prompt + reply tokens per row, at most")
    parser.add_argument("--seq-len", type=int, default=0, help="alignjax's fixed row length (0: the longest row)")
    parser.add_argument(
        "--length-bucket", type=int, default=16,
        help="alignjax cuts each batch to its longest row rounded up to this (data.length_bucket; 0: fixed seq-len)",
    )
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for TRL")
    parser.add_argument("--data", default=DATA, help="HH-RLHF jsonl.gz (chosen / rejected conversations)")
    add_worker_arguments(parser, ROLES)
    args = parser.parse_args()

    if args._worker:
        if args._worker == "prepare":
            saved = argparse.Namespace(**load_json(args._workdir, "args.json"))
            print(json.dumps(prepare(args._workdir, saved)), flush=True)
            return
        settings = load_json(args._workdir, "settings.json")
        framework, setting = args._worker.split(":")
        worker = worker_alignjax if framework == "alignjax" else worker_trl
        print(json.dumps(worker(args._workdir, settings, setting)), flush=True)
        return

    frameworks = [f for f in args.frameworks.split(",") if f]
    settings = [s for s in args.settings.split(",") if s]
    if any(f not in FRAMEWORKS for f in frameworks) or any(s not in SETTINGS for s in settings):
        raise SystemExit(f"unknown framework in {frameworks} or setting in {settings}")
    if not 0 < args.warmup < args.steps:
        raise SystemExit(f"need 0 < --warmup ({args.warmup}) < --steps ({args.steps})")
    with tempfile.TemporaryDirectory(prefix="bench_dpo_") as workdir:
        print(json.dumps(prepare_workdir(__file__, workdir, vars(args))), flush=True)
        roles = [f"{f}:{s}" for s in settings for f in frameworks]
        best = run_alternating(
            __file__, roles, args.repeats, workdir, key=lambda record: (record["framework"], record["setting"])
        )
        for setting in settings:
            if ("alignjax", setting) in best and ("trl", setting) in best:
                ratio = ratio_record(best["alignjax", setting], best["trl", setting])
                print(json.dumps({**ratio, "of": f"best of {args.repeats}"}), flush=True)


if __name__ == "__main__":
    main()
