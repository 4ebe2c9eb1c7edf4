"""SLiC-HF (Zhao et al. 2023): a calibration hinge on the policy's log-probs plus cross-entropy on the chosen answer,
on the built-in toy preference task after its SFT stage.

    python -m alignjax.train --config experiments/slic_toy.py
    python -m alignjax.train --config experiments/slic_toy.py:smoke      # 2 steps of each stage, for tests

The SFT stage and the task are those of experiments/dpo_toy.py; the run reports how often greedy answers to the
held-out prompts follow the task's rule before and after, and the loss's held-out metrics.
"""

from alignjax.train.defaults import toy_preference_config


def get_config(arg=None):
    return toy_preference_config("slic", arg, delta=1.0, reg_weight=0.1)
