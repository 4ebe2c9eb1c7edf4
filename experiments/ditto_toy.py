"""DITTO on the built-in toy task: a user who writes every answer in parentheses, shown by 8 demonstrations.

    python -m alignjax.run --config experiments/ditto_toy.py                 # DITTO, then the four-way comparison
    python -m alignjax.run --config experiments/ditto_toy.py:no_replay       # an ablation (see METHODS)
    python -m alignjax.run --config experiments/ditto_toy.py:smoke           # seconds-long stages, for tests

Stages (each skipped when its export exists): the quick start's SFT model of the toy task (`runs/toy_sft`), the
SFT warm-up on the 8 demonstrations ("reverse: qrdd" -> "(ddrq)"), stopped once its loss is below 0.5
(`runs/ditto_toy_sft`), DITTO for 4 iterations of 10 DPO steps on 24 pairs each, 10 samples per demonstration
(`runs/ditto_toy`), and the comparison on 200 held-out prompts (`runs/ditto_toy_eval/report.md`): zero-shot and
8-shot prompting of the SFT model, SFT on the demonstrations, and DITTO, by the share of answers in the user's
style (`toy_style`) and in style and right (`toy_style_exact`), with 95% intervals, and win rates against SFT.
"""

from alignjax.configs import parse_variant, toy

# variant -> the switches that differ from the published algorithm (rl.algorithm of `ditto`)
METHODS = {
    "ditto": dict(),
    "no_online": dict(online=False),  # sample once from pi_0, train on those samples throughout
    "update_reference": dict(update_reference=True),  # the reference of iteration t is pi_t
    "no_replay": dict(replay=False),
    "no_inter_model": dict(inter_model=False),
}


def get_config(arg=None):
    variant = parse_variant(arg, METHODS, default="ditto")
    return toy.ditto(variant.smoke, name=variant.method, **METHODS[variant.method])
