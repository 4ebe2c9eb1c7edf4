"""Best-of-n sampling on the built-in toy task: the SFT model answers, the toy reward model picks, for n = 1..16.

    python -m alignjax.run --config experiments/best_of_n_toy.py
    python -m alignjax.run --config experiments/best_of_n_toy.py:smoke      # tiny stages, 8 prompts, for tests

Trains (or reuses) the shared SFT stage and the Bradley–Terry reward model of experiments/reward_toy.py, samples
16 answers to each of the 200 held-out prompts from the SFT model, and for n in 1, 2, 4, 8, 16 keeps the answer the
reward model scores highest among the first n. Prints the mean reward-model score of the kept answers and how
many are exactly right (`toy_exact`, the gold reward); the table goes to runs/best_of_n_toy/best_of_n.json
and the plot to best_of_n.png.
"""

from alignjax.configs import parse_variant, toy


def get_config(arg=None):
    return toy.best_of_n(parse_variant(arg).smoke)
