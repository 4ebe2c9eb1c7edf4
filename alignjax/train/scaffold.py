"""The scaffold every training run works inside: checkpoints, metrics, stop signals and the final export.

Nothing is lost on a crash, a preemption or a Ctrl-C: checkpoints hold a run's states together with its progress
(the data position, an on-policy run's KL coefficient and curve), the same command resumes from the latest one
(or from `train.resume_from`), and from the first step on (`watch_signals`) SIGTERM (a preemptible TPU VM's
notice, or a cluster scheduler's) and SIGINT (Ctrl-C) let the step in flight finish, save a checkpoint and end
the run by raising `RunStopped`; a second Ctrl-C aborts at once. Leaving the `with` block (normally or by an
exception) waits for checkpoints to reach disk and closes the metric files.
"""

from __future__ import annotations

import os
import signal

from tqdm import tqdm

from alignjax.config_errors import ConfigError
from alignjax.models import save_pretrained
from alignjax.train.checkpoint import Checkpointer, abstract_like
from alignjax.train.metrics import MetricWriter
from alignjax.train.workdir import CHECKPOINT_DIR, EXPORT_DIR

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunStopped(Exception):
    """A stop signal ended the run after a checkpoint; the same command resumes it.

    Attributes:
      signal_name: "SIGTERM" or "SIGINT".
    """

    def __init__(self, signal_name: str, message: str):
        super().__init__(message)
        self.signal_name = signal_name


class RunScaffold:
    """Checkpointer, metric writer and stop signals of the run in `workdir`, as one context manager.

    Args:
      workdir: where checkpoints (`checkpoints/`), metrics (`metrics.jsonl`, `tensorboard/`) and the export go.
      keep_checkpoints: how many of the latest checkpoints to keep.
      resume_from: "" resumes from the workdir's latest checkpoint; a step number from that step of this workdir
        (its later checkpoints are deleted: the run goes on from there); a checkpoint directory of another run
        (`<workdir>/checkpoints/<step>`) starts this run from it, in a workdir without checkpoints of its own.
      echo: print each metrics record to stdout too.
    """

    def __init__(self, workdir: str, keep_checkpoints: int, resume_from: str = "", echo: bool = True):
        self.workdir = workdir
        self.checkpointer = Checkpointer(os.path.join(workdir, CHECKPOINT_DIR), keep=keep_checkpoints)
        self._source, self.start = self._resume_point(resume_from)
        self.writer = MetricWriter(workdir, resume_step=self.start, echo=echo)
        self._stop_signal: str | None = None
        self._previous_handlers: dict[int, object] = {}

    def _resume_point(self, resume_from: str) -> tuple[Checkpointer, int]:
        """(the checkpointer to restore from, the step; 0 for a fresh start), as `resume_from` says."""
        own_steps = self.checkpointer.all_steps()
        if not resume_from:
            return self.checkpointer, own_steps[-1] if own_steps else 0
        if resume_from.isdigit():
            step = int(resume_from)
            if step not in own_steps:
                raise ConfigError(
                    f"train.resume_from={resume_from}: {self.workdir}/{CHECKPOINT_DIR} has no checkpoint of that step; "
                    f"it has {own_steps or 'none'}"
                )
            for later in [s for s in own_steps if s > step]:
                self.checkpointer.delete(later)
                tqdm.write(f"resuming from step {step}: deleted the later checkpoint {later}")
            return self.checkpointer, step
        directory, name = os.path.split(os.path.abspath(resume_from.rstrip("/")))
        if not (name.isdigit() and os.path.isdir(resume_from)):
            raise ConfigError(
                f"train.resume_from={resume_from!r} is neither a step of this workdir's checkpoints nor a checkpoint "
                "directory (<workdir>/checkpoints/<step>)"
            )
        if own_steps:
            raise ConfigError(
                f"train.resume_from={resume_from!r} names another run's checkpoint, but train.workdir="
                f"{self.workdir!r} has checkpoints of its own ({own_steps}); start from it in a new workdir"
            )
        return Checkpointer(directory, keep=None), int(name)

    def watch_signals(self) -> None:
        """From now on (call it just before the first step), SIGTERM and Ctrl-C let the step in flight finish and
        make `checkpoint` save and stop. Before, their default actions end the process: during setup there is
        nothing to save, and a preemption's grace period is better spent exiting."""
        self._previous_handlers = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}

    def _on_signal(self, signum, frame):
        if signum == signal.SIGINT:  # the next Ctrl-C aborts at once, without a checkpoint
            signal.signal(signal.SIGINT, signal.default_int_handler)
            tqdm.write("Ctrl-C: saving a checkpoint after the step in flight, then stopping (Ctrl-C again aborts)")
        self._stop_signal = self._stop_signal or signal.Signals(signum).name  # polled between steps

    def __enter__(self) -> RunScaffold:
        return self

    def __exit__(self, *exc_info) -> None:
        self.checkpointer.wait()
        self.checkpointer.close()
        self.writer.close()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def restore(self, states, shardings, unit: str = "step"):
        """(start, states, progress): the resume point's states placed on `shardings`, or (0, `states`, None)."""
        if not self.start:
            return 0, states, None
        states, progress = self._source.restore(self.start, abstract_like(states, shardings))
        tqdm.write(f"resumed from {self._source.directory} {unit} {self.start}")
        return self.start, states, progress

    def checkpoint(self, done: int, states, progress: dict, every: int, final: bool = False, unit: str = "step"):
        """Saves after step `done` when it is a multiple of `every`, the `final` one, or a stop signal came; then,
        if one came, raises RunStopped: the rerun resumes, or finishes a run whose last step was saved, so
        nothing slow runs after a preemption notice or a Ctrl-C."""
        stop = self._stop_signal
        if stop or final or (every and done % every == 0):
            self.checkpointer.save(done, states, progress, force=bool(stop) or final)
        if stop:
            said = "Ctrl-C" if stop == "SIGINT" else stop
            raise RunStopped(stop, f"{said}: saved checkpoint at {unit} {done}; rerun the same command to resume")

    def export(self, model, tokenizer) -> None:
        """Writes `model` and its tokenizer as a Hugging Face directory, `workdir/hf`."""
        save_pretrained(model, os.path.join(self.workdir, EXPORT_DIR), tokenizer=tokenizer)
        tqdm.write(f"exported Hugging Face model to {self.workdir}/{EXPORT_DIR}")
