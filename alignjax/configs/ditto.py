"""DITTO's recipe for any model and demonstrations file: the SFT warm-up, DITTO itself, and the comparison of the
four systems of the paper on held-out prompts.

    warmup(...)      an `sft` stage on the demonstrations (their `demonstration` is the SFT completion), stopped
                     early by `train.stop_below_loss`, as the reference implementation's SFT is -> pi_0;
    ditto(...)       the `rl` stage with algorithm `ditto` from pi_0 (also its frozen reference);
    comparison(...)  an `eval` stage: zero-shot and few-shot prompting of the starting model (all demonstrations in
                     context), the warm-up's SFT model and DITTO's, answering held-out prompts, judged by the given
                     judges against `baseline`.

Each stage is skipped when its export already exists (`alignjax.run`), so a comparison reuses trained stages and
ablations share their warm-up. DITTO's data and the few-shot pool refer to the warm-up's data fields, so one
override of the demonstrations file (`--config.previous_stage.previous_stage.data.path=...`) moves all three.
Experiment files (`experiments/ditto*.py`) fill in the model, the data and the sizes.
"""

from __future__ import annotations

from ml_collections import ConfigDict, FieldReference

from alignjax.configs.base import base_config
from alignjax.eval import eval_section, prompt_set, system
from alignjax.generation import generation_config
from alignjax.losses import loss_config
from alignjax.rl.config import rl_section


def warmup(
    model_path: str | FieldReference, data: ConfigDict, workdir: str, *, lr: float, steps: int, stop_below_loss: float
) -> ConfigDict:
    """The SFT warm-up on the demonstrations `data` (a data section of `prompt` + `demonstration` rows) from the
    model at `model_path` (a FieldReference shares it with the comparison's prompting systems): at most `steps`
    steps at `lr`, stopping once a step's loss is below `stop_below_loss`."""
    config = base_config()
    config.model.path = model_path
    config.data = ConfigDict(data.to_dict())
    config.data.format = "sft"
    config.optim.update(lr=lr, warmup_steps=0, schedule="constant")
    config.train.update(
        steps=steps, log_every=1, eval_every=0, checkpoint_every=0, stop_below_loss=stop_below_loss, workdir=workdir
    )
    return config


def ditto(warmup_stage: ConfigDict, workdir: str, *, lr: float, iterations: int, **rl_fields) -> ConfigDict:
    """DITTO after `warmup_stage`, on its demonstrations: `iterations` iterations at `lr`; `rl_fields` are `rl`
    fields or `rl.algorithm` hyperparameters (e.g. samples_per_prompt, minibatches = steps per iteration, the
    ablation switches)."""
    config = base_config()
    config.kind = "rl"
    config.previous_stage = warmup_stage
    config.model.path = warmup_stage.train.get_ref("workdir") + "/hf"
    config.data = ConfigDict(warmup_stage.data.to_dict())
    for field in ("source", "path", "split"):  # one file: an override of the warm-up's moves DITTO's with it
        config.data[field] = warmup_stage.data.get_ref(field)
    config.loss = loss_config("dpo", beta=0.05)  # the paper's
    # no reward trains DITTO; a reward function, when set, only logs how the samples fare
    config.rl = rl_section(
        "ditto", **{**dict(samples_per_prompt=10, minibatches=10, missing_eos_penalty=0.0), **rl_fields}
    )
    config.optim.update(lr=lr, warmup_steps=0, schedule="constant")
    config.train.update(steps=iterations, log_every=1, eval_every=iterations, checkpoint_every=1, workdir=workdir)
    return config


def comparison(
    ditto_stage: ConfigDict,
    base_model: str | FieldReference,
    prompts: ConfigDict,
    workdir: str,
    shots: int,
    **answering,
) -> ConfigDict:
    """The paper's comparison on held-out `prompts`: zero-shot and few-shot (`shots` demonstrations in context:
    all of them, as the paper's few-shot baseline; 0: none, e.g. for a base model, which is prompted with one
    text) prompting of `base_model`, SFT on the demonstrations (the warm-up) and DITTO, each answering greedily
    (`answering`: generation fields such as max_tokens and template), each compared with SFT; judges are added by
    the caller."""
    warmup_stage = ditto_stage.previous_stage
    config = base_config()
    for unused in ("data", "loss", "reference", "optim"):
        del config[unused]
    config.kind = "eval"
    config.previous_stage = ditto_stage
    config.eval = eval_section(prompts=prompts, baseline="sft")
    answering = dict(temperature=0.0, **answering)
    demonstrations = warmup_stage.data
    pool = prompt_set()
    for field in ("source", "path", "split"):  # the demonstrations' file, whatever the warm-up is overridden to
        pool[field] = demonstrations.get_ref(field)
    systems = config.eval.systems
    systems.zero_shot = system(generation_config(model=base_model, **answering))
    if shots:
        systems.few_shot = system(
            generation_config(model=base_model, **answering), prompting="few_shot", shots=shots, pool=pool
        )
    systems.sft = system(generation_config(model=warmup_stage.train.get_ref("workdir") + "/hf", **answering))
    systems.ditto = system(generation_config(model=ditto_stage.train.get_ref("workdir") + "/hf", **answering))
    config.train.workdir = workdir
    return config


def shrink_to_smoke(comparison: ConfigDict, prompts: int) -> None:
    """Seconds-long stages for tests, in place: 2 warm-up steps, 2 DITTO iterations of 2 steps on 2 samples per
    demonstration, and `prompts` held-out prompts (evaluated by DITTO and compared)."""
    ditto_stage = comparison.previous_stage
    ditto_stage.previous_stage.train.steps = 2
    ditto_stage.train.update(steps=2, checkpoint_every=1)
    ditto_stage.rl.update(samples_per_prompt=2, minibatches=2, eval_prompts=prompts)
    comparison.eval.prompts.max_prompts = prompts
    comparison.eval.update(resamples=200, plots=False)
