"""The toy stages evaluated: DPO and few-shot prompting of the SFT model, each against the SFT model, on the 200
held-out prompts of the builtin task, judged by the task's rule (is the answer exactly right?) and by the toy
reward model.

    python -m alignjax.run --config experiments/eval_toy.py          # trains what is missing, then evaluates
    python -m alignjax.run --config experiments/eval_toy.py:smoke    # 2-step stages, 16 prompts, for tests

Runs the SFT, DPO and reward-model stages first unless their exports exist (the quick start's SFT and DPO runs
are these), then writes runs/eval_toy/report.json, report.md, answers/, judgements/ and plots: win rates with
95% bootstrap intervals, length-controlled win rates, the reward model's agreement with the rule.
"""

from alignjax.configs import parse_variant, toy


def get_config(arg=None):
    return toy.evaluation(parse_variant(arg).smoke)
