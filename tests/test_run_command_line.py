"""The command line as a user meets it: mistakes end in one line and exit status 2 before anything heavy runs,
each experiment gets a workdir of its own under the user's directory, and a trained model can be evaluated
without training."""

import json
import os

import pytest

from alignjax.config_errors import ConfigError
from alignjax.configs import toy
from alignjax.configs.command_line import parse_command_line
from alignjax.run import main, run

from conftest import REPO_ROOT

SFT_TOY = os.path.join(REPO_ROOT, "experiments", "sft_toy.py")
PREFERENCE_TOY = os.path.join(REPO_ROOT, "experiments", "preference_toy.py")


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no experiment config given: pass one with --config, e.g. python -m alignjax.run --config"),
        (["--config=nope.py"], "--config=nope.py: no such file 'nope.py'"),
        ([f"--config={SFT_TOY}", "--config.optim.lrr=0.1"], "optim has no field 'lrr'; did you mean 'optim.lr'?"),
        ([f"--config={SFT_TOY}", "--config.trian.steps=1"], "the config has no field 'trian'; did you mean 'train'?"),
        ([f"--config={SFT_TOY}", "--config.optim.lr=abc"], "--config.optim.lr=abc: could not convert string to float"),
        ([f"--config={SFT_TOY}", "--config.data.batch_size=-4"], "data.batch_size=-4 is invalid; expected an integer"),
        ([f"--config={PREFERENCE_TOY}:dpoo"], "unknown variant 'dpoo': expected a comma-separated list of 'smoke'"),
        ([f"--config={SFT_TOY}", "--config.model.path=/no/such/model"], "model.path='/no/such/model': no such dir"),
        ([f"--config={SFT_TOY}", "--config.train.steps=-1"], "train.steps must be >= 0 (0 evaluates without training)"),
    ],
)
def test_a_mistake_is_one_line_and_exit_status_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["alignjax.run", *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in out + err
    assert not os.path.exists(tmp_path / "runs")  # nothing was started


def test_the_default_workdir_is_the_experiments_own_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("ALIGNJAX_RUNS", raising=False)
    for clone in ("a", "b"):  # two clones, or two users: two workdirs
        os.makedirs(tmp_path / clone)
        monkeypatch.chdir(tmp_path / clone)
        config = parse_command_line(["alignjax.run", f"--config={SFT_TOY}:smoke"])
        assert config.train.workdir == str(tmp_path / clone / "runs" / "sft_toy-smoke")
        preference = parse_command_line(["alignjax.run", "--config", PREFERENCE_TOY])
        assert preference.train.workdir == str(tmp_path / clone / "runs" / "dpo_toy")


def test_a_model_directory_an_earlier_stage_will_write_is_not_required_yet(tmp_path):
    config = toy.preference("dpo", smoke=True)
    config.previous_stage.train.workdir = str(tmp_path / "sft")  # its export, model.path, does not exist yet
    config.train.workdir = str(tmp_path / "dpo")
    config.reference.path = str(tmp_path / "missing_reference")
    with pytest.raises(ConfigError, match=r"^reference.path='.*missing_reference': no such directory"):
        run(config)


@pytest.mark.slow
def test_steps_zero_evaluates_a_trained_model_without_training(tmp_path, previous_stages, capsys):
    config = toy.preference("dpo", smoke=True)
    sft = config.previous_stage.train  # trained here, or by the experiment tests before; model.path is its export
    sft.workdir = str(previous_stages / os.path.basename(sft.workdir))
    config.train.update(workdir=str(tmp_path), steps=0)
    final = run(config)
    assert 0.0 <= final["rewards/accuracy"] <= 1.0
    assert not os.listdir(tmp_path / "checkpoints") and not os.path.exists(tmp_path / "hf")
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == [0] and "eval/rewards/accuracy" in records[0]
    assert "[dpo] held-out preference accuracy: " in capsys.readouterr().out
