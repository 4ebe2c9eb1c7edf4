"""On-policy methods on the built-in toy task, rewarded by a program, after the shared SFT stage.

    python -m alignjax.run --config experiments/rl_toy.py                 # GRPO
    python -m alignjax.run --config experiments/rl_toy.py:ppo             # any method of METHODS below
    python -m alignjax.run --config experiments/rl_toy.py:ppo,smoke       # 2 iterations after 2 SFT steps, for tests
    python -m alignjax.run --config experiments/rl_toy.py:ppo --config.rl.algorithm.kl_target=1.0   # adaptive KL

The SFT stage learns from a sloppy demonstrator whose answers mostly stop one character early. The method then
samples answers to `toy_preferences` prompts and is rewarded 1 for exactly the right answer (`toy_exact`), less 1
for an answer that never ends. It reports the mean reward of greedy answers to 200 held-out prompts (at the start
and every 10 iterations) and their exact KL to the SFT model, and saves the curve to
runs/<method>_toy/curve.png.
"""

from alignjax.configs import parse_variant, toy

# method -> what differs from the defaults of its `rl` section (alignjax.rl.algorithms):
METHODS = {
    # Shao et al. 2024: four answers per prompt, advantages normalised within each group, k3 KL (beta 0.04) in the loss
    "grpo": dict(),
    # Ouyang et al. 2022 / Ziegler et al. 2019: a value model (the SFT decoder with a new head), GAE, k1 KL penalty in
    # the reward, 2 epochs x 2 mini-batches per rollout
    "ppo": dict(epochs=2, minibatches=2),
    "rloo": dict(),  # Ahmadian et al. 2024: leave-one-out baselines over the k answers, KL in the reward
    "expert_iteration": dict(loss="sft", min_reward=1.0),  # SFT on each prompt's best answer, if exactly right
    "online_dpo": dict(loss="dpo"),  # Guo et al. 2024: the best over the worst of four on-policy answers, DPO
    # Liu et al. 2023: eight SFT answers per prompt, two accepted by rejection sampling towards
    # pi_sft * exp(r / beta), the better one chosen, DPO
    "rso": dict(loss="dpo", samples_per_prompt=8),
}


def get_config(arg=None):
    variant = parse_variant(arg, METHODS, default="grpo")
    return toy.rl(variant.method, variant.smoke, **METHODS[variant.method])
