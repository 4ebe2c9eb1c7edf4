"""One on-policy GRPO iteration (generate, score, update) of alignjax against TRL's `GRPOTrainer`: same weights,
same prompts, same k and lengths, one run.

For each model the script builds a `transformers` LlamaForCausalLM from a fixed torch seed (`bench_common.LLAMAS`),
saves it to a temporary directory with random prompts (numpy seed 1234, token ids in [2, vocab), every prompt
`--prompt-len` tokens, no padding, `--prompts` distinct prompts per iteration in a fixed order), and runs each
framework in a fresh subprocess (see `bench_common`) for `--iterations` iterations:

  alignjax: the pieces of `alignjax.rl.loop.train_rl` for GRPO, built from `base_config()` + `rl_section("grpo")`:
            `RolloutWorker.collect` (the jitted KV-cache sampler, k samples per prompt sharing one prefill, the
            reward, the reference's log-probs in one jitted forward) then `Updater` (the group-normalised
            advantages and one jitted clipped-surrogate step with the k3 KL term in the loss);
  trl:      `trl.GRPOTrainer` (`transformers` `generate` with its dynamic KV cache, the reference model's forward,
            the reward, the advantages, then the policy's forward + backward and AdamW), one optimizer step per
            iteration.

Both do the same GRPO iteration: `--prompts` x k answers of exactly `--new-tokens` tokens sampled at temperature 1
from the plain softmax (no top-k / top-p), rewards normalised within each prompt's group by its std (`scale_rewards`
"group", std + 1e-4), the clipped surrogate with eps 0.2 plus beta 0.04 x the k3 KL to the frozen reference
(without TRL's default importance-ratio factor on the KL, `use_bias_correction_kl=False`, which alignjax does not
apply), averaged over all answer tokens of the iteration ("dapo"; with equal lengths every TRL loss type agrees),
one epoch of one mini-batch: a single optimizer step on all prompts x k answers (TRL: per-device batch = generation
batch = prompts x k, no accumulation, `num_iterations` 1, so it reuses the sampled tokens' log-probs as the old ones
without an extra forward, as alignjax reuses the sampler's). AdamW as in `bench_common.trl_matched_arguments`,
float32, no gradient checkpointing, TRL on its default `sdpa` attention with its fused LM head.

Neither stops early, so both generate exactly prompts x k x `--new-tokens` tokens per iteration (checked: every
record carries the mean answer length): alignjax's rollout worker gets the tokenizer without its EOS token (its
sampler then has no stop token; `missing_eos_penalty` 0, so the reward is unchanged), TRL gets
`generation_kwargs={"min_new_tokens": new_tokens}` (so `generate` masks EOS, id 1, out of the sampling softmax; the
one logit of ~`vocab` is the only difference in what is sampled). The reward is the same Python function on both
sides, `even_share`: the share of an answer's decoded words (`bench_common.id_tokenizer` text, special tokens
removed) that are even token ids, a cheap deterministic reward that varies within a group, so the advantages are
not all zero.

An iteration is timed whole: alignjax from `collect` to the update's new state being ready (its generate and score
seconds from `collect`, the update is the rest, batch building included); TRL from `on_step_begin` to
`on_step_end` (it generates inside `training_step`; its generate seconds are `_generate`, decoding included, its
score seconds the rest of `_generate_and_score_completions`: reference forward, rewards, advantages). The steady
state leaves out the first `--warmup` iterations (alignjax compiles the sampler, the reference forward and the step
in its first one, `first_step_s`); `steps_per_s` is iterations per second of wall time from the end of the last
warmup iteration to the end of the last one, `tokens_per_s` the generated tokens in that time, `step_ms_median` the
median iteration. `cpu_util_cores` and `loadavg_1m` tell whether the run competed for the CPU; `--repeats`
alternates the frameworks and the ratio line uses each one's best run.

    pip install trl   # the peer; not a dependency of alignjax
    python scripts/bench_rl.py                                                   # both models, their defaults
    python scripts/bench_rl.py --models tiny --repeats 2
    python scripts/bench_rl.py --models 25m --prompts 8 --k 4 --new-tokens 32 --repeats 2

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
    cpu_s,
    id_tokenizer,
    ids_to_text,
    jax_environment,
    load_json,
    loss_recording,
    peak_rss_mib,
    prepare_workdir,
    run_alternating,
    save_json,
    save_llama,
    steady_state,
    torch_environment,
    trl_matched_arguments,
    trl_step_timer,
)

# The model shapes (`bench_common.LLAMAS`) with each one's default iteration: prompts per iteration and iterations.
MODELS = {
    "tiny": dict(LLAMAS["tiny"], prompts=32, iterations=20),
    "25m": dict(LLAMAS["25m"], prompts=8, iterations=8),
}
FRAMEWORKS = ("alignjax", "trl")
REWARD = "bench_even_share"  # the name `even_share` is registered under on the alignjax side
CLIP_EPS, BETA = 0.2, 0.04  # GRPO's clipping range and KL coefficient (the paper's; alignjax's defaults, TRL's beta is 0)


def even_share(answer: str) -> float:
    """The share of `answer`'s words that are even token ids (`ids_to_text` words "t<id>"; 0 without words)."""
    words = answer.split()
    return sum(int(w[1:]) % 2 == 0 for w in words) / len(words) if words else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Parent: the shared weights and prompts, the workers, the ratio.


def prepare(workdir: str, name: str, spec: dict, args) -> dict:
    """Writes the model (HF format), the prompts and the run's settings into `workdir`; returns the settings."""
    prompts, iterations = args.prompts or spec["prompts"], args.iterations or spec["iterations"]
    if not 0 < args.warmup < iterations:
        raise SystemExit(f"need 0 < --warmup ({args.warmup}) < --iterations ({iterations})")
    max_positions = max(args.prompt_len + args.new_tokens, 2048)
    model = save_llama(os.path.join(workdir, "model"), spec, max_positions)
    vocab = model.config.vocab_size
    # One distinct set of prompts per iteration, in order, for both frameworks: [iterations * prompts, prompt_len].
    prompts_NP = np.random.default_rng(DATA_SEED).integers(
        2, vocab, size=(iterations * prompts, args.prompt_len), dtype=np.int32
    )
    np.save(os.path.join(workdir, "prompts.npy"), prompts_NP)
    settings = dict(
        model=name,
        vocab=vocab,
        n_params=sum(p.numel() for p in model.parameters()),
        prompts=prompts,
        k=args.k,
        prompt_len=args.prompt_len,
        new_tokens=args.new_tokens,
        iterations=iterations,
        warmup=args.warmup,
        lr=args.lr,
        threads=args.threads,
    )
    save_json(workdir, "settings.json", settings)
    return settings


def ratio_record(ours: dict, theirs: dict) -> dict:
    """alignjax / TRL; `same_work`: both generated every answer to its full length, as many answers."""
    full = ours["new_tokens"]
    lengths = (ours["answer_tokens_mean"], theirs["answer_tokens_mean"])
    return {
        "model": ours["model"],
        "ratio": "alignjax/trl",
        "iterations_per_s_ratio": round(ours["steps_per_s"] / theirs["steps_per_s"], 3),
        "tokens_per_s_ratio": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 3),
        "step_ms_ratio": round(ours["step_ms_median"] / theirs["step_ms_median"], 3),
        "peak_rss_ratio": round(ours["peak_rss_mib"] / theirs["peak_rss_mib"], 3),
        # Cores each best run kept busy: a ratio is only worth quoting when both are near the core count (torch's
        # threads collapse when another process holds a core, XLA's much less: a lopsided, flattering ratio).
        "cpu_util_cores": [ours["cpu_util_cores"], theirs["cpu_util_cores"]],
        "same_work": ours["answers"] == theirs["answers"] and lengths == (full, full),
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each runs the iterations on the saved model and prompts and reports one record.


def _record(framework: str, settings: dict, begins, ends, cpu, parts: dict, extra: dict) -> dict:
    """The record from per-iteration begin/end timestamps, CPU seconds at each end, and per-iteration lists in
    `parts`: `generate_s`, `score_s` (seconds), `answer_tokens` (mean answer length), `reward` (mean), `loss`."""
    w = settings["warmup"]
    answers = settings["prompts"] * settings["k"]
    generated = [answers * settings["new_tokens"]] * len(ends)  # checked against answer_tokens_mean
    update_s = [e - b - g - s for b, e, g, s in zip(begins, ends, parts["generate_s"], parts["score_s"])]
    median_ms = lambda xs: round(1e3 * statistics.median(xs[w:]), 1)  # noqa: E731
    return {
        "model": settings["model"],
        "framework": framework,
        "prompts": settings["prompts"],
        "k": settings["k"],
        "answers": answers,
        "prompt_len": settings["prompt_len"],
        "new_tokens": settings["new_tokens"],
        "n_params": settings["n_params"],
        **steady_state(begins, ends, cpu, w, generated),
        "generate_ms_median": median_ms(parts["generate_s"]),
        "score_ms_median": median_ms(parts["score_s"]),
        "update_ms_median": median_ms(update_s),
        "answer_tokens_mean": float(np.mean(parts["answer_tokens"])),
        "reward_mean": round(float(np.mean(parts["reward"])), 4),
        **extra,
        "loss_first": parts["loss"][0],
        "loss_last": parts["loss"][-1],
    }


class _WithoutEos:
    """`tokenizer` with no EOS token: given to the rollout worker, its sampler has no stop token (the sampler takes
    its stop tokens from `tokenizer.eos_token_id`), so every answer runs to `max_new_tokens`. Decoding is the
    tokenizer's own, so "<eos>" and "<pad>" are still dropped from the answers' text, as TRL's decoding does."""

    eos_token_id = None

    def __init__(self, tokenizer):
        self.tokenizer, self.pad_token_id = tokenizer, tokenizer.pad_token_id

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def worker_alignjax(workdir: str, settings: dict) -> dict:
    from alignjax.host_memory import keep_freed_host_memory

    keep_freed_host_memory()  # first, as alignjax's command-line entry points do
    import jax
    from flax import nnx

    from alignjax import sharding
    from alignjax.models import from_pretrained
    from alignjax.rl.config import check_rl_config, rl_section
    from alignjax.rl.prompts import Prompts
    from alignjax.rl.rewards import make_scorer, register_reward
    from alignjax.rl.rollout import RolloutWorker
    from alignjax.rl.updates import Updater
    from alignjax.sampling import SamplingConfig
    from alignjax.train.build import reference_params
    from alignjax.train.defaults import base_config
    from alignjax.train.optimizer import make_optimizer
    from alignjax.train.state import create_train_state, train_state_shardings

    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    B, K, T = settings["prompts"], settings["k"], settings["new_tokens"]
    register_reward(REWARD, lambda prompt, answer: even_share(answer))
    cfg = base_config()
    del cfg["loss"]  # GRPO's objective is in rl.algorithm
    cfg.model.path = os.path.join(workdir, "model")
    cfg.rl = rl_section(
        "grpo",
        prompts_per_iteration=B,
        samples_per_prompt=K,
        max_prompt_len=settings["prompt_len"],  # every prompt is this long: no prompt padding
        max_new_tokens=T,
        missing_eos_penalty=0.0,  # no answer has a stop token to emit
        reward=dict(function=REWARD, model_path=""),
        clip_eps=CLIP_EPS,
        kl_coef=BETA,
        kl_estimator="k3",
        scale_rewards=True,
    )
    cfg.optim.update(lr=settings["lr"], warmup_steps=0, schedule="constant", weight_decay=0.0, clip_norm=1.0)
    cfg.train.steps = settings["iterations"]
    check_rl_config(cfg, 1)
    rl = cfg.rl

    mesh = sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1])
    model = from_pretrained(cfg.model.path, mesh=mesh)
    graphdef, params = nnx.split(model)
    optimizer, schedule = make_optimizer(cfg.optim, cfg.train.steps * rl.epochs * rl.minibatches)
    shardings = train_state_shardings(params, optimizer, mesh)
    state = create_train_state(params, optimizer, seed=0, shardings=shardings)
    ref_params = reference_params(cfg, state.params, mesh)
    worker = RolloutWorker(
        model, ref_params, make_scorer(rl.reward, mesh), _WithoutEos(id_tokenizer(settings["vocab"])), mesh,
        max_prompt_len=rl.max_prompt_len, max_new_tokens=T,
        sampling=SamplingConfig(temperature=rl.temperature, top_k=rl.top_k, top_p=rl.top_p),
        missing_eos_penalty=rl.missing_eos_penalty,
    )
    update = Updater(cfg, graphdef, optimizer, schedule, shardings, mesh)
    del params
    prompts_NP = np.load(os.path.join(workdir, "prompts.npy"))
    iterations = [  # the prompts of each iteration; `values` (what reward functions see) as TRL's text
        Prompts([ids_to_text(row) for row in rows], rows.tolist())
        for rows in np.split(prompts_NP, settings["iterations"])
    ]
    jax.block_until_ready((state, ref_params))
    setup_s = time.perf_counter() - t0

    states = {"policy": state}
    begins, ends, cpu = [], [], []
    parts = {"generate_s": [], "score_s": [], "answer_tokens": [], "reward": [], "loss": []}
    for i, prompts in enumerate(iterations):
        rng = jax.random.fold_in(jax.random.key(cfg.seed), i)
        host_rng = np.random.default_rng([cfg.seed, i])
        begins.append(time.perf_counter())
        rollout, times = worker.collect(states["policy"].params, prompts, rng, K)
        states, metrics = update(states, rollout, BETA, host_rng)  # fetches the step's metrics
        jax.block_until_ready(states)
        ends.append(time.perf_counter())
        cpu.append(cpu_s())
        parts["generate_s"].append(times["generate_seconds"])
        parts["score_s"].append(times["score_seconds"])
        parts["answer_tokens"].append(float(np.mean(rollout.lengths_N)))
        parts["reward"].append(float(np.mean(rollout.rewards_N)))
        parts["loss"].append(metrics["loss"])
    extra = {"setup_s": round(setup_s, 3), "import_rss_mib": round(import_rss, 1), **jax_environment()}
    return _record("alignjax", settings, begins, ends, cpu, parts, extra)


def worker_trl(workdir: str, settings: dict) -> dict:
    import datasets
    import torch
    import transformers
    import trl

    torch.set_num_threads(settings["threads"])
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"
    import_rss = peak_rss_mib()
    t0 = time.perf_counter()
    B, K, T = settings["prompts"], settings["k"], settings["new_tokens"]
    tokenizer = id_tokenizer(settings["vocab"])
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(workdir, "model"), dtype=torch.float32)
    prompts_NP = np.load(os.path.join(workdir, "prompts.npy"))
    dataset = datasets.Dataset.from_dict({"prompt": [ids_to_text(row) for row in prompts_NP]})
    config = trl.GRPOConfig(
        output_dir=os.path.join(workdir, "trl_out"),
        max_steps=settings["iterations"],
        per_device_train_batch_size=B * K,  # counts answers: one optimizer step on one generation batch
        gradient_accumulation_steps=1,
        num_generations=K,
        max_completion_length=T,
        generation_kwargs={"min_new_tokens": T},  # no early stop: exactly T tokens per answer, as alignjax
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=BETA,
        epsilon=CLIP_EPS,
        loss_type="dapo",
        scale_rewards="group",
        num_iterations=1,
        use_bias_correction_kl=False,
        shuffle_dataset=False,  # the prompts in the saved order, as alignjax takes them
        **trl_matched_arguments(settings["lr"], use_cpu=not torch.cuda.is_available()),
    )
    parts = {"generate_s": [], "score_s": [], "answer_tokens": [], "reward": []}

    def reward(completions, **kwargs):
        return [even_share(c) for c in completions]

    class GRPOTrainer(trl.GRPOTrainer):
        """Times generation (`_generate`: tokenising, `generate`, decoding) and the rest of the rollout (reference
        forward, rewards, advantages) of each iteration; keeps the answers' lengths and rewards."""

        def _generate(self, prompts):
            start = time.perf_counter()
            out = super()._generate(prompts)
            parts["generate_s"].append(time.perf_counter() - start)
            parts["answer_tokens"].append(float(np.mean([len(ids) for ids in out[1]])))
            return out

        def _calculate_rewards(self, *args, **kwargs):
            rewards = super()._calculate_rewards(*args, **kwargs)
            parts["reward"].append(float(rewards.mean()))
            return rewards

        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            parts["score_s"].append(time.perf_counter() - start - parts["generate_s"][-1])
            return out

    timer = trl_step_timer()
    trainer = loss_recording(GRPOTrainer)(
        model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer,
        callbacks=[timer],
    )
    # TRL tokenises the prompt text itself: it must read back exactly the prepared ids.
    assert trainer._tokenize_prompts(dataset["prompt"][:B])[0] == prompts_NP[:B].tolist(), "TRL's prompt ids differ"
    setup_s = time.perf_counter() - t0
    trainer.train()
    parts["loss"] = [float(x) for x in trainer.step_losses]
    extra = {
        "setup_s": round(setup_s, 3),
        "import_rss_mib": round(import_rss, 1),
        **torch_environment(model, f"trl {trl.__version__}", f"optim {config.optim}"),
    }
    return _record("trl", settings, timer.begins, timer.ends, timer.cpu, parts, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,25m", help=f"comma-separated, from {sorted(MODELS)}")
    parser.add_argument("--frameworks", default="alignjax,trl", help="comma-separated, from alignjax,trl")
    parser.add_argument("--prompts", type=int, default=0, help="prompts per iteration (0: the model's default)")
    parser.add_argument("--k", type=int, default=4, help="answers sampled per prompt (GRPO's group)")
    parser.add_argument("--prompt-len", type=int, default=32, help="tokens per prompt")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens per answer (neither stops early)")
    parser.add_argument("--iterations", type=int, default=0, help="iterations per framework (0: the model's default)")
    parser.add_argument("--warmup", type=int, default=2, help="first iterations left out of the steady state")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for TRL")
    add_worker_arguments(parser, FRAMEWORKS)
    args = parser.parse_args()

    if args._worker:
        if args._worker == "prepare":
            saved = argparse.Namespace(**load_json(args._workdir, "args.json"))
            print(json.dumps(prepare(args._workdir, saved.model, MODELS[saved.model], saved)), flush=True)
            return
        worker = worker_alignjax if args._worker == "alignjax" else worker_trl
        print(json.dumps(worker(args._workdir, load_json(args._workdir, "settings.json"))), flush=True)
        return

    frameworks = [f for f in args.frameworks.split(",") if f]
    if any(f not in FRAMEWORKS for f in frameworks):
        raise SystemExit(f"unknown framework in {frameworks}; choose from {FRAMEWORKS}")
    if args.k < 2 or min(args.prompt_len, args.new_tokens) < 1:
        raise SystemExit("need --k >= 2 (GRPO compares answers within a group), --prompt-len and --new-tokens >= 1")
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}; choose from {sorted(MODELS)}")
        with tempfile.TemporaryDirectory(prefix=f"bench_rl_{name}_") as workdir:
            print(json.dumps(prepare_workdir(__file__, workdir, dict(vars(args), model=name))), flush=True)
            best = run_alternating(__file__, frameworks, args.repeats, workdir, key=lambda record: record["framework"])
            if len(best) == 2:
                print(json.dumps({**ratio_record(best["alignjax"], best["trl"]), "of": f"best of {args.repeats}"}))


if __name__ == "__main__":
    main()
