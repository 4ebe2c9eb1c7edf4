"""A Bradley–Terry reward model on the built-in toy preference task: the SFT model with a scalar head, trained
to score the complete answer above the one cut short.

    python -m alignjax.train --config experiments/reward_toy.py
    python -m alignjax.train --config experiments/reward_toy.py:smoke      # 2 steps of each stage, for tests

Starts from the SFT stage of experiments/dpo_toy.py (a new head on its decoder), reports held-out pairwise
accuracy (`rewards/accuracy`), and exports a `LlamaForSequenceClassification` that transformers loads.
"""

from alignjax.train.defaults import toy_preference_config


def get_config(arg=None):
    config = toy_preference_config("bradley_terry", arg)
    config.optim.lr = 3e-4
    return config
