"""Evaluation: systems answering a prompt set, judges comparing them (rules, reward models, LLM judges with
LLMBar's strategies), meta-evaluation of judges on labelled pairs, win rates with intervals, length analysis,
and reports with plots. Two kinds of run: `eval` and `meta_eval` (see `evaluate`); the config section is built
with `config.eval_section`, `system` and `judge`."""

from alignjax.eval.config import check_eval_section, eval_section, judge, model_dirs, prompt_set, system
from alignjax.eval.evaluate import run_eval, run_meta_eval

__all__ = [
    "check_eval_section",
    "eval_section",
    "judge",
    "model_dirs",
    "prompt_set",
    "run_eval",
    "run_meta_eval",
    "system",
]
