"""GRPO on the built-in toy task, rewarded by a program: SFT, then GRPO.

    python -m alignjax.train --config experiments/grpo_toy.py
    python -m alignjax.train --config experiments/grpo_toy.py:smoke      # 2 iterations after 2 SFT steps, for tests

Four answers per prompt, advantages normalised within each group, the clipped objective plus beta = 0.04 times
the k3 KL estimate to the SFT model in the loss. Reward `toy_exact`: 1 for exactly the right answer. Reports
the greedy held-out reward and KL; the curve goes to /tmp/alignjax/grpo_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("grpo", arg)
