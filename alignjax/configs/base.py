"""The config every experiment starts from: each section with its valid keys and sensible defaults.

Experiment files take `base_config()` and override what they change, so every experiment has the same keys
and `--config.x.y=v` overrides work the same everywhere.
"""

from ml_collections import ConfigDict

from alignjax.data import sft_data_config
from alignjax.losses import loss_config, objective


def base_config() -> ConfigDict:
    config = ConfigDict()
    config.seed = 0
    config.model = ConfigDict(
        dict(
            path="",  # a Hugging Face model directory; empty: a new model of shape `init`, trained from scratch
            tokenizer="",  # a tokenizer directory or hub id, or "builtin:NAME"; empty: model.path's (or the data's)
            dtype="float32",  # compute dtype: float32 | bfloat16
            param_dtype="float32",  # master weights
            remat=False,
            init=dict(
                architecture="LlamaForCausalLM",
                hidden_size=64,
                intermediate_size=176,
                num_layers=2,
                num_heads=4,
                num_kv_heads=2,
                rope_theta=10000.0,
                tie_word_embeddings=True,
            ),
        )
    )
    config.data = sft_data_config(seq_len=32, batch_size=32)  # the builtin toy task unless overridden
    config.loss = loss_config("sft")  # the name and the loss's hyperparameters (see alignjax.losses)
    config.reference = ConfigDict(
        dict(
            path="",  # the frozen reference of losses that need one; empty: the policy's starting point
            precompute=False,  # True: reference log-probs once over the data before training, then drop the model
        )
    )
    config.optim = ConfigDict(
        dict(
            lr=3e-3,
            b1=0.9,
            b2=0.95,
            eps=1e-8,
            weight_decay=0.0,
            warmup_steps=50,
            schedule="cosine",  # cosine | linear | constant
            min_lr_ratio=0.1,
            clip_norm=1.0,  # 0 disables
            grad_accum=1,
        )
    )
    config.train = ConfigDict(
        dict(
            steps=1000,
            log_every=50,
            eval_every=250,
            checkpoint_every=250,
            keep_checkpoints=2,
            workdir="/tmp/alignjax/run",
            export_hf=True,
            num_samples=4,
            rule_prompts=200,  # held-out prompts whose greedy answers are checked by a builtin task's rule; 0: none
        )
    )
    config.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # -1: all remaining devices
    config.distributed = ConfigDict(dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1))
    return config


TOY_WORKDIR = "/tmp/alignjax"


def toy_sft_stage(arg=None) -> ConfigDict:
    """SFT from scratch on the builtin sloppy demonstrations (`toy_demonstrations`): the stage that preference
    experiments on the toy task start from. Every toy preference experiment shares it (and its workdir), so it is
    trained once. `arg="smoke"` gives a 2-step version for tests."""
    config = base_config()
    config.data.path = "toy_demonstrations"
    config.train.update(steps=3000, eval_every=0, checkpoint_every=1000, workdir=f"{TOY_WORKDIR}/toy_sft")
    if arg == "smoke":
        config.train.update(
            steps=2, log_every=1, checkpoint_every=0, num_samples=1, rule_prompts=0, workdir=f"{TOY_WORKDIR}/smoke_sft"
        )
        config.data.max_examples = 256
    return config


def toy_preference_config(loss: str, arg=None, **hyperparameters) -> ConfigDict:
    """An experiment on the builtin preference task (`toy_preferences`) with `loss`, after the SFT stage.

    The policy (and the reference, for losses that need one) starts from the SFT stage's export; held-out
    preference accuracy and the share of greedy answers that follow the task's rule are reported before and after.

    Args:
        loss: a registered loss name; the data take its example format.
        arg: the experiment variant: None, or "smoke" for a 2-step run of both stages (tests).
        **hyperparameters: the loss's hyperparameters that differ from its defaults.
    """
    if arg not in (None, "", "smoke"):
        raise ValueError(f"unknown variant {arg!r}; expected '' or 'smoke'")
    config = base_config()
    config.previous_stage = toy_sft_stage(arg)
    config.model.path = config.previous_stage.train.get_ref("workdir") + "/hf"  # follows workdir overrides
    config.loss = loss_config(loss, **hyperparameters)
    config.data.update(path="toy_preferences", format=objective(loss).format)
    config.optim.update(lr=1e-4, warmup_steps=20, schedule="constant")
    config.train.update(steps=300, log_every=25, eval_every=100, checkpoint_every=100, workdir=f"{TOY_WORKDIR}/{loss}_toy")
    if arg == "smoke":
        config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0, num_samples=1, rule_prompts=0)
        config.train.workdir = f"{TOY_WORKDIR}/smoke_{loss}"
        config.data.max_examples = 64
    return config
