"""DPO on Anthropic HH-RLHF (harmless-base) pairs: the dialogues are split into the shared prompt and the two
final assistant answers, which the model's chat template renders.

    python -m alignjax.run --config experiments/dpo_hh.py --config.model.path=/path/to/sft_model \
        --config.data.path=/path/to/hh_rlhf_harmless_base_train.jsonl.gz
    python -m alignjax.run --config experiments/dpo_hh.py --config.model.path=/path/to/sft_model \
        --config.data.source=hf --config.data.path=Anthropic/hh-rlhf
    python -m alignjax.run --config experiments/dpo_hh.py:smoke   # a new tiny model, 2 steps on the local test split

`model.path` is the SFT model to align (it is also the frozen reference); its tokenizer needs a chat template.
"""

from alignjax.configs import base_config, parse_variant
from alignjax.losses import loss_config

LOCAL_HH = "../shared/data/hh_rlhf_harmless_base_test.jsonl.gz"  # the project's copy of the test split


def get_config(arg=None):
    variant = parse_variant(arg)
    config = base_config()
    config.kind = "preference"
    config.loss = loss_config("dpo", beta=0.1)
    config.data.update(source="json", path=LOCAL_HH, format="pairs", seq_len=512, batch_size=32, eval_fraction=0.05)
    config.data.length_bucket = 64  # each batch cut to its longest row: a few compiled shapes, little padding
    # HH-RLHF's long multi-turn dialogues: about 4-10% of pairs exceed 512 tokens of a Llama-style tokenizer (their
    # responses are cut, or the pair is dropped when the prompt alone fills them); more than that stops the run.
    config.data.max_lost_fraction = 0.1
    config.optim.update(lr=5e-7, warmup_steps=100, schedule="linear", min_lr_ratio=0.0)
    config.train.update(steps=2000, log_every=10, eval_every=200, checkpoint_every=200)  # workdir: runs/dpo_hh
    config.train.answers_to_print = 0
    if variant.smoke:
        config.model.tokenizer = "builtin:toy_instructions"  # character level: enough to run the pipeline
        config.data.update(seq_len=128, batch_size=8, max_examples=64, on_bad_row="skip")
        # 128 characters hold few dialogues: most pairs are dropped (their prompt fills them), the held-out ones with
        # them, and the rest cut. Accepted: the smoke run tests the pipeline, not the model.
        config.data.update(max_lost_fraction=1.0, eval_fraction=0.0)
        config.optim.lr = 1e-4
        config.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=0)
    return config
