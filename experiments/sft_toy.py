"""SFT of a tiny Llama, trained from scratch on the built-in toy instruction task.

    python -m alignjax.run --config experiments/sft_toy.py
    python -m alignjax.run --config experiments/sft_toy.py:smoke      # 2 steps, for tests

Runs offline in under a minute on 2 CPU cores; held-out exact match climbs from 0 to over 90%.
"""

from alignjax.configs import base_config, parse_variant


def get_config(arg=None):
    variant = parse_variant(arg)
    config = base_config()
    config.train.update(steps=3000, eval_every=500, checkpoint_every=500)  # workdir: runs/sft_toy
    if variant.smoke:
        config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0, answers_to_print=1)
        config.data.max_examples = 256
    return config
