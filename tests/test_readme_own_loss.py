"""The README's "your own loss" example, as written there: an experiment file outside the repository registers a
loss and trains with it through the command line."""

import json
import os
import re

import pytest

from alignjax.run import main

from conftest import REPO_ROOT


def _readme_example() -> str:
    readme = open(os.path.join(REPO_ROOT, "README.md")).read()
    section = readme[readme.index("## Your own loss") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_an_experiment_file_outside_the_repository_trains_its_own_loss(tmp_path, previous_stages, monkeypatch):
    path = tmp_path / "my_experiments" / "margin_dpo.py"
    os.makedirs(path.parent)
    path.write_text(_readme_example())
    monkeypatch.chdir(tmp_path)
    status = main([
        "alignjax.run", f"--config={path}:smoke", f"--config.previous_stage.train.workdir={previous_stages}/smoke_sft",
        f"--config.train.workdir={tmp_path / 'run'}",
    ])
    assert status == 0
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2]
    saved = json.load(open(tmp_path / "run" / "config.json"))
    assert saved["loss"] == {"name": "margin_dpo", "beta": 0.1, "gamma": 0.5}
