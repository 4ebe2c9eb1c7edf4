"""One run per workdir: a lock held while a run is in it, and the run's config saved beside its checkpoints.

A workdir holds one run's checkpoints, metrics and export; two processes writing into it would resume each
other's checkpoints and interleave their metrics, and a rerun with another model or data would restore a
checkpoint of another shape. `claim_workdir` guards against both before anything heavy starts:

- it creates the workdir (`check_writable`, run by the preflight of every stage, has already named a read-only
  or mistyped location in a second, not after tokenising);
- it takes an exclusive lock (`flock` on `workdir/.lock`, which also records the holder's pid and host), released
  by the kernel when the process ends however it ends, so a killed run never leaves a stale lock;
- it compares the rerun's identity (`IDENTITY_FIELDS`: the kind, the model, the data, the loss or algorithm) with
  the `config.json` that the workdir's first run saved, and refuses on a difference, naming the fields; then it
  saves the resolved config as `config.json`.

Only process 0 of a multi-host run claims the workdir (the others write no files there).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

import jax
from ml_collections import ConfigDict

from alignjax.config_errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "hf"  # the final Hugging Face export: a later stage starts from it
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
# What makes a rerun the same run: a change here would restore a checkpoint of another model, or resume a data
# position in other data. Everything else (steps, learning rate, logging) may change between reruns.
IDENTITY_FIELDS = ("kind", "model", "data", "loss.name", "rl.algorithm.name")


def check_writable(workdir: str, field: str = "train.workdir") -> None:
    """ConfigError in one line when `workdir` could not be created or written; creates nothing (a run checks
    every stage before any starts)."""
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{field}={workdir!r} cannot be created: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}={workdir!r} is not writable by this user ({existing} is read-only)")


def _flatten(value, prefix: str = "") -> dict[str, object]:
    """{"model.path": ..., "data.seq_len": ...}: a nested config's leaves by dotted name."""
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: list(value) if isinstance(value, tuple) else value}


def identity(config: dict) -> dict[str, object]:
    """The leaves of `config` (a plain dict) under `IDENTITY_FIELDS`, by dotted name."""
    flat = _flatten({k: v for k, v in config.items() if k != "previous_stage"})
    return {name: value for name, value in flat.items() if any(_under(name, f) for f in IDENTITY_FIELDS)}


def _under(name: str, field: str) -> bool:
    return name == field or name.startswith(field + ".")


def identity_differences(saved: dict, config: dict) -> list[str]:
    """'field: saved -> now' for every identity field that differs between two configs (plain dicts)."""
    before, now = identity(saved), identity(config)

    def shown(flat: dict, name: str) -> str:
        return repr(flat[name]) if name in flat else "absent"

    names = sorted(set(before) | set(now))
    return [f"{n}: {shown(before, n)} -> {shown(now, n)}" for n in names if shown(before, n) != shown(now, n)]


def _config_dict(config: ConfigDict) -> dict:
    """The config as JSON-ready plain data (tuples become lists, as they come back from config.json)."""
    return json.loads(config.to_json_best_effort())


class WorkdirBusyError(ConfigError):
    """Another process holds the workdir's lock."""


@contextlib.contextmanager
def claim_workdir(config: ConfigDict) -> Iterator[None]:
    """Holds `config.train.workdir` for the run of `config` (see the module docstring); raises ConfigError when
    the workdir cannot be written, is busy, or holds another run."""
    workdir = config.train.workdir
    if jax.process_index() != 0:
        yield
        return
    try:  # preflight checked the path; a read-only file system (where root cannot write either) fails here
        os.makedirs(workdir, exist_ok=True)
        lock = open(os.path.join(workdir, LOCK_FILE), "a+")
    except OSError as e:
        raise ConfigError(f"train.workdir={workdir!r} cannot be written: {e.strerror}") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise WorkdirBusyError(
                f"train.workdir={workdir!r} is in use by {holder}; wait for that run to end, or set another "
                "train.workdir"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        lock.flush()
        _check_and_save_config(config, workdir)
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()  # the lock itself goes with the file descriptor


def export_done(workdir: str) -> bool:
    """Whether the run in `workdir` reached its end and exported its model."""
    return os.path.exists(os.path.join(workdir, EXPORT_DIR, "config.json"))


def holds_work(workdir: str) -> bool:
    """Whether `workdir` holds a checkpoint or an export: a run to resume or to start the next stage from."""
    checkpoints = os.path.join(workdir, CHECKPOINT_DIR)
    saved_steps = os.path.isdir(checkpoints) and any(name.isdigit() for name in os.listdir(checkpoints))
    return saved_steps or export_done(workdir)


def _check_and_save_config(config: ConfigDict, workdir: str) -> None:
    """Refuses a rerun whose identity differs from the saved config's, when the workdir holds work to resume;
    then saves the config (an evaluation, `train.steps=0`, leaves the training run's config as it is)."""
    path = os.path.join(workdir, CONFIG_FILE)
    resolved = _config_dict(config)
    if os.path.exists(path) and holds_work(workdir):
        with open(path) as f:
            saved = json.load(f)
        differences = identity_differences(saved, resolved)
        if differences:
            raise ConfigError(
                f"train.workdir={workdir!r} holds another run ({'; '.join(differences)}); set another "
                "train.workdir, or delete that directory to start over"
            )
    if config.train.steps == 0:
        return
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(resolved, f, indent=2, sort_keys=True)
    os.replace(temporary, path)  # a kill while writing never leaves half a config
