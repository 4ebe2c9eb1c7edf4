"""Where metrics go: stdout, a JSONL file and TensorBoard, all fed by one `write` call.

Only process 0 writes, so a multi-host run logs once. Values arrive as host floats: the loop fetches them from
the device only on logging steps.

Every step is logged once, however often the run was stopped and resumed: a run resumed from step S keeps the
records up to S and drops the later ones (logged after the checkpoint it resumes from, and logged again now), and
TensorBoard is told the same (`purge_step`), so its curves have no doubled segments. A fresh run (S = 0) starts
both logs empty.
"""

from __future__ import annotations

import json
import os

import jax
from tensorboardX import SummaryWriter
from tqdm import tqdm

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _prefix(record: dict) -> str:
    """A record's prefix ("train", "eval"): all its metric names share it."""
    return next(name.split("/", 1)[0] for name in record if name != "step")


class MetricWriter:
    """Writes `{name: float}` records to `workdir/metrics.jsonl` and `workdir/tensorboard/`.

    Args:
      workdir: the run's directory.
      resume_step: the step the run resumes from (0: a fresh run); later records are dropped.
      echo: print each record to stdout too.
    """

    def __init__(self, workdir: str, resume_step: int = 0, echo: bool = True):
        self._active = jax.process_index() == 0
        self._echo = echo
        if not self._active:
            return
        os.makedirs(workdir, exist_ok=True)
        self._path = os.path.join(workdir, METRICS_FILE)
        self._records = [record for record in self._read() if 0 < resume_step and record["step"] <= resume_step]
        self._rewrite()
        self._jsonl = open(self._path, "a")
        # TensorBoard drops the earlier event files' records from purge_step on (0: all of them)
        purge_step = resume_step + 1 if resume_step else 0
        self._tensorboard = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR), purge_step=purge_step)

    def _read(self) -> list[dict]:
        if not os.path.exists(self._path):
            return []
        with open(self._path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _rewrite(self) -> None:
        temporary = self._path + ".tmp"
        with open(temporary, "w") as f:
            f.writelines(json.dumps(record) + "\n" for record in self._records)
        os.replace(temporary, self._path)

    def logged(self, step: int, prefix: str) -> dict[str, float]:
        """The metrics logged at `step` under `prefix` (e.g. the starting model's eval at step 0, by this process
        or before the resume), without their prefix; empty when there are none."""
        if not self._active:
            return {}
        records = [r for r in self._records if r["step"] == step and _prefix(r) == prefix]
        return {k.split("/", 1)[1]: v for r in records for k, v in r.items() if k != "step"}

    def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        """Logs `metrics` as `prefix/name` at `step`; a record of the same step and prefix logged before (by a run
        stopped after its last checkpoint) is replaced."""
        if not self._active or not metrics:
            return
        record = {"step": step, **{f"{prefix}/{k}": float(v) for k, v in metrics.items()}}
        if self.logged(step, prefix):  # logged before the resume (an evaluation at the last step): replace it
            self._records = [r for r in self._records if not (r["step"] == step and _prefix(r) == prefix)]
            self._jsonl.close()
            self._rewrite()
            self._jsonl = open(self._path, "a")
        self._records.append(record)
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in record.items():
            if name != "step":
                self._tensorboard.add_scalar(name, value, step)
        if self._echo:
            shown = "  ".join(f"{k.split('/', 1)[1]}={v:.4g}" for k, v in record.items() if k != "step")
            tqdm.write(f"[{prefix} step {step}] {shown}")

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._active:
            self._jsonl.close()
            self._tensorboard.close()
