"""The scaffold every training run works inside: checkpoints, metrics, SIGTERM and the final export.

Nothing is lost on a crash or preemption: checkpoints hold a run's states together with its progress (the data
position, an on-policy run's KL coefficient and curve), the same command resumes from the latest one, and from
the first step on (`watch_sigterm`) SIGTERM (a preemptible TPU VM's notice, or a cluster scheduler's) lets the step
in flight finish, saves a checkpoint and ends the run cleanly. Leaving the `with` block (normally or by an
exception) waits for checkpoints to reach disk and closes the metric files.
"""

from __future__ import annotations

import os
import signal

from tqdm import tqdm

from alignjax.models import save_pretrained
from alignjax.train.checkpoint import Checkpointer, abstract_like
from alignjax.train.metrics import MetricWriter

EXPORT_DIR = "hf"  # the final Hugging Face export, under the workdir: a later stage starts from it


def export_done(workdir: str) -> bool:
    """Whether the run in `workdir` reached its end and exported its model."""
    return os.path.exists(os.path.join(workdir, EXPORT_DIR, "config.json"))


class RunScaffold:
    """Checkpointer, metric writer and SIGTERM flag of the run in `workdir`, as one context manager.

    Args:
      workdir: where checkpoints (`checkpoints/`), metrics (`metrics.jsonl`, `tensorboard/`) and the export go.
      keep_checkpoints: how many of the latest checkpoints to keep.
      echo: print each metrics record to stdout too.
    """

    def __init__(self, workdir: str, keep_checkpoints: int, echo: bool = True):
        self.workdir = workdir
        self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=keep_checkpoints)
        self.writer = MetricWriter(workdir, echo=echo)
        self.stop_requested = False
        self._previous_handler = None

    def watch_sigterm(self) -> None:
        """From now on (call it just before the first step), SIGTERM lets the step in flight finish and makes
        `checkpoint` save and say stop. Before, SIGTERM's default action ends the process: during setup there is
        nothing to save, and a preemption's grace period is better spent exiting."""
        self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        self.stop_requested = True  # polled between steps, so the step in flight completes

    def __enter__(self) -> RunScaffold:
        return self

    def __exit__(self, *exc_info) -> None:
        self.checkpointer.wait()
        self.checkpointer.close()
        self.writer.close()
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def restore(self, states, shardings, unit: str = "step"):
        """(start, states, progress): the latest checkpoint placed on `shardings`, or (0, `states`, None)."""
        start = self.checkpointer.latest_step() or 0
        if not start:
            return 0, states, None
        states, progress = self.checkpointer.restore(start, abstract_like(states, shardings))
        tqdm.write(f"resumed from {self.workdir}/checkpoints {unit} {start}")
        return start, states, progress

    def checkpoint(
        self, done: int, states, progress: dict, every: int, final: bool = False, unit: str = "step"
    ) -> bool:
        """Saves after step `done` when it is a multiple of `every`, the `final` one, or SIGTERM came; returns
        whether the run must stop now (SIGTERM came), having said so: the rerun resumes, or finishes a run whose
        last step was saved, so nothing slow runs after a preemption notice."""
        if self.stop_requested or final or (every and done % every == 0):
            self.checkpointer.save(done, states, progress, force=self.stop_requested or final)
        if self.stop_requested:
            tqdm.write(f"SIGTERM: saved checkpoint at {unit} {done}; rerun the same command to resume")
        return self.stop_requested

    def export(self, model, tokenizer) -> None:
        """Writes `model` and its tokenizer as a Hugging Face directory, `workdir/hf`."""
        save_pretrained(model, os.path.join(self.workdir, EXPORT_DIR), tokenizer=tokenizer)
        tqdm.write(f"exported Hugging Face model to {self.workdir}/{EXPORT_DIR}")
