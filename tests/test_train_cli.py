"""The training command line in fresh processes, as the README runs it: resume after kill -9 or Ctrl-C is exact,
SIGTERM checkpoints, the same losses on 1 device, 8 simulated devices and 2 processes, a mistyped override fails.

They were in test_train_loop.py: `pytest -n 2 --dist loadfile` runs a file on one worker, and that file, with
every experiment variant as well, kept one worker busy minutes after the other had finished.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, logged_losses

TOY = os.path.join(REPO_ROOT, "experiments", "sft_toy.py")


def _cli(workdir, *overrides, devices=1, env=None):
    """The README's command line, in a fresh process with `devices` simulated CPU devices."""
    command = [sys.executable, "-m", "alignjax.run", f"--config={TOY}", f"--config.train.workdir={workdir}"]
    command += [
        "--config.train.answers_to_print=0", "--config.train.eval_every=0", "--config.train.export_hf=False",
        "--config.data.max_examples=2000", *overrides,
    ]
    full_env = {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu", **(env or {})}
    return command, full_env


class _Cli:
    """The command line, started in the background; its output goes to a log file beside `workdir`.

    A test that needs several runs starts them together: a run spends most of its time on one core (Python
    imports, XLA compiles), so two at a time use a 2-core machine twice as well. `output()` waits for the run.
    """

    def __init__(self, workdir, *overrides, devices=1, env=None, log_name=None):
        command, full_env = _cli(workdir, *overrides, devices=devices, env=env)
        self.workdir = workdir
        self.log = workdir.parent / (log_name or f"{workdir.name}.log")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)

    def output(self, timeout=300):
        """Waits for the run; its stdout and stderr, once it has exited with status 0."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.stop()
        output = self.log.read_text()
        assert self.process.returncode == 0, output[-3000:]
        return output

    def losses(self):
        self.output()
        return logged_losses(self.workdir)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()



MESH_RUN = ("--config.train.steps=20", "--config.train.log_every=1")


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    """The 1-device run that the 8-device and the 2-process runs reproduce: started when the first of them
    starts, beside its own processes, and shared by both."""
    run = _Cli(tmp_path_factory.mktemp("one_device") / "run", *MESH_RUN, "--config.train.checkpoint_every=0")
    yield run
    run.stop()


@pytest.mark.slow
def test_eight_devices_give_the_same_losses_as_one(tmp_path, one_device_run):
    eight = _Cli(
        tmp_path / "eight", *MESH_RUN, "--config.train.checkpoint_every=0", "--config.mesh.data=2",
        "--config.mesh.fsdp=2", "--config.mesh.tensor=2", devices=8,
    )
    one, eight = one_device_run.losses(), eight.losses()
    assert sorted(one) == list(range(1, 21))
    assert max(abs(one[s] - eight[s]) for s in one) < 1e-5


@pytest.mark.slow
def test_two_processes_reproduce_one(tmp_path, one_device_run):
    """2 processes of 2 devices each (checkpointing together) give the 1-device run's losses."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = [
        _Cli(
            tmp_path / "multi", *MESH_RUN, "--config.train.checkpoint_every=5", "--config.distributed.enabled=True",
            f"--config.distributed.coordinator_address=127.0.0.1:{port}",
            "--config.distributed.num_processes=2", f"--config.distributed.process_id={process_id}",
            devices=2, env={"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}, log_name=f"process_{process_id}.log",
        )
        for process_id in range(2)
    ]
    try:
        for p in processes:
            p.output()
    finally:
        for p in processes:
            p.stop()
    single, multi = one_device_run.losses(), logged_losses(tmp_path / "multi")
    assert sorted(multi) == list(range(1, 21))
    assert max(abs(single[s] - multi[s]) for s in single) < 1e-5
    assert 20 in [int(d) for d in os.listdir(tmp_path / "multi" / "checkpoints") if d.isdigit()]


def _wait_for_checkpoint(workdir, process, minimum_step):
    """Polls until a finalised checkpoint at or beyond `minimum_step` exists; returns its step."""
    deadline = time.time() + 240
    while time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()] \
            if os.path.isdir(os.path.join(workdir, "checkpoints")) else []
        if steps and max(steps) >= minimum_step:
            return max(steps)
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


def _wait_for_first_loss(workdir, process):
    """Polls until the run has logged a training loss (so it has compiled its train step)."""
    path = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while not (os.path.exists(path) and '"train/loss"' in open(path).read()):
        assert process.poll() is None and time.time() < deadline, "the run logged no loss"
        time.sleep(0.05)


def _wait_for_loss_at(workdir, process, step):
    """Polls until the run has logged its training loss of `step`."""
    path, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + 240
    while not (os.path.exists(path) and re.search(rf'{{"step": {step}, [^\n]*"train/loss"', open(path).read())):
        assert process.poll() is None and time.time() < deadline, f"the run logged no loss at step {step}"
        time.sleep(0.02)


def _logged_once(workdir):
    """Whether metrics.jsonl holds one record per (step, train or eval)."""
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    logged = [(r["step"], [k for k in r if k != "step"][0].split("/")[0]) for r in records]
    return len(logged) == len(set(logged))


@pytest.mark.slow
def test_kill_minus_nine_or_ctrl_c_then_the_same_command_matches_an_uninterrupted_run(tmp_path):
    """Killed at a checkpoint >= 40, or Ctrl-C at a random step: the rerun resumes from the last checkpoint (the
    one Ctrl-C saved), its losses equal an uninterrupted run's, and every step is logged once although the steps
    after the checkpoint ran twice."""
    steps = 120
    args = (f"--config.train.steps={steps}", "--config.train.log_every=1", "--config.train.checkpoint_every=20")
    straight, killed, interrupted = _Cli(tmp_path / "straight", *args), None, None
    try:
        _wait_for_first_loss(tmp_path / "straight", straight.process)  # the other runs load its compiled programs
        killed = _Cli(tmp_path / "killed", *args)  # while the straight run goes on
        interrupted = _Cli(tmp_path / "interrupted", *args)
        _wait_for_checkpoint(tmp_path / "killed", killed.process, minimum_step=40)
        killed.process.send_signal(signal.SIGKILL)
        _wait_for_loss_at(tmp_path / "interrupted", interrupted.process, random.randint(5, 80))
        interrupted.process.send_signal(signal.SIGINT)
        killed.process.wait()
        assert killed.process.returncode == -signal.SIGKILL  # killed mid-run, not finished
        interrupted.process.wait(timeout=120)
        stopped = interrupted.log.read_text()
        assert interrupted.process.returncode == 130, stopped[-3000:]
        resumed = {
            name: _Cli(tmp_path / name, *args, log_name=f"{name}_resumed.log") for name in ("killed", "interrupted")
        }
        resumed = {name: cli.output() for name, cli in resumed.items()}
        straight_losses = straight.losses()
    finally:
        for cli in (straight, killed, interrupted):
            if cli:
                cli.stop()
    match = re.search(r"resumed from .* step (\d+)", resumed["killed"])
    assert match and 40 <= int(match.group(1)) < steps
    saved = int(re.search(r"Ctrl-C: saved checkpoint at step (\d+); rerun the same command", stopped).group(1))
    assert "Traceback" not in stopped and f"{tmp_path}/interrupted/checkpoints step {saved}" in resumed["interrupted"]
    for name in ("killed", "interrupted"):
        assert _logged_once(tmp_path / name), name
        losses = logged_losses(tmp_path / name)
        assert sorted(losses) == sorted(straight_losses) == list(range(1, steps + 1))
        assert max(abs(straight_losses[s] - losses[s]) for s in straight_losses) < 1e-6, name


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    args = ("--config.train.steps=100000", "--config.train.log_every=100", "--config.train.checkpoint_every=50")
    command, env = _cli(tmp_path, *args)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = _wait_for_checkpoint(tmp_path, process, minimum_step=50)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-3000:]
    assert "SIGTERM: saved checkpoint" in output
    saved = [int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
    assert max(saved) >= first


@pytest.mark.slow
def test_mistyped_override_is_an_error(tmp_path):
    command, env = _cli(tmp_path, "--config.optim.lrr=0.1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "lrr" in result.stderr
