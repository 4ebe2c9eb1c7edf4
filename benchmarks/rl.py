"""One on-policy GRPO iteration (generate, score, update) of alignjax against TRL's `GRPOTrainer`: same weights,
same prompts, same k and lengths, one run.

For each model the benchmark builds a `transformers` LlamaForCausalLM from a fixed torch seed (`harness.LLAMAS`),
saves it to a temporary directory with random prompts (numpy seed 1234, token ids in [2, vocab), every prompt
`--prompt-len` tokens, no padding, `--prompts` distinct prompts per iteration in a fixed order), and runs each
framework in a fresh subprocess (see `benchmarks.harness`) for `--iterations` iterations:

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
without an extra forward, as alignjax reuses the sampler's). AdamW as in `peers.trl_matched_arguments`,
float32, no gradient checkpointing, TRL on its default `sdpa` attention with its fused LM head.

Neither stops early, so both generate exactly prompts x k x `--new-tokens` tokens per iteration (checked: every
record carries the mean answer length): alignjax's rollout worker gets the tokenizer without its EOS token (its
sampler then has no stop token; `missing_eos_penalty` 0, so the reward is unchanged), TRL gets
`generation_kwargs={"min_new_tokens": new_tokens}` (so `generate` masks EOS, id 1, out of the sampling softmax; the
one logit of ~`vocab` is the only difference in what is sampled). The reward is the same Python function on both
sides, `even_share`: the share of an answer's decoded words (`peers.id_tokenizer` text, special tokens
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
    python -m benchmarks.rl                                                      # both models, their defaults
    python -m benchmarks.rl --models tiny --repeats 2
    python -m benchmarks.rl --models 25m --prompts 8 --k 4 --new-tokens 32 --repeats 2

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from benchmarks import alignjax_side, harness, peers
from benchmarks.harness import DATA_SEED, LLAMAS, StepClock, pick

# The model shapes (`harness.LLAMAS`) with each one's default iteration: prompts per iteration and iterations.
MODELS = {
    "tiny": dict(LLAMAS["tiny"], prompts=32, iterations=20),
    "25m": dict(LLAMAS["25m"], prompts=8, iterations=8),
}
REWARD = "bench_even_share"  # the name `even_share` is registered under on the alignjax side
# GRPO's clipping range and KL coefficient (the paper's; alignjax's defaults; TRL's default beta is 0)
CLIP_EPS, BETA = 0.2, 0.04


def even_share(answer: str) -> float:
    """The share of `answer`'s words that are even token ids (`ids_to_text` words "t<id>"; 0 without words)."""
    words = answer.split()
    return sum(int(w[1:]) % 2 == 0 for w in words) / len(words) if words else 0.0


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=0, help="prompts per iteration (0: the model's default)")
    parser.add_argument("--k", type=int, default=4, help="answers sampled per prompt (GRPO's group)")
    parser.add_argument("--prompt-len", type=int, default=32, help="tokens per prompt")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens per answer (neither stops early)")
    harness.add_training_arguments(
        parser, "--iterations", 0, "iterations per framework (0: the model's default)", warmup=2, lr=1e-5
    )


def check(args) -> None:
    if args.k < 2 or min(args.prompt_len, args.new_tokens) < 1:
        raise SystemExit("need --k >= 2 (GRPO compares answers within a group), --prompt-len and --new-tokens >= 1")
    for name in args.models.split(","):
        harness.require_warmup(args.warmup, args.iterations or MODELS[name]["iterations"], "--iterations")


# ---------------------------------------------------------------------------------------------------------------
# Prepare: the shared weights and prompts.


def prepare(workdir: str, args) -> dict:
    """Writes the model (HF format) and the prompts into `workdir`; returns the run's settings."""
    spec = MODELS[args.model]
    prompts, iterations = args.prompts or spec["prompts"], args.iterations or spec["iterations"]
    max_positions = max(args.prompt_len + args.new_tokens, 2048)
    model = peers.save_llama(os.path.join(workdir, "model"), spec, max_positions)
    vocab = model.config.vocab_size
    # One distinct set of prompts per iteration, in order, for both frameworks: [iterations * prompts, prompt_len].
    prompts_NP = np.random.default_rng(DATA_SEED).integers(
        2, vocab, size=(iterations * prompts, args.prompt_len), dtype=np.int32
    )
    np.save(os.path.join(workdir, "prompts.npy"), prompts_NP)
    return dict(
        model=args.model,
        vocab=vocab,
        n_params=peers.n_params(model),
        prompts=prompts,
        **pick(args, "k", "prompt_len", "new_tokens"),
        iterations=iterations,
        **pick(args, "warmup", "lr", "threads"),
    )


def ratio(ours: dict, theirs: dict, workdir: str) -> dict:
    """`same_work`: both generated every answer to its full length, as many answers."""
    full = ours["new_tokens"]
    lengths = (ours["answer_tokens_mean"], theirs["answer_tokens_mean"])
    return {
        **harness.ratios(ours, theirs, iterations_per_s_ratio="steps_per_s", **harness.STEP_RATIOS),
        # Cores each best run kept busy: a ratio is only worth quoting when both are near the core count (torch's
        # threads collapse when another process holds a core, XLA's much less: a lopsided, flattering ratio).
        "cpu_util_cores": [ours["cpu_util_cores"], theirs["cpu_util_cores"]],
        "same_work": ours["answers"] == theirs["answers"] and lengths == (full, full),
    }


# ---------------------------------------------------------------------------------------------------------------
# Workers: each runs the iterations on the saved model and prompts and reports one record.


def _parts() -> dict[str, list]:
    """What a worker keeps of each iteration: `generate_s`, `score_s` (seconds), `answer_tokens` (mean answer
    length), `reward` (mean), `loss`."""
    return {"generate_s": [], "score_s": [], "answer_tokens": [], "reward": [], "loss": []}


def _record(framework: str, settings: dict, clock: StepClock, parts: dict, extra: dict) -> dict:
    """The record from the iterations' clock and their `_parts`."""
    w = settings["warmup"]
    answers = settings["prompts"] * settings["k"]
    generated = [answers * settings["new_tokens"]] * len(clock.ends)  # checked against answer_tokens_mean
    update_s = [e - b - g - s for b, e, g, s in zip(clock.begins, clock.ends, parts["generate_s"], parts["score_s"])]

    def median_ms(xs):
        return round(1e3 * statistics.median(xs[w:]), 1)

    return {
        **harness.record_head(framework, settings, "prompts", "k"),
        "answers": answers,
        **pick(settings, "prompt_len", "new_tokens", "n_params"),
        **clock.steady_state(w, generated),
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


def _grpo_config(workdir: str, settings: dict):
    """The experiment config of alignjax's GRPO doing what TRL's does (the module's docstring)."""
    from alignjax.rl.config import check_rl_config, rl_section
    from alignjax.rl.rewards import register_reward

    register_reward(REWARD, lambda prompt, answer: even_share(answer))
    config = alignjax_side.matched_config(settings["lr"])
    del config["loss"]  # GRPO's objective is in rl.algorithm
    config.model.path = os.path.join(workdir, "model")
    config.rl = rl_section(
        "grpo",
        prompts_per_iteration=settings["prompts"],
        samples_per_prompt=settings["k"],
        max_prompt_len=settings["prompt_len"],  # every prompt is this long: no prompt padding
        max_new_tokens=settings["new_tokens"],
        missing_eos_penalty=0.0,  # no answer has a stop token to emit
        reward={"function": REWARD, "model_path": ""},
        clip_eps=CLIP_EPS,
        kl_coef=BETA,
        kl_estimator="k3",
        scale_rewards=True,
    )
    config.train.steps = settings["iterations"]
    check_rl_config(config, 1)
    return config


def _rollout_worker(config, model, ref_params, vocab: int, mesh):
    """The rollout worker of `config.rl`, with the id tokenizer that has no EOS token (answers never stop)."""
    from alignjax.rl.rewards import make_scorer
    from alignjax.rl.rollout import RolloutWorker
    from alignjax.sampling import SamplingConfig

    rl = config.rl
    return RolloutWorker(
        model, ref_params, make_scorer(rl.reward, mesh), _WithoutEos(peers.id_tokenizer(vocab)), mesh,
        max_prompt_len=rl.max_prompt_len, max_new_tokens=rl.max_new_tokens,
        sampling=SamplingConfig(temperature=rl.temperature, top_k=rl.top_k, top_p=rl.top_p),
        missing_eos_penalty=rl.missing_eos_penalty,
    )


def _iteration_prompts(workdir: str, iterations: int):
    """The prompts of each iteration; their `values` (what reward functions see) are TRL's text."""
    from alignjax.rl.prompts import Prompts

    prompts_NP = np.load(os.path.join(workdir, "prompts.npy"))
    return [
        Prompts([peers.ids_to_text(row) for row in rows], rows.tolist()) for rows in np.split(prompts_NP, iterations)
    ]


def worker_alignjax(workdir: str, settings: dict) -> dict:
    setup = alignjax_side.start(
        *alignjax_side.TRAINING_MODULES, "alignjax.rl.config", "alignjax.rl.prompts", "alignjax.rl.rewards",
        "alignjax.rl.rollout", "alignjax.rl.updates", "alignjax.sampling", "alignjax.train.build",
    )
    import jax

    from alignjax.rl.updates import Updater
    from alignjax.train.build import reference_params
    from alignjax.train.trainee import Trainee

    config = _grpo_config(workdir, settings)
    rl = config.rl
    mesh, model = alignjax_side.load_model(workdir)
    policy = Trainee.create(model, config.optim, config.train.steps * rl.epochs * rl.minibatches, seed=0, mesh=mesh)
    ref_params = reference_params(config, policy.state.params, mesh)
    rollouts = _rollout_worker(config, model, ref_params, settings["vocab"], mesh)
    update = Updater(config, policy)
    iterations = _iteration_prompts(workdir, settings["iterations"])
    jax.block_until_ready((policy.state, ref_params))
    setup.done()

    states, clock, parts = {"policy": policy.state}, StepClock(), _parts()
    for i, prompts in enumerate(iterations):
        rng = jax.random.fold_in(jax.random.key(config.seed), i)
        host_rng = np.random.default_rng([config.seed, i])
        clock.begin()
        rollout, times = rollouts.collect(states["policy"].params, prompts, rng, rl.samples_per_prompt)
        states, metrics = update(states, rollout, BETA, host_rng)  # fetches the step's metrics
        jax.block_until_ready(states)
        clock.end()
        parts["generate_s"].append(times["generate_seconds"])
        parts["score_s"].append(times["score_seconds"])
        parts["answer_tokens"].append(float(np.mean(rollout.lengths_N)))
        parts["reward"].append(float(np.mean(rollout.rewards_N)))
        parts["loss"].append(metrics["loss"])
    return _record("alignjax", settings, clock, parts, {**setup.fields(), **alignjax_side.environment()})


def _timed_grpo(parts: dict):
    """`trl.GRPOTrainer` timing generation (`_generate`: tokenising, `generate`, decoding) and the rest of the
    rollout (reference forward, rewards, advantages) of each iteration into `parts`, with the answers' lengths and
    rewards."""
    import trl

    class GRPOTrainer(trl.GRPOTrainer):
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

    return GRPOTrainer


def _even_share_rewards(completions, **kwargs) -> list[float]:
    """`even_share` as a TRL reward function."""
    return [even_share(c) for c in completions]


def worker_trl(workdir: str, settings: dict) -> dict:
    setup = peers.start_trl(settings["threads"])
    import datasets
    import trl

    B, K, T = settings["prompts"], settings["k"], settings["new_tokens"]
    tokenizer = peers.id_tokenizer(settings["vocab"])
    model = peers.load_model(workdir)
    prompts_NP = np.load(os.path.join(workdir, "prompts.npy"))
    dataset = datasets.Dataset.from_dict({"prompt": [peers.ids_to_text(row) for row in prompts_NP]})
    parts = _parts()
    trainer, clock = peers.trl_trainer(
        _timed_grpo(parts),
        trl.GRPOConfig,
        workdir,
        settings["lr"],
        {
            "max_steps": settings["iterations"],
            "per_device_train_batch_size": B * K,  # counts answers: one optimizer step on one generation batch
            "num_generations": K,
            "max_completion_length": T,
            "generation_kwargs": {"min_new_tokens": T},  # no early stop: exactly T tokens per answer, as alignjax
            "temperature": 1.0,
            "top_k": 0,
            "top_p": 1.0,
            "beta": BETA,
            "epsilon": CLIP_EPS,
            "loss_type": "dapo",
            "scale_rewards": "group",
            "num_iterations": 1,
            "use_bias_correction_kl": False,
            "shuffle_dataset": False,  # the prompts in the saved order, as alignjax takes them
        },
        model=model,
        reward_funcs=_even_share_rewards,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    # TRL tokenises the prompt text itself: it must read back exactly the prepared ids.
    assert trainer._tokenize_prompts(dataset["prompt"][:B])[0] == prompts_NP[:B].tolist(), "TRL's prompt ids differ"
    setup.done()
    trainer.train()
    parts["loss"] = trainer.losses()
    return _record("trl", settings, clock, parts, {**setup.fields(), **peers.trl_environment(trainer)})


BENCHMARK = harness.Benchmark.of(globals(), peer="trl", default_models="tiny,25m")

if __name__ == "__main__":
    harness.main(BENCHMARK)
