"""The config every experiment starts from: each section with its valid keys and sensible defaults.

Experiment files take `base_config()` (or a recipe of `configs.toy` built on it) and override what they change,
so every experiment has the same keys and `--config.x.y=v` overrides work the same everywhere.
"""

import os

from ml_collections import ConfigDict

from alignjax.data import sft_data_config
from alignjax.losses import loss_config

RUNS_ENV = "ALIGNJAX_RUNS"  # the directory that holds every run's workdir; default ./runs


def run_dir(name: str) -> str:
    """The workdir of the run `name`: `$ALIGNJAX_RUNS/name`, else `runs/name` under the current directory, as an
    absolute path. Each user (each clone) gets their own, so nobody resumes another person's checkpoint."""
    return os.path.abspath(os.path.join(os.environ.get(RUNS_ENV, "runs"), name))


def base_config() -> ConfigDict:
    config = ConfigDict()
    config.kind = "sft"  # the kind of run, one of alignjax.kinds.names(): sft, preference, reward, rl, best_of_n
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
                max_position_embeddings=0,  # the context it is exported with; 0: data.seq_len
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
            workdir="",  # checkpoints, metrics, export; empty: run_dir(<experiment file>-<variant>), set by the CLI
            resume_from="",  # "": the workdir's latest checkpoint; a step of it; or another run's checkpoint dir
            export_hf=True,
            answers_to_print=4,  # held-out prompts whose greedy answers are printed at the end
            rule_prompts=200,  # held-out prompts whose greedy answers are checked by a builtin task's rule; 0: none
            stop_below_loss=0.0,  # stop (and export) once a step's training loss is below this; 0: never
        )
    )
    config.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # -1: all remaining devices
    config.distributed = ConfigDict(dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1))
    return config
