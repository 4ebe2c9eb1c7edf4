"""PPO with a value model on the built-in toy task, rewarded by a program: SFT, then PPO from the SFT model.

    python -m alignjax.train --config experiments/ppo_toy.py
    python -m alignjax.train --config experiments/ppo_toy.py:smoke      # 2 iterations after 2 SFT steps, for tests

The SFT stage (shared with every toy experiment) learns from a sloppy demonstrator whose answers mostly stop one
character early. PPO then samples answers to `toy_preferences` prompts and is rewarded 1 for exactly the right
answer (`toy_exact`), less 1 for an answer that never ends; a per-token KL penalty to the SFT model (k1) is part of
the reward, advantages come from GAE over a value model that starts as the SFT decoder with a new head. It
reports the mean reward of greedy answers to 200 held-out prompts (at the start and every 10 iterations), their
exact KL to the reference, and saves the curve to /tmp/alignjax/ppo_toy/curve.png.
"""

from alignjax.rl.defaults import toy_rl_config


def get_config(arg=None):
    return toy_rl_config("ppo", arg, epochs=2, minibatches=2)
