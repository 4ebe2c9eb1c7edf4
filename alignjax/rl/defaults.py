"""On-policy experiments on the builtin toy task, after the shared SFT stage.

The SFT stage (`train.defaults.toy_sft_stage`) learns the toy operations from a sloppy demonstrator, so its
greedy answers mostly stop one character early. The on-policy stage answers `toy_preferences` prompts and is
rewarded by `toy_exact` (1 for exactly the operation's result, else 0), a programmatic reward: the mean reward of
greedy answers to the 200 held-out prompts is the share that are exactly right.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax.losses import loss_config
from alignjax.rl.config import rl_section
from alignjax.train.defaults import TOY_WORKDIR, base_config, toy_preference_config, toy_sft_stage


def _check_variant(arg) -> None:
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown variant {arg!r}; expected '' or 'smoke'")


def toy_rl_config(algorithm: str, arg=None, loss: str | None = None, **overrides) -> ConfigDict:
    """An on-policy experiment with `algorithm` on the toy task.

    Args:
      algorithm: one of `rl.updates.ALGORITHMS`.
      arg: the variant: None, or "smoke" for a 2-iteration run of both stages (tests).
      loss: the offline loss of expert iteration ("sft") or online DPO / RSO ("dpo", "slic", ...).
      **overrides: `rl` fields or `rl.algorithm` hyperparameters that differ from the defaults.
    """
    _check_variant(arg)
    config = base_config()
    config.previous_stage = toy_sft_stage(arg)
    config.model.path = config.previous_stage.train.get_ref("workdir") + "/hf"
    if loss is None:
        del config["loss"]
    else:
        config.loss = loss_config(loss)
    config.data.update(path="toy_preferences", format="pairs")
    config.rl = rl_section(algorithm, max_prompt_len=24, max_new_tokens=8, **overrides)
    config.optim.update(lr=1e-4, warmup_steps=5, schedule="constant")
    config.train.update(steps=60, log_every=5, eval_every=10, checkpoint_every=20, workdir=f"{TOY_WORKDIR}/{algorithm}_toy")
    if arg == "smoke":
        config.rl.update(prompts_per_iteration=8, eval_prompts=8)
        config.train.update(steps=2, log_every=1, eval_every=1, checkpoint_every=0, num_samples=1)
        config.train.workdir = f"{TOY_WORKDIR}/smoke_{algorithm}"
    return config


def toy_best_of_n_config(arg=None) -> ConfigDict:
    """Best-of-n on the toy task: the SFT model samples, the toy reward model (experiments/reward_toy.py, trained
    first if its export is missing) selects, and `toy_exact` says whether the kept answers are right."""
    _check_variant(arg)
    config = base_config()
    reward_stage = toy_preference_config("bradley_terry", arg)
    reward_stage.optim.lr = 3e-4
    config.previous_stage = reward_stage
    config.model.path = reward_stage.previous_stage.train.get_ref("workdir") + "/hf"  # the SFT model samples
    del config["loss"]
    config.data.update(path="toy_preferences", format="pairs")
    config.rl = rl_section(None, max_prompt_len=24, max_new_tokens=8)
    config.rl.reward.model_path = reward_stage.train.get_ref("workdir") + "/hf"
    config.best_of_n = ConfigDict(dict(sizes=(1, 2, 4, 8, 16), gold_function="toy_exact"))
    config.train.workdir = f"{TOY_WORKDIR}/best_of_n_toy"
    if arg == "smoke":
        config.rl.eval_prompts = 8
        config.train.workdir = f"{TOY_WORKDIR}/smoke_best_of_n"
    return config
