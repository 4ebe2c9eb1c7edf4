"""Everything checked before the first stage of a run starts, so that a mistake costs a second, not a stage.

Each stage's config is checked by its kind (`kinds`); each model directory a stage reads is checked for a config,
weights and (for the model trained) a tokenizer, unless an earlier stage of the run will write it (the SFT stage's
export that DPO starts from); each stage's workdir is checked writable.
"""

from __future__ import annotations

import os

from ml_collections import ConfigDict

from alignjax import kinds
from alignjax.config_errors import require
from alignjax.eval import model_dirs as eval_model_dirs
from alignjax.models import check_model_dir
from alignjax.train.workdir import check_writable


def _model_dirs(stage: ConfigDict) -> list[tuple[str, str, bool]]:
    """(field, path, whether it must bring a tokenizer) of every model directory the stage reads."""
    m = stage.model
    dirs = [("model.path", m.path, not m.tokenizer)]  # model.tokenizer (a directory or hub id) goes to transformers
    if "reference" in stage:
        dirs.append(("reference.path", stage.reference.path, False))
    if "rl" in stage:
        dirs.append(("rl.reward.model_path", stage.rl.reward.model_path, False))
        algorithm = stage.rl.get("algorithm") or {}  # best-of-n's rl section has none
        dirs.append(("rl.algorithm.critic_path", algorithm.get("critic_path", ""), False))
    if "eval" in stage:
        dirs += [(field, path, True) for field, path in eval_model_dirs(stage.eval)]
    return [(field, path, tokenizer) for field, path, tokenizer in dirs if path]


def _written_by(path: str, earlier: list[ConfigDict]) -> bool:
    """Whether `path` lies in the workdir of one of the `earlier` stages (which will write it)."""
    path = os.path.abspath(path)
    return any(path.startswith(os.path.abspath(stage.train.workdir) + os.path.sep) for stage in earlier)


def check_stages(chain: list[ConfigDict]) -> None:
    """Raises ConfigError (in one line) for the first problem of any stage in `chain` (earliest stage first)."""
    for number, stage in enumerate(chain):
        require("kind" in stage, f"stage {number + 1}: the config has no `kind`; expected one of {kinds.names()}")
        require(bool(stage.train.workdir), f"stage {number + 1} ({stage.kind}): train.workdir is empty; set one")
        kinds.get(stage.kind).check(stage)
        for field, path, tokenizer in _model_dirs(stage):
            if not _written_by(path, chain[:number]):
                check_model_dir(path, field=field, tokenizer=tokenizer)
        check_writable(stage.train.workdir)
