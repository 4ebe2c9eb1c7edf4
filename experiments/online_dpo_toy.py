"""Online DPO on the built-in toy task: four on-policy answers per prompt, the best-rewarded over the worst as a
DPO pair, every iteration.

    python -m alignjax.train --config experiments/online_dpo_toy.py
    python -m alignjax.train --config experiments/online_dpo_toy.py:smoke      # 2 iterations, for tests

Starts from the shared SFT stage, which is also DPO's reference; reward `toy_exact` (prompts whose answers all
score the same give no pair). Reports the greedy held-out reward and KL; the curve goes to
/tmp/alignjax/online_dpo_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("online_dpo", arg, loss="dpo")
