"""SFT then DPO of a tiny Llama on the built-in toy preference task: the README's main job.

    python -m alignjax.train --config experiments/dpo_toy.py
    python -m alignjax.train --config experiments/dpo_toy.py:smoke      # 2 steps of each stage, for tests

Stage 1 trains a model from scratch on sloppy demonstrations (`toy_demonstrations`: 70% of the answers stop one
character early), so its greedy answers mostly break the rule "answer exactly". Stage 2 runs DPO from that model
on pairs that prefer the complete answer (`toy_preferences`), with the SFT model as the frozen reference. Both
stages print how often greedy answers to 200 held-out prompts follow the rule; stage 2 also reports held-out
preference accuracy. Offline, a few minutes on 2 CPU cores.
"""

from alignjax.train.defaults import toy_preference_config


def get_config(arg=None):
    return toy_preference_config("dpo", arg, beta=0.1, sft_weight=1.0)
