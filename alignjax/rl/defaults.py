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
from alignjax.train.defaults import TOY_WORKDIR, base_config, toy_sft_stage


def toy_rl_config(algorithm: str, arg=None, loss: str | None = None, **overrides) -> ConfigDict:
    """An on-policy experiment with `algorithm` on the toy task.

    Args:
      algorithm: one of `rl.updates.ALGORITHMS`.
      arg: the variant: None, or "smoke" for a 2-iteration run of both stages (tests).
      loss: the offline loss of expert iteration ("sft") or online DPO / RSO ("dpo", "slic", ...).
      **overrides: `rl` fields or `rl.algorithm` hyperparameters that differ from the defaults.
    """
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown variant {arg!r}; expected '' or 'smoke'")
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
