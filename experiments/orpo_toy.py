"""ORPO (Hong et al. 2024): SFT on the chosen answer plus an odds-ratio preference term, no reference, on the built-in
toy preference task after its SFT stage.

    python -m alignjax.train --config experiments/orpo_toy.py
    python -m alignjax.train --config experiments/orpo_toy.py:smoke      # 2 steps of each stage, for tests

The SFT stage and the task are those of experiments/dpo_toy.py; the run reports how often greedy answers to the
held-out prompts follow the task's rule before and after, and the loss's held-out metrics.
"""

from alignjax.train.defaults import toy_preference_config


def get_config(arg=None):
    return toy_preference_config("orpo", arg, beta=0.1)
