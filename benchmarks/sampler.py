"""Sampling throughput of alignjax's jitted KV-cache sampler against `transformers` `generate`: same weights, same
prompts, same shapes, one run.

On-policy methods spend most of their time sampling, so this is the other number to know besides training
throughput. For each model the benchmark builds a `transformers` LlamaForCausalLM from a fixed torch seed, saves it
to a temporary directory with random prompts (numpy seed 1234, token ids in [2, vocab), every row `--prompt-len`
tokens long, no padding), and runs each framework in a fresh subprocess over every batch size (see
`benchmarks.harness`):

  alignjax:     `alignjax.sampling.generate` on `alignjax.models.from_pretrained` (prefill + a `while_loop` of
                decode steps in one compiled program), `stop_tokens=[]`;
  transformers: `model.generate` (its default dynamic KV cache and attention implementation) under
                `torch.no_grad()`, `eos_token_id=None` and `min_new_tokens=max_new_tokens`.

Both decode greedily (`--mode greedy`) or sample from the plain softmax (`--mode sample`: temperature 1, no top-k /
top-p; transformers' default top-k of 50 is turned off), float32, and emit exactly `--new-tokens` tokens per row:
neither stops early. It prints one JSON line per (framework, batch) and one per batch with the ratio alignjax /
transformers. In greedy mode `rows_identical` is the fraction of rows whose generated tokens are identical in both,
which checks that both did the same work (a row can part ways where two logits tie to within float32 rounding).

tokens/s counts the B * T new tokens of one `generate` call per second of its wall time (prompt in, tokens out as an
array: alignjax's host-side prompt padding and placement included); `tokens_per_s` is the median over `--calls`
calls and `tokens_per_s_best` the fastest, `ms_per_step` the median call over T (so it includes the prefill). Before
the timed calls, alignjax makes one call that compiles the program for the shapes (`first_call_s`, and `compile_s` =
that minus the median call); transformers makes one untimed warm-up call of 8 new tokens. alignjax pads the batch to a
power of two and the prompt to a multiple of its `length_bucket` (here the prompt length itself), so batch sizes that
are not powers of two cost it the padding rows. `peak_rss_mib` is the worker's high-water mark up to that batch (the
batches run in increasing order in one process); `cpu_util_cores` is CPU seconds per wall second over the timed
calls. `--repeats` alternates the frameworks and each ratio uses each framework's best run.

    python -m benchmarks.sampler                                            # 25m, batches 8 and 32, greedy
    python -m benchmarks.sampler --models tiny --batch-sizes 4 --new-tokens 16 --calls 2
    python -m benchmarks.sampler --batch-sizes 1,8,32 --repeats 3 --mode sample

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import numpy as np

from benchmarks import alignjax_side, harness, peers
from benchmarks.harness import DATA_SEED, LLAMAS, cpu_s, pick

MODELS = LLAMAS
MODES = ("greedy", "sample")
WARMUP_NEW_TOKENS = 8  # transformers' untimed warm-up call


def _batch_sizes(text: str) -> list[int]:
    """`--batch-sizes`: comma-separated, deduplicated and sorted (the workers run them in increasing order)."""
    sizes = sorted({int(b) for b in text.split(",") if b})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"need positive batch sizes, got {text!r}")
    return sizes


def add_arguments(parser) -> None:
    parser.add_argument("--batch-sizes", type=_batch_sizes, default="8,32", help="comma-separated rows per call")
    parser.add_argument("--prompt-len", type=int, default=64, help="tokens per prompt")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per row")
    parser.add_argument(
        "--mode", choices=MODES, default="greedy", help="greedy decoding, or sampling at temperature 1 without filters"
    )
    parser.add_argument("--calls", type=int, default=3, help="timed generate calls per batch size and worker")


def check(args) -> None:
    if min(args.prompt_len, args.new_tokens, args.calls) < 1:
        raise SystemExit("need --prompt-len, --new-tokens and --calls >= 1")


# ---------------------------------------------------------------------------------------------------------------
# Prepare: the shared weights and prompts.


def prepare(workdir: str, args) -> dict:
    """Writes the model (HF format) and the prompts into `workdir`; returns the run's settings."""
    max_positions = max(args.prompt_len + args.new_tokens, 2048)
    model = peers.save_llama(os.path.join(workdir, "model"), MODELS[args.model], max_positions)
    vocab = model.config.vocab_size
    # One set of prompts; each batch takes its first rows.
    prompts = np.random.default_rng(DATA_SEED).integers(
        2, vocab, size=(max(args.batch_sizes), args.prompt_len), dtype=np.int32
    )
    np.save(os.path.join(workdir, "prompts.npy"), prompts)
    return dict(
        model=args.model,
        vocab=vocab,
        n_params=peers.n_params(model),
        **pick(args, "batch_sizes", "prompt_len", "new_tokens", "mode", "calls", "threads"),
    )


def _tokens_path(workdir: str, framework: str, batch: int) -> str:
    """Where a worker leaves the tokens its last call generated for `batch` rows: [batch, new_tokens] int32."""
    return os.path.join(workdir, f"{framework}_{batch}.npy")


def ratio(ours: dict, theirs: dict, workdir: str) -> dict:
    """In greedy mode, also how many rows both generated alike."""
    record = harness.ratios(
        ours,
        theirs,
        tokens_per_s_ratio="tokens_per_s",
        tokens_per_s_best_ratio="tokens_per_s_best",
        peak_rss_ratio="peak_rss_mib",
    )
    if ours["mode"] == "greedy":
        same_N = np.all(
            np.load(_tokens_path(workdir, "alignjax", ours["batch"]))
            == np.load(_tokens_path(workdir, "transformers", ours["batch"])),
            axis=1,
        )
        record["rows_identical"] = float(same_N.mean())
    return record


# ---------------------------------------------------------------------------------------------------------------
# Workers: each loads the saved model once and samples every batch size, one record per batch.


def _timed_calls(call, calls: int):
    """Runs `call` (which returns only when its work is done) `calls` times; returns the last result, the seconds of
    each call and the CPU cores kept busy over them all."""
    seconds = []
    cpu0, wall0 = cpu_s(), time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - t0)
    cpu_util = (cpu_s() - cpu0) / (time.perf_counter() - wall0)
    return result, seconds, cpu_util


def _record(framework: str, settings: dict, batch: int, seconds: list[float], cpu_util: float, extra: dict) -> dict:
    """One (framework, batch) record from the seconds of each timed call."""
    new_tokens = batch * settings["new_tokens"]
    median_s = statistics.median(seconds)
    return {
        **harness.record_head(framework, settings),
        "batch": batch,
        **pick(settings, "prompt_len", "new_tokens", "mode", "n_params"),
        "calls": len(seconds),
        "tokens_per_s": round(new_tokens / median_s, 1),
        "tokens_per_s_best": round(new_tokens / min(seconds), 1),
        "call_s_median": round(median_s, 4),
        "ms_per_step": round(1e3 * median_s / settings["new_tokens"], 3),
        **extra,
        **harness.load_fields(cpu_util),
    }


def worker_alignjax(workdir: str, settings: dict):
    """Yields one record per batch size; saves each batch's tokens of the last call."""
    alignjax_side.start("jax", "alignjax.models", "alignjax.sampling")  # no setup to time here
    import jax

    from alignjax.models import from_pretrained
    from alignjax.sampling import GREEDY, SamplingConfig, generate

    model = from_pretrained(os.path.join(workdir, "model"))
    config = GREEDY if settings["mode"] == "greedy" else SamplingConfig(temperature=1.0)
    prompts = np.load(os.path.join(workdir, "prompts.npy"))
    environment = alignjax_side.environment()

    def sample(rows: list[list[int]]):
        out = generate(
            model,
            rows,
            rng=0,
            max_new_tokens=settings["new_tokens"],
            config=config,
            stop_tokens=[],
            length_bucket=settings["prompt_len"],  # no prompt padding, as for transformers
        )
        return jax.block_until_ready(out.tokens)

    for batch in settings["batch_sizes"]:
        call = functools.partial(sample, prompts[:batch].tolist())
        t0 = time.perf_counter()
        call()  # compiles for these shapes; the timed calls reuse the program
        first_call_s = time.perf_counter() - t0
        tokens, seconds, cpu_util = _timed_calls(call, settings["calls"])
        np.save(_tokens_path(workdir, "alignjax", batch), np.asarray(tokens))
        extra = {
            "first_call_s": round(first_call_s, 3),
            "compile_s": round(first_call_s - statistics.median(seconds), 3),
            **environment,
        }
        yield _record("alignjax", settings, batch, seconds, cpu_util, extra)


def worker_transformers(workdir: str, settings: dict):
    """Yields one record per batch size; saves each batch's tokens of the last call."""
    import torch

    peers.set_threads(settings["threads"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = peers.load_model(workdir).to(device).eval()
    # Sampling from the plain softmax, as alignjax's SamplingConfig(temperature=1.0): no default top-k of 50.
    strategy = {"do_sample": False} if settings["mode"] == "greedy" else {"do_sample": True, "top_k": 0}
    prompts = torch.from_numpy(np.load(os.path.join(workdir, "prompts.npy"))).long()
    environment = peers.environment(model)

    def sample(input_ids, new_tokens: int = settings["new_tokens"]):
        torch.manual_seed(0)  # the same draws in every call, as alignjax's fixed rng
        with torch.no_grad():
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                eos_token_id=None,
                pad_token_id=0,
                **strategy,
            )
        peers.torch_sync()
        return out[:, input_ids.shape[1] :]

    for batch in settings["batch_sizes"]:
        call = functools.partial(sample, prompts[:batch].to(device))
        call(new_tokens=WARMUP_NEW_TOKENS)
        tokens, seconds, cpu_util = _timed_calls(call, settings["calls"])
        np.save(_tokens_path(workdir, "transformers", batch), tokens.cpu().numpy().astype(np.int32))
        yield _record("transformers", settings, batch, seconds, cpu_util, {"compile_s": 0.0, **environment})


BENCHMARK = harness.Benchmark.of(globals(), peer="transformers", default_models="25m", group=("batch", "mode"))

if __name__ == "__main__":
    harness.main(BENCHMARK)
