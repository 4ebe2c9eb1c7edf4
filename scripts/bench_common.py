"""What the benchmarks against a peer framework share: the models, the worker processes, the measurements.

Every benchmark (`bench_sft.py`, `bench_sampler.py`) runs the same way. The parent process imports neither torch
nor jax: it writes its arguments into a temporary work directory and runs the script again as a "prepare" worker,
which builds a model with `transformers` from a fixed torch seed, saves it (HF format) and the inputs there, and
writes the run's settings. Then each framework runs in a fresh worker process, `--repeats` times alternating, so
peak memory and thread pools are each framework's own and drift on a shared machine hits both alike; a worker prints
its JSON records on stdout, one a line, and the parent keeps each one's best run for the ratio.

The scripts are run as `python scripts/<name>.py`, which puts `scripts/` on `sys.path`: they `import bench_common`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Hashable

# Model shapes. `vocab=None`: the toy tokenizer's size (the default experiment's model), 96 if it is unavailable.
LLAMAS = {
    "tiny": dict(vocab=None, hidden=64, intermediate=176, layers=2, heads=4, kv_heads=2, tied=True),
    "25m": dict(vocab=8000, hidden=512, intermediate=1376, layers=6, heads=8, kv_heads=4, tied=False),
}
DATA_SEED = 1234
TORCH_SEED = 0


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (for a child: from its parent's RSS at spawn)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used, all threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def toy_vocab_size() -> int:
    """The vocabulary size of the default experiment's toy tokenizer (96 without the data package)."""
    try:
        from alignjax.data.builtin import toy_instructions

        return len(toy_instructions.tokenizer())
    except Exception:  # the data package is optional here; any small vocabulary exercises the same code
        return 96


def save_llama(directory: str, spec: dict, max_positions: int):
    """Builds the `spec` Llama (one of `LLAMAS`) in `transformers` from the fixed torch seed and saves it to
    `directory` in HF format; returns the torch model (eos 1, pad 0, no bos)."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=spec["vocab"] or toy_vocab_size(),
        hidden_size=spec["hidden"],
        intermediate_size=spec["intermediate"],
        num_hidden_layers=spec["layers"],
        num_attention_heads=spec["heads"],
        num_key_value_heads=spec["kv_heads"],
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=spec["tied"],
        bos_token_id=None,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(TORCH_SEED)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return model


def save_json(workdir: str, name: str, obj) -> None:
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(obj, f)


def load_json(workdir: str, name: str):
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------------------------
# Parent side: the command line, the workers, the repeats.


def add_worker_arguments(parser: argparse.ArgumentParser, frameworks: tuple[str, ...]) -> None:
    """`--repeats`, and the hidden arguments by which a script runs itself as a worker."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per framework, alternating; the ratio uses each framework's best (fastest) run, the usual way "
        "to see through a busy machine",
    )
    parser.add_argument("--_worker", choices=("prepare",) + frameworks, help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", help=argparse.SUPPRESS)


def run_worker(script: str, role: str, workdir: str) -> list[dict]:
    """Runs `script` as the `role` worker ("prepare" or a framework) in a fresh process; returns the JSON records
    it printed (its stdout lines that start with "{"), in order."""
    cmd = [sys.executable, os.path.abspath(script), "--_worker", role, "--_workdir", workdir]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr (framework chatter) passes through
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not records:
        raise SystemExit(f"{role} worker failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    return records


def prepare_workdir(script: str, workdir: str, args: dict) -> dict:
    """Saves `args` into `workdir` and runs `script` as the "prepare" worker there; returns its settings record.

    Built in a subprocess too: a child's ru_maxrss starts from its parent's RSS at spawn (Linux keeps the high-water
    mark across fork + exec), so the parent stays small and imports neither torch nor jax.
    """
    save_json(workdir, "args.json", args)
    return run_worker(script, "prepare", workdir)[-1]


def run_alternating(
    script: str, frameworks: list[str], repeats: int, workdir: str, key: Callable[[dict], Hashable]
) -> dict:
    """Runs each framework's worker `repeats` times, alternating (so drift and neighbours hit both alike), and
    prints every record with its repeat; returns the best (highest `tokens_per_s`) record for each `key(record)`."""
    best = {}
    for repeat in range(repeats):
        for framework in frameworks:
            for record in run_worker(script, framework, workdir):
                record = {"repeat": repeat, **record}
                print(json.dumps(record), flush=True)
                k = key(record)
                if k not in best or record["tokens_per_s"] > best[k]["tokens_per_s"]:
                    best[k] = record
    return best


# ---------------------------------------------------------------------------------------------------------------
# Worker side: where a framework ran.


def jax_environment() -> dict:
    """The device, threads and versions fields of an alignjax record."""
    import flax
    import jax

    device = jax.devices()[0]
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "threads": f"XLA CPU intra-op pool = all {len(os.sched_getaffinity(0))} cores; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        "versions": f"jax {jax.__version__}, flax {flax.__version__}",
    }


def torch_environment(model, *versions: str) -> dict:
    """The device, threads and versions fields of a torch peer's record; `versions`: more "name version" strings
    (the peer's own packages and settings), listed before the model's attention implementation."""
    import torch
    import transformers

    return {
        "device": f"cuda:{torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu",
        "threads": f"torch intra-op {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}",
        "versions": ", ".join(
            [
                f"torch {torch.__version__}",
                f"transformers {transformers.__version__}",
                *versions,
                f"attn {model.config._attn_implementation}",
            ]
        ),
    }


def torch_sync() -> None:
    """Waits for queued GPU work, so a timestamp taken next covers it (nothing to wait for on CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
