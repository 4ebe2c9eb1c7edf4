"""Judges, registered by kind: which of two answers to a prompt is better, and (for some) a score per answer.

- `rule`: a registered function of (prompt, answer), the checkable rule of a task (`rl.rewards`).
- `reward_model`: a reward model's value of each answer; `implicit_reward`: a DPO policy's implicit reward.
- `single`: an LLM rates each answer 1-10 (MT-Bench), optionally shown the prompt set's reference answer.
- `pairwise`: an LLM compares the two answers under one of LLMBar's strategies, in both orders.

Every comparison is made in both orders ("x" the system, "y" the other): the verdicts of the two orders, mapped
back to x and y, agree (that verdict) or not (a tie). Scoring judges see no order, so theirs always agree; an LLM
judge's do not, which is what positional agreement measures. A reply that cannot be parsed is None, never
guessed: a comparison with one is left out of win rates and counted as unparsable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import numpy as np
from ml_collections import ConfigDict

from alignjax.data import DataError
from alignjax.eval import judge_prompts, model_scores
from alignjax.eval.prompt_sets import REFERENCE_FIELDS, EvalPrompt
from alignjax.eval.verdicts import parse_pairwise, parse_score
from alignjax.generation import Generator, make_generator
from alignjax.rl.rewards import reward_function

_TO_XY = {"a": "x", "b": "y", "tie": "tie", None: None}  # the first order shows x as Output (a)
_SWAPPED = {"a": "y", "b": "x", "tie": "tie", None: None}  # the second order shows y as Output (a)
_OUTCOME = {"x": 1.0, "tie": 0.5, "y": 0.0}


@dataclasses.dataclass(frozen=True)
class PairVerdict:
    """A judge's verdicts on one prompt's answers x and y, one per order, each "x", "y", "tie" or None
    (unparsable), with the judge's replies (LLM judges) or scores (scoring judges)."""

    first: str | None
    second: str | None
    evidence: tuple = ()

    @property
    def parsed(self) -> bool:
        return self.first is not None and self.second is not None

    @property
    def agrees(self) -> bool:
        """Both orders parsed and gave the same verdict (positional agreement)."""
        return self.parsed and self.first == self.second

    @property
    def outcome(self) -> float | None:
        """1 when x is better, 0 when y is, 0.5 for a tie or orders that disagree; None when unparsable."""
        if not self.parsed:
            return None
        return _OUTCOME[self.first] if self.agrees else 0.5


def _by_score(score_x: float, score_y: float) -> str | None:
    if np.isnan(score_x) or np.isnan(score_y):
        return None
    return "x" if score_x > score_y else "y" if score_y > score_x else "tie"


class Judge(Protocol):
    """What a judge offers: one PairVerdict per prompt for answers x against y, and `close` to release its model
    or connections. `scores_answers`: it also scores each answer (`ScoringJudge.scores`)."""

    kind: str
    scores_answers: bool

    def compare(self, prompts: list[EvalPrompt], xs: list[str], ys: list[str]) -> list[PairVerdict]: ...

    def close(self) -> None: ...


Score = Callable[[list[EvalPrompt], list[str]], np.ndarray]


class ScoringJudge:
    """A judge that scores each answer and compares by score (the same verdict in both orders). Each list of
    answers is scored once: the baseline's answers are compared with every system's.

    Args:
      kind: the judge's kind, as `judge(kind)` names it.
      score: the scores of a list of answers, float [N] (NaN where an LLM's rating could not be read).
      release: called by `close` (an LLM judge's generator).
    """

    scores_answers = True

    def __init__(self, kind: str, score: Score, release: Callable[[], None] | None = None):
        self.kind, self._score, self._release = kind, score, release
        self._memo: dict[tuple, np.ndarray] = {}

    def scores(self, prompts: list[EvalPrompt], answers: list[str]) -> np.ndarray:
        key = (tuple(p.key for p in prompts), tuple(answers))
        if key not in self._memo:
            self._memo[key] = np.asarray(self._score(prompts, answers), np.float64)
        return self._memo[key]

    def compare(self, prompts: list[EvalPrompt], xs: list[str], ys: list[str]) -> list[PairVerdict]:
        scores_x, scores_y = self.scores(prompts, xs), self.scores(prompts, ys)
        verdicts = [_by_score(a, b) for a, b in zip(scores_x, scores_y)]
        return [PairVerdict(v, v, (float(a), float(b))) for v, a, b in zip(verdicts, scores_x, scores_y)]

    def close(self) -> None:
        self._memo.clear()
        if self._release is not None:
            self._release()


def _rule(spec: ConfigDict, workdir: str, name: str) -> ScoringJudge:
    rule = reward_function(spec.function)
    return ScoringJudge("rule", lambda prompts, answers: [rule(p.value, a) for p, a in zip(prompts, answers)])


def _reward_model(spec: ConfigDict, workdir: str, name: str) -> ScoringJudge:
    return ScoringJudge("reward_model", model_scores.reward_model_scorer(spec.model, spec.max_length))


def _implicit_reward(spec: ConfigDict, workdir: str, name: str) -> ScoringJudge:
    scorer = model_scores.implicit_reward_scorer(spec.model, spec.reference_model, spec.beta, spec.max_length)
    return ScoringJudge("implicit_reward", scorer)


def _generator(spec: ConfigDict, workdir: str, name: str) -> Generator:
    return make_generator(spec.generation, workdir, field=f"eval.judges.{name}.generation")


def single_judge(spec: ConfigDict, workdir: str, name: str, generator: Generator | None = None) -> ScoringJudge:
    """MT-Bench-style grading, "Rating: [[N]]" from 1 to 10, through `generator` (default: `spec.generation`'s)."""
    generator = generator if generator is not None else _generator(spec, workdir, name)

    def rate(prompts: list[EvalPrompt], answers: list[str]) -> np.ndarray:
        chats = [
            judge_prompts.single_messages(p.instruction, a, p.reference if spec.reference else "")
            for p, a in zip(prompts, answers)
        ]
        parsed = [parse_score(reply) for reply in generator.texts(chats)]
        return np.asarray([np.nan if s is None else s for s in parsed], np.float64)

    return ScoringJudge("single", rate, release=generator.close)


class PairwiseJudge:
    """An LLM compares two answers under one of LLMBar's strategies, in both orders, through `generator`
    (default: `spec.generation`'s)."""

    kind = "pairwise"
    scores_answers = False

    def __init__(self, spec: ConfigDict, workdir: str, name: str, generator: Generator | None = None):
        self.spec = spec
        self.generator = generator if generator is not None else _generator(spec, workdir, name)

    def auxiliaries(self, prompts: list[EvalPrompt]) -> tuple[list[str], list[str]]:
        """The judge's own questions and reference answer per prompt (empty where the strategy has none); with
        `reference=True`, the prompt set's reference answers instead of the judge's."""
        wanted = judge_prompts.AUXILIARIES[self.spec.strategy]
        metrics_budget, reference_budget = self.spec.auxiliary_max_tokens
        metrics = reference = [""] * len(prompts)
        if "metrics" in wanted:
            chats = [judge_prompts.metrics_messages(p.instruction) for p in prompts]
            metrics = self.generator.texts(chats, max_tokens=metrics_budget, temperature=0.0)
        if "reference" in wanted and self.spec.reference:  # the prompt set's own (a user's held-out answers)
            missing = next((p.where for p in prompts if not p.reference), None)
            if missing is not None:
                raise DataError(
                    f"{missing}: the judge takes its reference answers from the prompt set (reference=True), and "
                    f"this row has none; give it one of the fields {', '.join(REFERENCE_FIELDS)}"
                )
            reference = [p.reference for p in prompts]
        elif "reference" in wanted:
            chats = [judge_prompts.reference_messages(p.instruction) for p in prompts]
            reference = self.generator.texts(chats, max_tokens=reference_budget, temperature=0.0)
        return metrics, reference

    def compare(self, prompts: list[EvalPrompt], xs: list[str], ys: list[str]) -> list[PairVerdict]:
        metrics, reference = self.auxiliaries(prompts)
        chats = []
        for p, x, y, m, r in zip(prompts, xs, ys, metrics, reference):
            for a, b in ((x, y), (y, x)):
                chats.append(judge_prompts.pairwise_messages(self.spec.strategy, p.instruction, a, b, m, r))
        replies = self.generator.texts(chats)
        return [
            PairVerdict(_TO_XY[parse_pairwise(first)], _SWAPPED[parse_pairwise(second)], (first, second))
            for first, second in zip(replies[0::2], replies[1::2])
        ]

    def close(self) -> None:
        self.generator.close()


# kind -> builder(spec, workdir, name): the judges a config selects by `judge(kind)`
JUDGES: dict[str, Callable[[ConfigDict, str, str], Judge]] = {
    "rule": _rule,
    "reward_model": _reward_model,
    "implicit_reward": _implicit_reward,
    "single": single_judge,
    "pairwise": PairwiseJudge,
}


def make_judge(name: str, spec: ConfigDict, workdir: str) -> Judge:
    """The judge `spec` describes (`config.judge`), named `name` in the config."""
    return JUDGES[spec.kind](spec, workdir, name)
