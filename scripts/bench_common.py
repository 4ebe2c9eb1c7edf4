"""What the benchmarks against a peer framework share: the models, the worker processes, the measurements.

Every benchmark (`bench_sft.py`, `bench_dpo.py`, `bench_sampler.py`) runs the same way. The parent process imports
neither torch nor jax: it writes its arguments into a temporary work directory and runs the script again as a
"prepare" worker, which builds a model with `transformers` from a fixed torch seed, saves it (HF format) and the
inputs there, and writes the run's settings. Then each framework runs in a fresh worker process, `--repeats` times
alternating, so peak memory and thread pools are each framework's own and drift on a shared machine hits both alike;
a worker prints its JSON records on stdout, one a line, and the parent keeps each one's best run for the ratio.

The scripts are run as `python scripts/<name>.py`, which puts `scripts/` on `sys.path`: they `import bench_common`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
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
    parser.add_argument(
        "--peer-allocator",
        choices=("default", "kept"),
        default="default",
        help="kept: run the peer with glibc's allocator set as alignjax sets it for itself on CPU "
        "(alignjax.host_memory: no mmap, no trimming), through glibc's MALLOC_* environment variables",
    )
    parser.add_argument("--_worker", choices=("prepare",) + frameworks, help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", help=argparse.SUPPRESS)


def _json_object(line: str) -> dict | None:
    """`line` as a JSON object, or None when it is not one (a framework's own printout, e.g. a Python dict)."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


# glibc's environment variables for what `alignjax.host_memory.keep_freed_host_memory` sets with `mallopt` (a torch
# peer allocates on the calling thread, as alignjax's synchronous dispatch does)
KEPT_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def run_worker(script: str, role: str, workdir: str) -> list[dict]:
    """Runs `script` as the `role` worker ("prepare" or a framework) in a fresh process; returns the JSON records
    it printed (its stdout lines that are JSON objects), in order. A peer's worker gets `KEPT_ALLOCATOR_ENV` when
    the run's arguments say `--peer-allocator kept`."""
    cmd = [sys.executable, os.path.abspath(script), "--_worker", role, "--_workdir", workdir]
    env = dict(os.environ)
    if role.split(":")[0] not in ("prepare", "alignjax") and load_json(workdir, "args.json").get("peer_allocator") == "kept":
        env.update(KEPT_ALLOCATOR_ENV)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)  # stderr passes through
    records = [record for line in proc.stdout.splitlines() if (record := _json_object(line)) is not None]
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

    from alignjax import host_memory

    device = jax.devices()[0]
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "threads": f"XLA CPU intra-op pool = all {len(os.sched_getaffinity(0))} cores; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        "freed_host_memory_kept": host_memory.kept(),
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
        "allocator_env": {name: value for name, value in os.environ.items() if name.startswith("MALLOC_")},
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


# ---------------------------------------------------------------------------------------------------------------
# Shared by the training benchmarks: the steady-state timing fields, the alignjax step loop, TRL's hooks.


def steady_state(begins, ends, cpu_at_ends, warmup: int, tokens_per_step) -> dict:
    """The timing fields of a training record from per-step begin/end timestamps, the CPU seconds at each end,
    and each step's non-padding tokens; the steady state is every step after the first `warmup`.

    tokens/s and steps/s are over the wall time from the end of the last warmup step to the end of the last step
    (everything between steps included); `step_ms_median` is the median of single steps.
    """
    if not 0 < warmup < len(ends):
        raise ValueError(f"need 0 < warmup ({warmup}) < steps ({len(ends)})")
    measured = len(ends) - warmup
    wall_s = ends[-1] - ends[warmup - 1]
    tokens = sum(tokens_per_step[warmup : len(ends)])
    return {
        "steps_measured": measured,
        "steps_per_s": round(measured / wall_s, 4),
        "tokens_per_s": round(tokens / wall_s, 1),
        "step_ms_median": round(1e3 * statistics.median(e - s for s, e in zip(begins[warmup:], ends[warmup:])), 3),
        "first_step_s": round(ends[0] - begins[0], 3),
        # Cores kept busy in the steady state; well below the core count means waiting, or another process
        # competing for the CPU (`loadavg_1m` counts this run's own threads too).
        "cpu_util_cores": round((cpu_at_ends[-1] - cpu_at_ends[warmup - 1]) / wall_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def run_jax_steps(step_fn, state, batches, put, *args):
    """Runs `step_fn(state, put(batch), *args)` over `batches`, blocking on each step's state and metrics.

    Returns (state, begins, ends, cpu seconds at each end, per-step losses as floats); the losses stay on device
    until the end, so fetching them adds no host sync to a step.
    """
    import jax

    begins, ends, cpu, losses = [], [], [], []
    for batch in batches:
        begins.append(time.perf_counter())
        state, metrics = step_fn(state, put(batch), *args)
        jax.block_until_ready((state, metrics))
        ends.append(time.perf_counter())
        cpu.append(cpu_s())
        losses.append(metrics["loss"])
    return state, begins, ends, cpu, [float(x) for x in jax.device_get(losses)]


def id_tokenizer(vocab_size: int):
    """A `transformers` tokenizer that reads back token ids written by `ids_to_text` (one word per id, split on
    whitespace; "<pad>" is 0, "<eos>" 1), for peers that want text or a tokenizer where the benchmark has ids."""
    import tokenizers
    import transformers

    vocab = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i for i in range(2, vocab_size)}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


def ids_to_text(ids) -> str:
    """The `id_tokenizer` text of `ids`: one word per id, separated by single spaces."""
    return " ".join("<pad>" if i == 0 else "<eos>" if i == 1 else f"t{i}" for i in ids)


def trl_matched_arguments(lr: float, use_cpu: bool) -> dict:
    """The `transformers.TrainingArguments` that make a TRL trainer do what the alignjax step does: AdamW (betas
    0.9 / 0.95, eps 1e-8, no weight decay) at a constant `lr` without warmup, clipping at 1.0, float32 without
    gradient checkpointing (TRL defaults both bf16 and checkpointing on), the batches in order, nothing logged,
    saved or evaluated."""
    return dict(
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=use_cpu,
        train_sampling_strategy="sequential",
        dataloader_drop_last=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )


def trl_step_timer():
    """A `transformers.TrainerCallback` that records each optimizer step's begin and end (`perf_counter`) and
    the process's CPU seconds at its end, in `.begins`, `.ends` and `.cpu`."""
    import transformers

    class StepTimer(transformers.TrainerCallback):
        def __init__(self):
            self.begins, self.ends, self.cpu = [], [], []

        def on_step_begin(self, args, state, control, **kwargs):
            self.begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            torch_sync()
            self.ends.append(time.perf_counter())
            self.cpu.append(cpu_s())

    return StepTimer()


def loss_recording(trainer_cls):
    """`trainer_cls` (a `transformers.Trainer`) keeping each training step's loss tensor in `.step_losses`
    (no extra host sync: convert them after training)."""

    class Recording(trainer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.step_losses = []

        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            self.step_losses.append(loss.detach())
            return loss

    Recording.__name__ = f"Recording{trainer_cls.__name__}"
    return Recording
