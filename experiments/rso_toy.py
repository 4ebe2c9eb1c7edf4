"""RSO on the built-in toy task: answers from the SFT model, rejection-sampled towards the reward-optimal policy,
ranked into pairs, trained with DPO.

    python -m alignjax.train --config experiments/rso_toy.py
    python -m alignjax.train --config experiments/rso_toy.py:smoke      # 2 iterations, for tests

Eight candidates per prompt from the SFT model; two are accepted with probability exp((r - r_max) / beta) and the
better one is chosen. Here the reward is the programmatic `toy_exact`; with a reward model, set
`--config.rl.reward.model_path` (e.g. the export of experiments/reward_toy.py). Reports the greedy held-out
reward and KL; the curve goes to /tmp/alignjax/rso_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("rso", arg, loss="dpo", samples_per_prompt=8)
