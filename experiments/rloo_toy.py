"""RLOO (REINFORCE leave-one-out) on the built-in toy task, rewarded by a program: SFT, then RLOO.

    python -m alignjax.train --config experiments/rloo_toy.py
    python -m alignjax.train --config experiments/rloo_toy.py:smoke      # 2 iterations after 2 SFT steps, for tests

Four answers per prompt; each answer's baseline is the mean reward of the other three, the KL to the SFT model
(k1, summed over the answer) is subtracted from its reward. Reward `toy_exact`: 1 for exactly the right answer.
Reports the greedy held-out reward and KL; the curve goes to /tmp/alignjax/rloo_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("rloo", arg)
