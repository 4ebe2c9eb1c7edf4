"""One run per workdir, and nothing lost or logged twice: the lock, the saved config, resuming from a chosen
checkpoint, a checkpoint of another run, metrics after a resume, and Ctrl-C."""

import json
import os
import signal

import jax.numpy as jnp
import pytest

from alignjax.config_errors import ConfigError
from alignjax.configs import base_config, toy
from alignjax.train.checkpoint import Checkpointer
from alignjax.train.metrics import MetricWriter
from alignjax.train.scaffold import RunScaffold, RunStopped
from alignjax.train.workdir import CONFIG_FILE, LOCK_FILE, WorkdirBusyError, check_writable, claim_workdir


def _config(workdir):
    config = base_config()
    config.train.workdir = str(workdir)
    return config


def _run_in(config):
    """Claims the workdir as a run does, checks that its lock names this process, and releases it."""
    with claim_workdir(config):
        holder = open(os.path.join(config.train.workdir, LOCK_FILE)).read()
        assert holder.startswith(f"pid {os.getpid()} on host ")


def _save_checkpoints(directory, steps, state=None):
    checkpointer = Checkpointer(str(directory), keep=10)
    for step in steps:
        checkpointer.save(step, state or {"w": jnp.full((3,), float(step))}, {"position": step})
    checkpointer.wait()
    checkpointer.close()


def test_a_second_run_into_a_busy_workdir_refuses_naming_the_holder(tmp_path):
    with claim_workdir(_config(tmp_path)):
        with pytest.raises(WorkdirBusyError, match=rf"is in use by pid {os.getpid()} on host .*; wait for that run"):
            _run_in(_config(tmp_path))
    _run_in(_config(tmp_path))  # released when the first run ended


def test_the_config_is_saved_and_a_rerun_with_other_model_or_data_is_refused(tmp_path):
    config = _config(tmp_path)
    _run_in(config)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["data"]["seq_len"] == config.data.seq_len and saved["train"]["workdir"] == str(tmp_path)
    _save_checkpoints(tmp_path / "checkpoints", [10])  # now the workdir holds work to resume
    config.train.steps, config.optim.lr = 5000, 1e-4  # more steps, another learning rate: the same run
    _run_in(config)
    config.data.seq_len, config.model.path = 48, "/models/other"
    message = r"holds another run \(data.seq_len: 32 -> 48; model.path: '' -> '/models/other'\); set another"
    with pytest.raises(ConfigError, match=message):
        _run_in(config)


def test_an_unwritable_workdir_is_named_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"train.workdir='.*file/run' cannot be created: .*file is a file"):
        check_writable(str(tmp_path / "file" / "run"))
    check_writable(str(tmp_path / "new" / "run"))
    assert not os.path.exists(tmp_path / "new")  # checking creates nothing
    with pytest.raises(ConfigError, match=r"train.workdir='/proc/alignjax_run' cannot be written: "):
        _run_in(_config("/proc/alignjax_run"))  # where even root cannot write


def test_resume_from_a_step_deletes_the_later_checkpoints_and_drops_their_metrics(tmp_path):
    _save_checkpoints(tmp_path / "checkpoints", [10, 20, 30])
    with MetricWriter(str(tmp_path), echo=False) as writer:
        for step in (0, 10, 20, 30):
            writer.write(step, {"loss": float(step)})
    with RunScaffold(str(tmp_path), keep_checkpoints=5, resume_from="20", echo=False) as scaffold:
        start, state, progress = scaffold.restore({"w": jnp.zeros(3)}, {"w": None})
        assert start == 20 and progress == {"position": 20} and float(state["w"][0]) == 20.0
        assert scaffold.checkpointer.all_steps() == [10, 20]
        scaffold.writer.write(21, {"loss": 21.0})
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == [0, 10, 20, 21]
    with pytest.raises(ConfigError, match=r"has no checkpoint of that step; it has \[10, 20\]"):
        RunScaffold(str(tmp_path), keep_checkpoints=5, resume_from="15")


def test_resume_from_another_runs_checkpoint_only_into_a_fresh_workdir(tmp_path):
    _save_checkpoints(tmp_path / "a" / "checkpoints", [10, 20])
    other = str(tmp_path / "a" / "checkpoints" / "10")
    with RunScaffold(str(tmp_path / "b"), keep_checkpoints=2, resume_from=other, echo=False) as scaffold:
        start, state, _ = scaffold.restore({"w": jnp.zeros(3)}, {"w": None})
        assert start == 10 and float(state["w"][0]) == 10.0
    with pytest.raises(ConfigError, match="names another run's checkpoint, but train.workdir=.* has checkpoints"):
        RunScaffold(str(tmp_path / "a"), keep_checkpoints=2, resume_from=other)
    with pytest.raises(ConfigError, match="is neither a step of this workdir's checkpoints nor a checkpoint dir"):
        RunScaffold(str(tmp_path / "c"), keep_checkpoints=2, resume_from=str(tmp_path / "missing"))


def test_a_checkpoint_of_another_model_is_one_line_not_an_orbax_dump(tmp_path):
    _save_checkpoints(tmp_path / "checkpoints", [10], state={"w": jnp.zeros(3), "b": jnp.zeros(2)})
    with RunScaffold(str(tmp_path), keep_checkpoints=2, echo=False) as scaffold:
        with pytest.raises(ConfigError) as error:
            scaffold.restore({"layer": {"kernel": jnp.zeros((4, 4))}}, {"layer": {"kernel": None}})
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    assert "does not fit this run's model and optimizer" in message and "saved by another run" in message


def test_a_resumed_run_logs_every_step_once_and_replaces_a_repeated_evaluation(tmp_path):
    with MetricWriter(str(tmp_path), echo=False) as writer:
        for step in (1, 2, 3, 4):
            writer.write(step, {"loss": float(step)})
        writer.write(4, {"accuracy": 0.5}, prefix="eval")
    with MetricWriter(str(tmp_path), resume_step=4, echo=False) as writer:  # stopped after the last checkpoint
        assert writer.logged(4, "eval") == {"accuracy": 0.5}
        writer.write(4, {"accuracy": 0.5}, prefix="eval")  # the final evaluation, run again
    with MetricWriter(str(tmp_path), resume_step=2, echo=False) as writer:
        writer.write(3, {"loss": 3.5})
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert records == [{"step": 1, "train/loss": 1.0}, {"step": 2, "train/loss": 2.0}, {"step": 3, "train/loss": 3.5}]
    MetricWriter(str(tmp_path), echo=False).close()  # a fresh start keeps nothing
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_ctrl_c_saves_and_stops_after_the_step_and_a_second_one_aborts_at_once(tmp_path):
    # Ctrl-C as a terminal delivers it, whatever the pytest worker's own handler (an xdist worker may ignore it)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with RunScaffold(str(tmp_path), keep_checkpoints=2, echo=False) as scaffold:
            scaffold.watch_signals()
            os.kill(os.getpid(), signal.SIGINT)  # the step in flight goes on
            with pytest.raises(RunStopped, match="Ctrl-C: saved checkpoint at step 7; rerun the same command") as stop:
                scaffold.checkpoint(7, {"w": jnp.zeros(3)}, {"position": 7}, every=0)
            assert stop.value.signal_name == "SIGINT"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert Checkpointer(str(tmp_path / "checkpoints"), keep=2).all_steps() == [7]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored on exit
    finally:
        signal.signal(signal.SIGINT, outer)


def test_every_toy_recipe_writes_under_the_users_own_runs_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALIGNJAX_RUNS", raising=False)
    config = toy.preference("dpo")
    assert config.train.workdir == str(tmp_path / "runs" / "dpo_toy")
    assert config.previous_stage.train.workdir == str(tmp_path / "runs" / "toy_sft")
    monkeypatch.setenv("ALIGNJAX_RUNS", str(tmp_path / "elsewhere"))
    assert toy.rl("grpo").train.workdir == str(tmp_path / "elsewhere" / "grpo_toy")
