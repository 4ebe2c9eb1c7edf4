"""Recipes on the builtin toy task: the shared SFT stage, then preference learning, reward models, on-policy RL,
best-of-n, DITTO and evaluation after it.

The SFT stage learns the toy operations (reverse / upper-case / sort a word) from a sloppy demonstrator whose
answers mostly stop one character early, so its greedy answers mostly break the rule "answer exactly". Every
later recipe starts from its export (`previous_stage`), and every one of them shares it (and its workdir), so it
is trained once. `smoke=True` gives a seconds-long version of each, for tests.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax.configs import ditto as ditto_recipe
from alignjax.configs.base import base_config, run_dir
from alignjax.data import sft_data_config
from alignjax.eval import eval_section, judge, prompt_set, system
from alignjax.generation import generation_config
from alignjax.kinds import offline_kind
from alignjax.losses import loss_config, objective
from alignjax.rl.config import rl_section


def sft_stage(smoke: bool = False) -> ConfigDict:
    """SFT from scratch on the builtin sloppy demonstrations (`toy_demonstrations`)."""
    config = base_config()
    config.data.path = "toy_demonstrations"
    config.model.init.max_position_embeddings = 4096  # trained on 32 tokens; room for few-shot and judge prompts
    config.train.update(steps=3000, eval_every=0, checkpoint_every=1000, workdir=run_dir("toy_sft"))
    if smoke:
        config.train.update(
            steps=2, log_every=1, checkpoint_every=0, answers_to_print=1, rule_prompts=0, workdir=run_dir("smoke_sft")
        )
        config.data.max_examples = 256
    return config


def _after_sft(config: ConfigDict, smoke: bool) -> ConfigDict:
    """`config` as the stage after the SFT stage, starting from its export (which follows workdir overrides)."""
    config.previous_stage = sft_stage(smoke)
    config.model.path = config.previous_stage.train.get_ref("workdir") + "/hf"
    return config


def preference(loss: str, smoke: bool = False, name: str = "", **hyperparameters) -> ConfigDict:
    """Offline training with `loss` on the builtin preference task (`toy_preferences`), after the SFT stage.

    The policy (and the reference, for losses that need one) starts from the SFT stage's export; held-out
    preference accuracy and the share of greedy answers that follow the task's rule are reported before and after.

    Args:
        loss: a registered loss name; the data take its example format, the run its kind.
        smoke: a 2-step run of both stages (tests).
        name: the recipe's name in its workdir (`runs/<name>_toy`, see `run_dir`); empty: the loss's.
        **hyperparameters: the loss's hyperparameters that differ from its defaults.
    """
    name = name or loss
    config = _after_sft(base_config(), smoke)
    config.kind = offline_kind(loss)
    config.loss = loss_config(loss, **hyperparameters)
    config.data.update(path="toy_preferences", format=objective(loss).format)
    config.optim.update(lr=1e-4, warmup_steps=20, schedule="constant")
    config.train.update(steps=300, log_every=25, eval_every=100, checkpoint_every=100, workdir=run_dir(f"{name}_toy"))
    if smoke:
        config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0, answers_to_print=1, rule_prompts=0)
        config.train.workdir = run_dir(f"smoke_{name}")
        config.data.max_examples = 64
    return config


def reward_model(smoke: bool = False) -> ConfigDict:
    """A Bradley-Terry reward model on the preference task: the SFT model with a new scalar head."""
    config = preference("bradley_terry", smoke)
    config.optim.lr = 3e-4
    return config


def rl(algorithm: str, smoke: bool = False, loss: str | None = None, **overrides) -> ConfigDict:
    """On-policy training with `algorithm` on the toy task's prompts, rewarded by `toy_exact`, after the SFT stage.

    Args:
      algorithm: a registered RL algorithm.
      smoke: a 2-iteration run of both stages (tests).
      loss: the offline loss of algorithms that train with one (expert iteration: "sft"; online DPO, RSO: "dpo"...).
      **overrides: `rl` fields or `rl.algorithm` hyperparameters that differ from the defaults.
    """
    config = _after_sft(base_config(), smoke)
    config.kind = "rl"
    if loss is None:
        del config["loss"]
    else:
        config.loss = loss_config(loss)
    config.data.update(path="toy_preferences", format="pairs")
    config.rl = rl_section(algorithm, max_prompt_len=24, max_new_tokens=8, **overrides)
    config.optim.update(lr=1e-4, warmup_steps=5, schedule="constant")
    config.train.update(steps=60, log_every=5, eval_every=10, checkpoint_every=20, workdir=run_dir(f"{algorithm}_toy"))
    if smoke:
        config.rl.update(prompts_per_iteration=8, eval_prompts=8)
        config.train.update(steps=2, log_every=1, eval_every=1, checkpoint_every=0, answers_to_print=1)
        config.train.workdir = run_dir(f"smoke_{algorithm}")
    return config


def best_of_n(smoke: bool = False) -> ConfigDict:
    """Best-of-n: the SFT model samples, the toy reward model (`reward_model`, trained first if its export is
    missing) selects, and `toy_exact` says whether the kept answers are right."""
    config = base_config()
    config.kind = "best_of_n"
    reward_stage = reward_model(smoke)
    config.previous_stage = reward_stage
    config.model.path = reward_stage.previous_stage.train.get_ref("workdir") + "/hf"  # the SFT model samples
    del config["loss"]
    config.data.update(path="toy_preferences", format="pairs")
    config.rl = rl_section(None, max_prompt_len=24, max_new_tokens=8)
    config.rl.reward.model_path = reward_stage.train.get_ref("workdir") + "/hf"
    config.best_of_n = ConfigDict(dict(sizes=(1, 2, 4, 8, 16), gold_function="toy_exact"))
    config.train.workdir = run_dir("best_of_n_toy")
    if smoke:
        config.rl.eval_prompts = 8
        config.train.workdir = run_dir("smoke_best_of_n")
    return config


def dpo_then_reward_model(smoke: bool = False) -> ConfigDict:
    """One chain of the stages an evaluation reads: SFT -> DPO (the quick start's) -> a reward model from SFT.
    Returns the reward model's stage, whose `previous_stage` is DPO's."""
    dpo = preference("dpo", smoke, name="dpo", beta=0.1, sft_weight=1.0)  # the quick start's DPO stage
    reward = reward_model(smoke)
    reward.previous_stage = dpo  # each stage is skipped when its export exists
    reward.model.path = dpo.previous_stage.train.get_ref("workdir") + "/hf"
    return reward


def evaluation_config(kind: str, previous_stage: ConfigDict | None, **section) -> ConfigDict:
    """A config of `kind` (eval or meta_eval) with an `eval` section (`eval_section(**section)`), after
    `previous_stage` when given; it trains nothing, so it has no data, loss or optimizer."""
    config = base_config()
    for unused in ("data", "loss", "reference", "optim"):
        del config[unused]
    config.kind = kind
    if previous_stage is not None:
        config.previous_stage = previous_stage
    config.eval = eval_section(**section)
    return config


def evaluation(smoke: bool = False) -> ConfigDict:
    """The toy stages evaluated: the DPO model and few-shot prompting of the SFT model against the SFT model, on the
    held-out prompts, judged by the task's rule and by the toy reward model; greedy answers, as the training runs'
    rule rate measures them."""
    reward = dpo_then_reward_model(smoke)
    dpo = reward.previous_stage
    config = evaluation_config("eval", reward, prompts=prompt_set("builtin", "toy_preferences", "test"), baseline="sft")
    sft_model = dpo.model.get_ref("path")
    answers = dict(max_tokens=12, temperature=0.0, max_slots=64)
    config.eval.systems.sft = system(generation_config(model=sft_model, **answers))
    config.eval.systems.dpo = system(generation_config(model=dpo.train.get_ref("workdir") + "/hf", **answers))
    config.eval.systems.sft_2shot = system(
        generation_config(model=sft_model, **answers),
        prompting="few_shot",
        shots=2,
        pool=prompt_set("builtin", "toy_instructions", "train"),
    )
    config.eval.judges.rule = judge("rule", function="toy_exact")
    config.eval.judges.reward_model = judge("reward_model", model=reward.train.get_ref("workdir") + "/hf")
    config.train.workdir = run_dir("eval_toy")
    if smoke:
        config.eval.prompts.max_prompts = 16
        config.eval.update(resamples=200, plots=False)
        config.train.workdir = run_dir("smoke_eval")
    return config


def ditto(smoke: bool = False, name: str = "ditto", demonstrations: int = 8, **rl_fields) -> ConfigDict:
    """DITTO for the toy task's user who wants answers in parentheses (`toy_user_style`), from the SFT stage's
    model, then the comparison of zero-shot, few-shot, SFT and DITTO on 200 held-out prompts by the style rule
    (`toy_style`) and by style and correctness (`toy_style_exact`).

    The sizes are the reference implementation's (10 samples per demonstration, 4 iterations of 10 DPO steps of
    3 pairs per demonstration, beta 0.05); the learning rates are the toy model's (measured: the warm-up at 3e-4
    stops near step 55 with ~11% of held-out answers in style, and DITTO at 1e-3 moves further, where 1e-4 barely
    moved it).

    Args:
      smoke: seconds-long stages (tests).
      name: the DITTO stage's run name (`runs/<name>_toy`; its comparison's `runs/<name>_toy_eval`); ablations
        share the SFT warm-up on the same demonstrations (`runs/ditto_toy_sft`).
      demonstrations: how many of the user's 8 demonstrations to learn from (the first ones).
      **rl_fields: `rl` fields or `rl.algorithm` hyperparameters that differ (the ablation switches,
        samples_per_prompt, ...).
    """
    sft = sft_stage(smoke)
    sft_model = sft.train.get_ref("workdir") + "/hf"
    data = sft_data_config(seq_len=32, batch_size=demonstrations)
    data.update(source="builtin", path="toy_user_style", max_examples=demonstrations)
    prefix = "smoke_" if smoke else ""
    subset = "" if demonstrations == 8 else f"_{demonstrations}"
    warmup = ditto_recipe.warmup(
        sft_model, data, run_dir(f"{prefix}ditto_toy_sft{subset}"), lr=3e-4, steps=60, stop_below_loss=0.5
    )
    warmup.previous_stage = sft
    warmup.train.rule_prompts = 0 if smoke else 200
    rl_fields = dict(pairs_per_step=3 * demonstrations, **rl_fields)
    config = ditto_recipe.ditto(
        warmup,
        run_dir(f"{prefix}{name}_toy"),
        lr=1e-3,
        iterations=4,
        prompts_per_iteration=demonstrations,
        max_prompt_len=24,
        max_new_tokens=12,
        **rl_fields,
    )
    config.rl.reward.function = "toy_style"  # logged: the share of samples (and of greedy held-out answers) in style
    prompts = prompt_set("builtin", "toy_user_style", "test")
    comparison = ditto_recipe.comparison(
        config,
        sft_model,
        prompts,
        run_dir(f"{prefix}{name}_toy_eval"),
        shots=demonstrations,
        max_tokens=12,
        max_slots=64,
    )
    comparison.eval.judges.style = judge("rule", function="toy_style")
    comparison.eval.judges.style_exact = judge("rule", function="toy_style_exact")
    if smoke:
        ditto_recipe.shrink_to_smoke(comparison, prompts=16)
    return comparison
