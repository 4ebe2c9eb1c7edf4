"""Expert iteration on the built-in toy task: sample four answers per prompt, keep the best if it is right, SFT on it.

    python -m alignjax.train --config experiments/expert_iteration_toy.py
    python -m alignjax.train --config experiments/expert_iteration_toy.py:smoke   # 2 iterations, for tests

Starts from the shared SFT stage; reward `toy_exact` (1 for exactly the right answer), so `min_reward=1` keeps
only correct answers. Reports the greedy held-out reward and KL to the SFT model; the curve goes to
/tmp/alignjax/expert_iteration_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("expert_iteration", arg, loss="sft", min_reward=1.0)
