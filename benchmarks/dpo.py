"""DPO training throughput of alignjax against TRL's `DPOTrainer`: same weights, same pairs, same batches, one run.

The benchmark builds the *25m* `transformers` LlamaForCausalLM from a fixed torch seed (`harness.LLAMAS`) and
the preference pairs of HH-RLHF (harmless-base, test split): each conversation is split into the prompt (up to its
last "Assistant:" turn, the part both responses share) and the chosen and rejected replies, tokenised with a byte-
level BPE of the model's vocabulary size (8,000) trained on those texts, the prompt cut to its last
`--max-prompt` tokens and each reply to what fits in `--max-length` with the prompt, ending in <eos>. Both
frameworks then train on exactly these ids, in the same order, `--batch-size` pairs per step, each in a fresh
subprocess:

  alignjax: `alignjax.models.from_pretrained` + the real jitted train step (`alignjax.train.step.jit_train_step`)
            with `losses.objective("dpo")`, beta 0.1, on [B, 2, L] batches of `preference_eval_batches`, each cut
            to its longest row rounded up to `--length-bucket` tokens (`data.length_bucket`; one compiled program
            per bucket, compiled before the timed steps), or padded to one fixed L with `--length-bucket 0`;
  trl:      `trl.DPOTrainer` on a dataset of prompt / chosen / rejected text that its tokenizer maps back to the
            same ids one word per id (`peers.id_tokenizer`); it pads each batch to its longest row.

Two settings each:
  default: the reference model runs in every step (alignjax's default; TRL's: a second copy of the model);
  fastest: the reference's log-probs precomputed in one pass before training (alignjax `reference.precompute=True`
           through `ReferenceTables`; TRL `precompute_ref_log_probs=True`, its one documented DPO speed-up that
           works here: `padding_free` is "temporarily unavailable" in TRL 1.16 and falls back to padding, and
           Liger kernels are Triton / GPU only and deprecated). The pass is timed as `precompute_s`, outside the
           steady state.

Both use AdamW (same lr, betas (0.9, 0.95), eps 1e-8, no weight decay, constant schedule, no warmup), global-norm
clipping at 1.0, float32, no rematerialisation / gradient checkpointing (TRL's config defaults to gradient
checkpointing and bf16; both are turned off, as in `benchmarks.sft`), and DPO's sigmoid loss with beta 0.1 averaged
over pairs. The first-step losses must agree (policy == reference, so both are log 2 = 0.693147), and so should
the last, which checks that both did the same work.

tokens/s counts the real (non-padding) tokens of both rows of every pair, prompt included, per second of wall time
from the end of the last warmup step to the end of the last step; steps/s is over the same time. The padding each
framework computed on is reported as `padding_fraction`: alignjax's fixed L against TRL's longest-in-batch.
`step_ms_median`, `cpu_util_cores`, `peak_rss_mib` are as in `benchmarks.sft`.

    pip install trl   # the peer; not a dependency of alignjax
    python -m benchmarks.dpo --repeats 2
    python -m benchmarks.dpo --settings default --steps 8 --warmup 2

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import gzip
import json
import os
import time
import types

import numpy as np

from benchmarks import alignjax_side, harness, peers
from benchmarks.harness import LLAMAS, load_json, pick, save_json

# The HH-RLHF file of the workspace's shared data, next to the repository.
DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "hh_rlhf_harmless_base_test.jsonl.gz"
)
MODELS = {"25m": LLAMAS["25m"]}
SETTINGS = ("default", "fastest")
TURN = "\n\nAssistant:"
REPLIES = ("chosen_ids", "rejected_ids")


def add_arguments(parser) -> None:
    parser.add_argument("--settings", default="default,fastest", help="comma-separated, from default,fastest")
    harness.add_training_arguments(parser, "--steps", 12, "total steps per framework and setting", warmup=3, lr=1e-4)
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--max-prompt", type=int, default=128, help="prompt tokens kept (its last ones)")
    parser.add_argument("--max-length", type=int, default=256, help="prompt + reply tokens per row, at most")
    parser.add_argument("--seq-len", type=int, default=0, help="alignjax's fixed row length (0: the longest row)")
    parser.add_argument(
        "--length-bucket",
        type=int,
        default=16,
        help="alignjax cuts each batch to its longest row rounded up to this (data.length_bucket; 0: fixed seq-len)",
    )
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--data", default=DATA, help="HH-RLHF jsonl.gz (chosen / rejected conversations)")


def settings_of(args) -> list[str]:
    """The settings `--settings` names: each framework runs once in each."""
    return [s for s in args.settings.split(",") if s]


def check(args) -> None:
    if any(s not in SETTINGS for s in settings_of(args)):
        raise SystemExit(f"unknown setting in {settings_of(args)}; choose from {SETTINGS}")
    harness.require_warmup(args.warmup, args.steps)


# ---------------------------------------------------------------------------------------------------------------
# Prepare: the shared weights and pairs.


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


def _bpe(texts: list[str], vocab_size: int):
    """A byte-level BPE of `vocab_size` trained on `texts`; ids 0 and 1 are <pad> and <eos>."""
    import tokenizers

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    assert (tok.token_to_id("<pad>"), tok.token_to_id("<eos>")) == (0, 1)
    return tok


def _tokenized_pairs(args, vocab_size: int) -> list[dict]:
    """The first steps x batch pairs of `args.data`, as ids: the prompt's last `max_prompt`, each reply cut to
    what fits in `max_length` with the prompt and its <eos>."""
    with gzip.open(args.data, "rt") as f:
        triples = [split_pair(**json.loads(line)) for line in f]
    tok = _bpe([text for triple in triples for text in triple], vocab_size)
    pairs = []
    for prompt, chosen, rejected in triples[: args.steps * args.batch_size]:
        prompt_ids = tok.encode(prompt).ids[-args.max_prompt :]  # keep the end: the turn being answered
        room = args.max_length - len(prompt_ids) - 1  # the rest, less the <eos>
        pair = {"prompt_ids": prompt_ids}
        for name, text in zip(REPLIES, (chosen, rejected)):
            pair[name] = tok.encode(text).ids[:room] + [1]
        pairs.append(pair)
    return pairs


def _token_counts(rows: list[int], pairs_per_step: int, seq_len: int, bucket: int) -> dict:
    """Per step: the real tokens, and the tokens each framework computes on (TRL pads to the longest row of the
    batch, alignjax to that rounded up to `bucket`, or to `seq_len` without one)."""
    b2 = 2 * pairs_per_step
    steps = [rows[i : i + b2] for i in range(0, len(rows), b2)]
    ours = [b2 * (min(seq_len, -(-max(step) // bucket) * bucket) if bucket else seq_len) for step in steps]
    return {
        "tokens_per_step": [sum(step) for step in steps],
        "padded_tokens_per_step": {"alignjax": ours, "trl": [b2 * max(step) for step in steps]},
    }


def prepare(workdir: str, args) -> dict:
    """Writes the model (HF format) and the pairs' token ids into `workdir`; returns the run's settings."""
    spec = MODELS[args.model]
    pairs = _tokenized_pairs(args, spec["vocab"])
    save_json(workdir, "pairs.json", pairs)
    model = peers.save_llama(os.path.join(workdir, "model"), spec, max_positions=2048)
    rows = [len(p["prompt_ids"]) + len(p[k]) for p in pairs for k in REPLIES]
    longest = max(rows)
    seq_len = args.seq_len or longest
    if seq_len < longest:
        raise SystemExit(f"--seq-len {seq_len} is shorter than the longest row ({longest})")
    return dict(
        model=args.model,
        vocab=spec["vocab"],
        n_params=peers.n_params(model),
        data=os.path.basename(args.data),
        pairs=len(pairs),
        batch=args.batch_size,
        **pick(args, "max_prompt", "max_length"),
        seq_len=seq_len,
        length_bucket=args.length_bucket,
        **pick(args, "steps", "warmup", "lr", "beta", "threads"),
        **_token_counts(rows, args.batch_size, seq_len, args.length_bucket),
        row_tokens={
            "mean": round(float(np.mean(rows)), 1),
            "median": float(np.median(rows)),
            "max": longest,
            "prompt_mean": round(float(np.mean([len(p["prompt_ids"]) for p in pairs])), 1),
        },
    )


def ratio(ours: dict, theirs: dict, workdir: str) -> dict:
    return {
        **harness.ratios(ours, theirs, steps_per_s_ratio="steps_per_s", **harness.STEP_RATIOS),
        **harness.loss_agreement(ours, theirs, tolerance=1e-4),
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each trains the saved model on the saved pairs and reports one record.


def _record(framework: str, setting: str, settings: dict, clock, losses, extra: dict) -> dict:
    w = settings["warmup"]
    padded = settings["padded_tokens_per_step"][framework]
    real = settings["tokens_per_step"]
    if framework == "trl":
        seq_len = "longest in batch"
    elif settings["length_bucket"]:
        seq_len = f"longest in batch, rounded up to {settings['length_bucket']}"
    else:
        seq_len = settings["seq_len"]
    return {
        **harness.record_head(framework, settings),
        "setting": setting,
        "batch_pairs": settings["batch"],
        "seq_len": seq_len,
        "n_params": settings["n_params"],
        **clock.steady_state(w, real),
        "padding_fraction": round(1.0 - sum(real[w:]) / sum(padded[w:]), 3),
        **extra,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }


def _examples(pairs: list[dict]):
    """The pairs as alignjax's `PreferenceTokens`: the chosen reply first, scored 1 against 0."""
    from alignjax.data import PreferenceTokens

    def ids(xs):
        return np.asarray(xs, np.int32)

    return [PreferenceTokens(ids(p["prompt_ids"]), tuple(ids(p[k]) for k in REPLIES), (1.0, 0.0)) for p in pairs]


def _precompute_reference(trainee, ref_params, examples, settings: dict):
    """`ReferenceTables` over the examples, as a run with `reference.precompute=True` builds them before training
    (its data iterator, here in order); and the seconds it took."""
    from alignjax.data import preference_layout
    from alignjax.train.reference import ReferenceTables

    t0 = time.perf_counter()
    train_iter = types.SimpleNamespace(
        examples=examples,
        seq_len=settings["seq_len"],
        batch_size=settings["batch"],
        pad_id=0,
        layout=preference_layout(examples),
        length_bucket=settings["length_bucket"],
    )
    tables = ReferenceTables.compute(trainee.graphdef, ref_params, train_iter, [], trainee.mesh)
    return tables, time.perf_counter() - t0


def _compile_per_length(step_fn, state, batches, put, ref_params):
    """One executable per batch length (bucketed), compiled ahead of the timed steps, as a real run compiles each
    once; returns a step that runs the batch's own, the seconds compiling took, and the lengths."""
    t0 = time.perf_counter()
    executables = {}
    for batch in batches:
        length = batch["tokens"].shape[-1]
        if length not in executables:
            executables[length] = step_fn.lower(state, put(batch), ref_params).compile()
    compile_s = time.perf_counter() - t0

    def run_step(state, batch, ref_params):
        return executables[batch["tokens"].shape[-1]](state, batch, ref_params)

    return run_step, compile_s, sorted(executables)


def worker_alignjax(workdir: str, settings: dict, setting: str) -> dict:
    setup = alignjax_side.start(
        *alignjax_side.TRAINING_MODULES, "alignjax.data", "alignjax.losses", "alignjax.train.build",
        "alignjax.train.reference",
    )
    import jax
    from flax import nnx

    from alignjax import losses, sharding
    from alignjax.data import preference_eval_batches, trim_to_bucket
    from alignjax.train.build import reference_params
    from alignjax.train.step import jit_train_step
    from alignjax.train.trainee import Trainee

    mesh, model = alignjax_side.load_model(workdir)
    config = alignjax_side.matched_config(settings["lr"])
    config.reference.precompute = setting == "fastest"
    ref_params = reference_params(config, nnx.state(model), mesh)  # before the trainee takes over the params
    trainee = Trainee.create(model, config.optim, settings["steps"], seed=0, mesh=mesh)
    del model
    examples = _examples(load_json(workdir, "pairs.json"))
    # In order, as the eval batches are (a training BatchIterator shuffles); exactly `steps` full batches.
    batches = preference_eval_batches(examples, seq_len=settings["seq_len"], batch_size=settings["batch"])
    assert len(batches) == settings["steps"] and all((b["example_index"] >= 0).all() for b in batches)
    objective = losses.objective("dpo")
    loss_fn = losses.bind(losses.loss_config("dpo", beta=settings["beta"]))
    jax.block_until_ready((trainee.state, ref_params))
    setup.done()

    ref_shardings, precompute_s = trainee.shardings.params, 0.0
    if config.reference.precompute:
        tables, precompute_s = _precompute_reference(trainee, ref_params, examples, settings)
        batches = [tables.attach(b, "train") for b in batches]
        ref_params = ref_shardings = None  # the reference's memory is freed for the run, as in `loop.train`
    step_fn = jit_train_step(
        trainee.graphdef, objective, loss_fn, trainee.optimizer, trainee.schedule, 1, trainee.shardings, mesh,
        ref_shardings,
    )
    batches = [trim_to_bucket(b, settings["length_bucket"]) for b in batches]

    def put(batch):
        return sharding.put_batch(batch, mesh)

    run_step, compile_s, lengths = _compile_per_length(step_fn, trainee.state, batches, put, ref_params)

    trainee.state, clock, step_losses = alignjax_side.run_steps(run_step, trainee.state, batches, put, ref_params)
    extra = {
        **setup.fields(),
        "precompute_s": round(precompute_s, 3),
        "compile_s": round(compile_s, 3),
        "compiled_lengths": lengths,
        **alignjax_side.environment(),
    }
    return _record("alignjax", setting, settings, clock, step_losses, extra)


def _text_dataset(pairs: list[dict]):
    """The pairs as the text TRL tokenises itself (TRL 1.16 tokenises the prompt, and prompt + reply), which
    `peers.id_tokenizer` reads back as exactly the ids."""
    import datasets

    return datasets.Dataset.from_dict(
        {
            "prompt": [peers.ids_to_text(p["prompt_ids"]) for p in pairs],
            "chosen": [" " + peers.ids_to_text(p["chosen_ids"]) for p in pairs],
            "rejected": [" " + peers.ids_to_text(p["rejected_ids"]) for p in pairs],
        }
    )


def _precompute_timed(timed: dict):
    """`trl.DPOTrainer` adding the seconds of its reference pass to `timed["precompute_s"]`."""
    import trl

    class DPOTrainer(trl.DPOTrainer):
        def _precompute_ref_logps(self, *args, **kwargs):
            start = time.perf_counter()
            out = super()._precompute_ref_logps(*args, **kwargs)
            timed["precompute_s"] += time.perf_counter() - start
            return out

    return DPOTrainer


def _check_collated(trainer, pairs: list[dict], batch: int) -> None:
    """The trainer's collated ids must be ours (prompt + reply per row, chosen rows then rejected rows)."""
    first = trainer.data_collator([trainer.train_dataset[i] for i in range(batch)])
    ours = [p["prompt_ids"] + p[k] for k in REPLIES for p in pairs[:batch]]
    theirs = [row[mask.bool()].tolist() for row, mask in zip(first["input_ids"], first["attention_mask"])]
    assert theirs == ours, "TRL's tokenised rows differ from the prepared ids"


def worker_trl(workdir: str, settings: dict, setting: str) -> dict:
    setup = peers.start_trl(settings["threads"])
    import trl

    tokenizer = peers.id_tokenizer(settings["vocab"])
    model = peers.load_model(workdir)
    pairs = load_json(workdir, "pairs.json")
    timed = {"precompute_s": 0.0}
    trainer, clock = peers.trl_trainer(
        _precompute_timed(timed),
        trl.DPOConfig,
        workdir,
        settings["lr"],
        {
            "max_steps": settings["steps"],
            "per_device_train_batch_size": settings["batch"],
            "max_length": settings["max_length"],
            "beta": settings["beta"],
            "loss_type": ["sigmoid"],
            "precompute_ref_log_probs": setting == "fastest",
        },
        model=model,
        train_dataset=_text_dataset(pairs),
        processing_class=tokenizer,
    )
    _check_collated(trainer, pairs, settings["batch"])
    setup.done(less=timed["precompute_s"])
    trainer.train()
    extra = {
        **setup.fields(),
        "precompute_s": round(timed["precompute_s"], 3),
        "compile_s": 0.0,
        **peers.trl_environment(trainer),
    }
    return _record("trl", setting, settings, clock, trainer.losses(), extra)


BENCHMARK = harness.Benchmark.of(
    globals(),
    peer="trl",
    default_models=None,  # no --models: the 25m model, whose vocabulary the pairs' tokenizer is trained for
    group=("setting",),
    variants=settings_of,
    unprinted_settings=("tokens_per_step", "padded_tokens_per_step"),
)

if __name__ == "__main__":
    harness.main(BENCHMARK)
