"""DITTO killed with SIGKILL during an iteration resumes, by the same command, to the losses of an uninterrupted
run: the policy, the iteration, and the memory of every iteration's samples are in the checkpoint."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import logged_losses, save_toy_chat_model

CONFIG = '''
from alignjax.configs import toy


def get_config():
    config = toy.ditto(smoke=True).previous_stage  # DITTO after its warm-up, as experiments/ditto_toy.py:smoke
    warmup = config.previous_stage
    del warmup["previous_stage"]  # the warm-up starts from a tiny random model rather than the toy SFT stage's
    warmup.model.path = {model!r}
    config.train.update(steps=10, checkpoint_every=1, eval_every=0, export_hf=False, answers_to_print=0)
    config.rl.minibatches = 8  # DPO steps per iteration: long enough iterations to be killed in one
    return config
'''


def _start(config_path, runs, workdir, log):
    """The README's command line for the config file, with its stages' workdirs under `runs`."""
    command = [sys.executable, "-m", "alignjax.run", f"--config={config_path}", f"--config.train.workdir={workdir}"]
    env = {**os.environ, "ALIGNJAX_RUNS": str(runs), "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}
    return subprocess.Popen(command, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)


def _wait_for(done, process, log, timeout=300):
    """Polls until `done()` holds while `process` runs."""
    deadline = time.monotonic() + timeout
    while not done():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out after {timeout} s"
        time.sleep(0.02)


def _checkpoints(workdir):
    """The iterations whose checkpoints are finalised (orbax renames a checkpoint's directory when it is)."""
    directory = workdir / "checkpoints"
    return [int(d) for d in os.listdir(directory) if d.isdigit()] if directory.is_dir() else []


@pytest.mark.slow
def test_kill_minus_nine_during_an_iteration_then_rerun_matches_an_uninterrupted_run(tmp_path):
    save_toy_chat_model(tmp_path / "base", max_positions=64)
    config_path = tmp_path / "ditto_config.py"
    config_path.write_text(CONFIG.format(model=str(tmp_path / "base")))
    runs = tmp_path / "runs"
    straight = _start(config_path, runs, tmp_path / "straight", tmp_path / "straight.log")
    killed = resumed = None
    try:
        # the earlier stages are trained once, by the straight run; the killed run starts from their exports
        log = tmp_path / "straight.log"
        _wait_for(lambda: "stage 2/2 (rl)" in log.read_text(), straight, log)
        killed = _start(config_path, runs, tmp_path / "killed", tmp_path / "killed.log")
        _wait_for(lambda: max(_checkpoints(tmp_path / "killed"), default=0) >= 2, killed, tmp_path / "killed.log")
        killed.send_signal(signal.SIGKILL)  # in a later iteration, before the tenth
        killed.wait()
        assert killed.returncode == -signal.SIGKILL
        resumed = _start(config_path, runs, tmp_path / "killed", tmp_path / "resumed.log")
        for process, log in ((straight, "straight.log"), (resumed, "resumed.log")):
            assert process.wait(timeout=300) == 0, (tmp_path / log).read_text()[-3000:]
    finally:
        for process in (straight, killed, resumed):
            if process and process.poll() is None:
                process.kill()
    resumed_log = (tmp_path / "resumed.log").read_text()
    assert "resumed from" in resumed_log, resumed_log[-3000:]
    expected, losses = logged_losses(tmp_path / "straight"), logged_losses(tmp_path / "killed")
    assert sorted(expected) == sorted(losses) == list(range(1, 11))
    assert max(abs(expected[i] - losses[i]) for i in expected) < 1e-6
