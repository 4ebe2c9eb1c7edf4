"""Where metrics go: stdout, a JSONL file and TensorBoard, all fed by one `write` call.

Only process 0 writes, so a multi-host run logs once. Values arrive as host floats: the loop fetches them from
the device only on logging steps.
"""

from __future__ import annotations

import json
import os

import jax
from tensorboardX import SummaryWriter
from tqdm import tqdm


class MetricWriter:
    """Writes `{name: float}` records to `workdir/metrics.jsonl` and `workdir/tensorboard/`."""

    def __init__(self, workdir: str, echo: bool = True):
        self._active = jax.process_index() == 0
        self._echo = echo
        if self._active:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        if not self._active:
            return
        record = {"step": step, **{f"{prefix}/{k}": float(v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in record.items():
            if name != "step":
                self._tensorboard.add_scalar(name, value, step)
        if self._echo:
            shown = "  ".join(f"{k.split('/', 1)[1]}={v:.4g}" for k, v in record.items() if k != "step")
            tqdm.write(f"[{prefix} step {step}] {shown}")

    def close(self) -> None:
        if self._active:
            self._jsonl.close()
            self._tensorboard.close()
