"""A Bradley–Terry reward model on the built-in toy preference task: the SFT model with a scalar head, trained
to score the complete answer above the one cut short.

    python -m alignjax.run --config experiments/reward_toy.py
    python -m alignjax.run --config experiments/reward_toy.py:smoke      # 2 steps of each stage, for tests

Starts from the toy SFT stage (a new head on its decoder), reports held-out pairwise accuracy
(`rewards/accuracy`), and exports a `LlamaForSequenceClassification` that transformers loads.
"""

from alignjax.configs import parse_variant, toy


def get_config(arg=None):
    return toy.reward_model(parse_variant(arg).smoke)
