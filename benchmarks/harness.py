"""What every benchmark runs on: its command line, its worker processes, its records and their statistics.

A benchmark module defines its options, checks, prepare worker, framework workers and ratio, gathers them into a
`Benchmark` (`Benchmark.of(globals(), ...)`) and calls `main` with it. The parent side parses the command line,
checks it, and for each model runs the module as the "prepare" worker and then as each framework's worker,
alternating (see the package's docstring); it prints the settings, every record and, for each group of records (a
model, and a setting or a batch size where the benchmark has several), the ratio of alignjax's best run to its
peer's. The workers share the records' timing fields: `StepClock` (the steady state of a run of steps), `Setup`,
`load_fields`.

This module imports neither torch nor jax: the parent stays small, and a worker's peak memory is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable

# Model shapes. `vocab=None`: the toy tokenizer's size (the default experiment's model), 96 if it is unavailable.
LLAMAS = {
    "tiny": {"vocab": None, "hidden": 64, "intermediate": 176, "layers": 2, "heads": 4, "kv_heads": 2, "tied": True},
    "25m": {"vocab": 8000, "hidden": 512, "intermediate": 1376, "layers": 6, "heads": 8, "kv_heads": 4, "tied": False},
}
DATA_SEED = 1234
TORCH_SEED = 0
OURS = "alignjax"

# glibc's environment variables for what `alignjax.host_memory.keep_freed_host_memory` sets with `mallopt` (a torch
# peer allocates on the calling thread, as alignjax's synchronous dispatch does)
KEPT_ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (for a child: from its parent's RSS at spawn)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used, all threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def save_json(workdir: str, name: str, obj) -> None:
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(obj, f)


def load_json(workdir: str, name: str):
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def pick(mapping, *names: str) -> dict:
    """The `names` entries of `mapping` (a dict, or an `argparse.Namespace`), in that order."""
    mapping = vars(mapping) if isinstance(mapping, argparse.Namespace) else mapping
    return {name: mapping[name] for name in names}


def add_training_arguments(parser, steps: str, steps_default: int, steps_help: str, warmup: int, lr: float) -> None:
    """The options of a training benchmark: `steps` (the option's name: "--steps", "--iterations"), how many of
    them warm up, the learning rate."""
    parser.add_argument(steps, type=int, default=steps_default, help=steps_help)
    unit = steps.lstrip("-")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"first {unit} left out of the steady state")
    parser.add_argument("--lr", type=float, default=lr)


def require_warmup(warmup: int, steps: int, option: str = "--steps") -> None:
    """Exits unless some steps are left for the steady state after the `warmup` ones."""
    if not 0 < warmup < steps:
        raise SystemExit(f"need 0 < --warmup ({warmup}) < {option} ({steps})")


# ---------------------------------------------------------------------------------------------------------------
# What a benchmark module tells the harness.


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark: its command line, its prepare and framework workers, its ratio.

    Attributes:
      module: the module's name (`python -m benchmarks.<name>`), which its workers run.
      doc: the module's docstring, the command's help.
      peer: the framework alignjax is measured against ("trl", "transformers").
      models: the models `--models` may name, each one's `LLAMAS` shape (plus the benchmark's defaults for it).
      default_models: `--models`'s default (comma-separated); None: no `--models`, every one of `models` runs.
      add_arguments: adds the benchmark's own options to the parser.
      check: exits (SystemExit) on arguments the run cannot use, before anything runs.
      prepare: (workdir, args with `.model`) -> the run's settings, which the harness saves for the workers;
        it saves the model and the inputs into `workdir`.
      workers: framework -> (workdir, settings, *variant) -> its record, or an iterable of records.
      ratio: (alignjax's record, the peer's, workdir) -> the ratio record's fields after its head (the model,
        the `group` fields and "ratio").
      group: the records' fields, besides model and framework, that tell apart the records to compare (a
        setting, a batch size).
      variants: (args) -> the variants every framework runs in (DPO's settings), each a worker of its own with
        the role "framework:variant"; None: one worker per framework.
      unprinted_settings: settings left out of the printed settings line (long per-step lists).
    """

    module: str
    doc: str
    peer: str
    models: dict[str, dict]
    default_models: str | None
    add_arguments: Callable[[argparse.ArgumentParser], None]
    check: Callable[[argparse.Namespace], None]
    prepare: Callable[[str, argparse.Namespace], dict]
    workers: dict[str, Callable[..., dict | Iterable[dict]]]
    ratio: Callable[[dict, dict, str], dict]
    group: tuple[str, ...] = ()
    variants: Callable[[argparse.Namespace], list[str]] | None = None
    unprinted_settings: tuple[str, ...] = ()

    @classmethod
    def of(cls, namespace: dict, peer: str, default_models: str | None, **options) -> Benchmark:
        """The benchmark a module's `namespace` (its `globals()`) defines: its docstring, `MODELS`,
        `add_arguments`, `check`, `prepare`, `ratio`, and a `worker_<framework>` for alignjax and `peer`;
        `options`: the other fields."""
        return cls(
            module=namespace["__spec__"].name,
            doc=namespace["__doc__"],
            peer=peer,
            models=namespace["MODELS"],
            default_models=default_models,
            workers={framework: namespace[f"worker_{framework}"] for framework in (OURS, peer)},
            **{name: namespace[name] for name in ("add_arguments", "check", "prepare", "ratio")},
            **options,
        )

    @property
    def name(self) -> str:
        """The module's own name: "sft" of `benchmarks.sft`."""
        return self.module.rpartition(".")[2]

    @property
    def frameworks(self) -> tuple[str, str]:
        return (OURS, self.peer)


def main(benchmark: Benchmark) -> None:
    """The command line of `benchmark`: the parent, or (with the hidden `--_worker`) one of its workers."""
    args = _parser(benchmark).parse_args()
    if args._worker:
        _work(benchmark, args._worker, args._workdir)
    else:
        _run(benchmark, args)


def _parser(benchmark: Benchmark) -> argparse.ArgumentParser:
    """The options every benchmark has around its own (`benchmark.add_arguments`)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {benchmark.module}",
        description=benchmark.doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if benchmark.default_models is None:
        parser.set_defaults(models=",".join(benchmark.models))
    else:
        parser.add_argument(
            "--models", default=benchmark.default_models, help=f"comma-separated, from {sorted(benchmark.models)}"
        )
    frameworks = ",".join(benchmark.frameworks)
    parser.add_argument("--frameworks", default=frameworks, help=f"comma-separated, from {frameworks}")
    benchmark.add_arguments(parser)
    peer_name = "TRL" if benchmark.peer == "trl" else benchmark.peer
    parser.add_argument("--threads", type=int, default=2, help=f"torch.set_num_threads for {peer_name}")
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
    parser.add_argument("--_worker", help=argparse.SUPPRESS)  # "prepare", or a framework[:variant]
    parser.add_argument("--_workdir", help=argparse.SUPPRESS)
    return parser


# ---------------------------------------------------------------------------------------------------------------
# Parent side: the checks, the workers, the repeats, the ratios.


def _run(benchmark: Benchmark, args: argparse.Namespace) -> None:
    frameworks = [f for f in args.frameworks.split(",") if f]
    if any(f not in benchmark.frameworks for f in frameworks):
        raise SystemExit(f"unknown framework in {frameworks}; choose from {benchmark.frameworks}")
    models = args.models.split(",")
    for name in models:
        if name not in benchmark.models:
            raise SystemExit(f"unknown model {name!r}; choose from {sorted(benchmark.models)}")
    benchmark.check(args)
    if benchmark.variants is None:
        roles = frameworks
    else:
        roles = [f"{framework}:{variant}" for variant in benchmark.variants(args) for framework in frameworks]
    for name in models:
        with tempfile.TemporaryDirectory(prefix=f"bench_{benchmark.name}_{name}_") as workdir:
            settings = prepare_workdir(benchmark.module, workdir, dict(vars(args), model=name))
            print(json.dumps(settings), flush=True)
            best = run_alternating(benchmark.module, roles, args.repeats, workdir, key=_key(benchmark))
            for ours, theirs in _pairs(best, benchmark.peer):
                head = {"model": ours["model"], **pick(ours, *benchmark.group), "ratio": f"{OURS}/{benchmark.peer}"}
                ratio = benchmark.ratio(ours, theirs, workdir)
                print(json.dumps({**head, **ratio, "of": f"best of {args.repeats}"}), flush=True)


def _key(benchmark: Benchmark) -> Callable[[dict], tuple]:
    """A record's framework, then its `group` fields."""
    return lambda record: (record["framework"], *(record[field] for field in benchmark.group))


def _pairs(best: dict[tuple, dict], peer: str) -> Iterable[tuple[dict, dict]]:
    """(alignjax's record, the peer's) for each group both ran, in the order the groups were first seen."""
    for group in dict.fromkeys(key[1:] for key in best):
        if (OURS, *group) in best and (peer, *group) in best:
            yield best[(OURS, *group)], best[(peer, *group)]


def _json_object(line: str) -> dict | None:
    """`line` as a JSON object, or None when it is not one (a framework's own printout, e.g. a Python dict)."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def run_worker(module: str, role: str, workdir: str) -> list[dict]:
    """Runs `module` as the `role` worker ("prepare" or a framework[:variant]) in a fresh process; returns the
    JSON records it printed (its stdout lines that are JSON objects), in order. A peer's worker gets
    `KEPT_ALLOCATOR_ENV` when the run's arguments say `--peer-allocator kept`."""
    cmd = [sys.executable, "-m", module, "--_worker", role, "--_workdir", workdir]
    env = dict(os.environ)
    if role.split(":")[0] not in ("prepare", OURS) and load_json(workdir, "args.json").get("peer_allocator") == "kept":
        env.update(KEPT_ALLOCATOR_ENV)
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, env=env)  # stderr passes through
    records = [record for line in proc.stdout.splitlines() if (record := _json_object(line)) is not None]
    if proc.returncode != 0 or not records:
        raise SystemExit(f"{role} worker failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    return records


def prepare_workdir(module: str, workdir: str, args: dict) -> dict:
    """Saves `args` into `workdir` and runs `module` as the "prepare" worker there; returns its settings record.

    Built in a subprocess too: a child's ru_maxrss starts from its parent's RSS at spawn (Linux keeps the high-water
    mark across fork + exec), so the parent stays small and imports neither torch nor jax.
    """
    save_json(workdir, "args.json", args)
    return run_worker(module, "prepare", workdir)[-1]


def run_alternating(
    module: str, roles: list[str], repeats: int, workdir: str, key: Callable[[dict], Hashable]
) -> dict:
    """Runs each role's worker `repeats` times, alternating (so drift and neighbours hit both alike), and prints
    every record with its repeat; returns the best (highest `tokens_per_s`) record for each `key(record)`."""
    best = {}
    for repeat in range(repeats):
        for role in roles:
            for record in run_worker(module, role, workdir):
                record = {"repeat": repeat, **record}
                print(json.dumps(record), flush=True)
                k = key(record)
                if k not in best or record["tokens_per_s"] > best[k]["tokens_per_s"]:
                    best[k] = record
    return best


# The ratios of a training step: tokens/s, the median step, peak memory (ratio field: record field).
STEP_RATIOS = {
    "tokens_per_s_ratio": "tokens_per_s",
    "step_ms_ratio": "step_ms_median",
    "peak_rss_ratio": "peak_rss_mib",
}


def ratios(ours: dict, theirs: dict, **fields: str) -> dict:
    """For each `name=field`, the name and ours[field] / theirs[field], to 3 places."""
    return {name: round(ours[field] / theirs[field], 3) for name, field in fields.items()}


def loss_agreement(ours: dict, theirs: dict, tolerance: float) -> dict:
    """How far apart the first and last losses are; `same_work`: the first ones agree to within `tolerance`."""
    first_diff = abs(ours["loss_first"] - theirs["loss_first"])
    return {
        "loss_first_abs_diff": first_diff,
        "loss_last_abs_diff": abs(ours["loss_last"] - theirs["loss_last"]),
        "same_work": first_diff < tolerance,
    }


# ---------------------------------------------------------------------------------------------------------------
# Worker side: the dispatch, the clocks, the records' common fields.


def _work(benchmark: Benchmark, role: str, workdir: str) -> None:
    """Runs the `role` worker in `workdir`; prints its records on stdout, one JSON object a line."""
    if role == "prepare":
        settings = benchmark.prepare(workdir, argparse.Namespace(**load_json(workdir, "args.json")))
        save_json(workdir, "settings.json", settings)
        printed = {k: v for k, v in settings.items() if k not in benchmark.unprinted_settings}
        print(json.dumps(printed), flush=True)
        return
    framework, *variant = role.split(":")
    out = benchmark.workers[framework](workdir, load_json(workdir, "settings.json"), *variant)
    for record in [out] if isinstance(out, dict) else out:
        print(json.dumps(record), flush=True)


class Setup:
    """A worker's setup, from the end of its imports to its first timed step: made right after the imports."""

    def __init__(self):
        self.import_rss, self.began, self.seconds = peak_rss_mib(), time.perf_counter(), None

    def done(self, less: float = 0.0) -> None:
        """The setup ends now; `less`: seconds spent meanwhile on what is reported on its own."""
        self.seconds = time.perf_counter() - self.began - less

    def fields(self) -> dict:
        return {"setup_s": round(self.seconds, 3), "import_rss_mib": round(self.import_rss, 1)}


def load_fields(cpu_util_cores: float) -> dict:
    """How busy the machine and this process were: the end of every record."""
    return {
        # Cores kept busy while measuring; well below the core count means waiting, or another process
        # competing for the CPU (`loadavg_1m` counts this run's own threads too).
        "cpu_util_cores": round(cpu_util_cores, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def record_head(framework: str, settings: dict, *fields: str) -> dict:
    """The first fields of a record: the model, the framework, then the settings' `fields`."""
    return {"model": settings["model"], "framework": framework, **pick(settings, *fields)}


class StepClock:
    """Each step's begin and end (`perf_counter`) and the process's CPU seconds at its end."""

    def __init__(self):
        self.begins, self.ends, self.cpu = [], [], []

    def begin(self) -> None:
        self.begins.append(time.perf_counter())

    def end(self) -> None:
        self.ends.append(time.perf_counter())
        self.cpu.append(cpu_s())

    def wall_s(self, warmup: int) -> float:
        """The steady state's wall seconds: from the end of the last warmup step to the end of the last step."""
        return self.ends[-1] - self.ends[warmup - 1]

    def steady_state(self, warmup: int, tokens_per_step) -> dict:
        """The timing fields of a training record, given each step's non-padding tokens; the steady state is
        every step after the first `warmup`.

        tokens/s and steps/s are over `wall_s` (everything between steps included); `step_ms_median` is the
        median of single steps.
        """
        begins, ends = self.begins, self.ends
        if not 0 < warmup < len(ends):
            raise ValueError(f"need 0 < warmup ({warmup}) < steps ({len(ends)})")
        measured = len(ends) - warmup
        wall_s = self.wall_s(warmup)
        tokens = sum(tokens_per_step[warmup : len(ends)])
        return {
            "steps_measured": measured,
            "steps_per_s": round(measured / wall_s, 4),
            "tokens_per_s": round(tokens / wall_s, 1),
            "step_ms_median": round(1e3 * statistics.median(e - s for s, e in zip(begins[warmup:], ends[warmup:])), 3),
            "first_step_s": round(ends[0] - begins[0], 3),
            **load_fields((self.cpu[-1] - self.cpu[warmup - 1]) / wall_s),
        }
