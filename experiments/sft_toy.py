"""SFT of a tiny Llama, trained from scratch on the built-in toy instruction task (the embedded default).

    python -m alignjax.train --config experiments/sft_toy.py
    python -m alignjax.train --config experiments/sft_toy.py:smoke      # 2 steps, for tests

Runs offline in under a minute on 2 CPU cores; held-out exact match climbs from 0 to over 90%.
"""

from alignjax.train.defaults import base_config


def get_config(arg=None):
    config = base_config()
    config.train.update(steps=3000, eval_every=500, checkpoint_every=500, workdir="/tmp/alignjax/sft_toy")
    if arg == "smoke":
        config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0, num_samples=1)
        config.data.max_examples = 256
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; expected '' or 'smoke'")
    return config
