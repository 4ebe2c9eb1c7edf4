"""Reward models and DPO policies on Anthropic HH-RLHF (harmless-base test, 2,312 pairs): how often each scores
the human-chosen answer above the rejected one, with 95% bootstrap intervals, beside how often the chosen answer
is simply the longer one and what a length-only judge scores, and the correlation of each score with length.

    python -m alignjax.run --config experiments/eval_hh.py \
        --config.eval.judges.reward_model.model=/path/to/reward_model \
        --config.eval.judges.implicit_reward.model=/path/to/dpo_policy \
        --config.eval.judges.implicit_reward.reference_model=/path/to/its_sft_model
    python -m alignjax.run --config experiments/eval_hh.py       # the toy stages' models (trained when missing)
    python -m alignjax.run --config experiments/eval_hh.py:smoke # 16 pairs, 2-step toy models, for tests

The implicit reward of a DPO policy is beta * log(pi(y|x) / pi_ref(y|x)), its `beta` the one it was trained with.
By default the judges are the quick start's toy models, so the command runs offline on real data; they never saw
English dialogue (a character-level tokenizer, 32-token training rows), so expect chance-level accuracy from
them, and point the judges at real models for numbers that mean something.
"""

from alignjax.configs import parse_variant, run_dir, toy
from alignjax.eval import judge

LOCAL_HH = "../shared/data/hh_rlhf_harmless_base_test.jsonl.gz"  # the project's copy of the test split


def get_config(arg=None):
    variant = parse_variant(arg)
    reward = toy.dpo_then_reward_model(variant.smoke)
    dpo = reward.previous_stage
    config = toy.evaluation_config("meta_eval", reward, labelled=LOCAL_HH, labelled_format="pairs")
    config.eval.on_bad_row = "skip"  # a few pairs have an empty answer: counted in the report
    length = 256 if variant.smoke else 2048  # tokens scored per conversation: the answer and the prompt's end
    config.eval.judges.reward_model = judge("reward_model", model=reward.train.get_ref("workdir") + "/hf")
    config.eval.judges.implicit_reward = judge(
        "implicit_reward",
        model=dpo.train.get_ref("workdir") + "/hf",
        reference_model=dpo.model.get_ref("path"),
        beta=dpo.loss.get_ref("beta"),
    )
    for name in ("reward_model", "implicit_reward"):
        config.eval.judges[name].max_length = length
    config.train.workdir = run_dir("eval_hh")
    if variant.smoke:
        config.eval.update(max_pairs=16, resamples=200, plots=False)
        config.train.workdir = run_dir("smoke_eval_hh")
    return config
