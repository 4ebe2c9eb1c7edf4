"""What an answer is worth: Python reward functions registered by name, or a trained reward model.

A reward function takes one prompt (the data row's `prompt`: a string or a list of chat messages) and one
answer (the decoded text, stop token removed) and returns a float; `rl.reward.function` names it in a config.
A reward model (`rl.reward.model_path`, a `*ForSequenceClassification` directory or an alignjax export) scores
the tokens instead, at each answer's last token, as it was trained to.

Both are wrapped as a `Scorer`, so the rollout code sees one interface: `scorer(prompts, answers, rows)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from alignjax.data.builtin import stories_user_style, toy_preferences, toy_user_style
from alignjax.models import reward_model_from_pretrained
from alignjax.models.reward import last_token_values

RewardFn = Callable[[Any, str], float]
_REWARD_FUNCTIONS: dict[str, RewardFn] = {}


def register_reward(name: str, fn: RewardFn) -> None:
    """Makes `fn(prompt, answer) -> float` selectable as `rl.reward.function=name`."""
    if name in _REWARD_FUNCTIONS:
        raise ValueError(f"a reward function named {name!r} is already registered")
    _REWARD_FUNCTIONS[name] = fn


def reward_function(name: str) -> RewardFn:
    if name not in _REWARD_FUNCTIONS:
        raise ValueError(f"rl.reward.function={name!r} is not registered; registered: {sorted(_REWARD_FUNCTIONS)}")
    return _REWARD_FUNCTIONS[name]


def reward_function_names() -> list[str]:
    return sorted(_REWARD_FUNCTIONS)


def _toy_exact(prompt: Any, answer: str) -> float:
    """1 when the answer is exactly the toy operation's result (the builtin task's rule), else 0."""
    return float(toy_preferences.follows_rule(prompt, answer))


register_reward("toy_exact", _toy_exact)
# DITTO's toy user (`toy_user_style`): the answer in parentheses; and in parentheses and exactly right
register_reward("toy_style", lambda prompt, answer: float(toy_user_style.follows_style(prompt, answer)))
register_reward("toy_style_exact", lambda prompt, answer: float(toy_user_style.follows_style_exactly(prompt, answer)))
# DITTO's stories reader (`stories_user_style`): Pip the frog in the story; the reader's fixed ending
register_reward("stories_pip", lambda prompt, answer: float(stories_user_style.mentions_pip(prompt, answer)))
register_reward("stories_ending", lambda prompt, answer: float(stories_user_style.ends_like_the_reader(prompt, answer)))


class Scorer:
    """Scores N answers: `scorer(prompts, answers, rows) -> rewards_N` (float32 numpy).

    Args to `__call__`:
      prompts: each answer's prompt as the data gave it.
      answers: the decoded answers.
      rows: the rollout's token rows on device (`tokens`, `positions`, `segment_ids`, [N', L]), prompt and answer;
        N' >= N, with rows of padding after the N answers.
    """

    def __call__(self, prompts: list, answers: list[str], rows: dict) -> np.ndarray:
        raise NotImplementedError


class FunctionScorer(Scorer):
    """A registered reward function applied to each (prompt, answer) on the host."""

    def __init__(self, name: str):
        self.name = name
        self.fn = reward_function(name)

    def __call__(self, prompts, answers, rows):
        return np.asarray([self.fn(p, a) for p, a in zip(prompts, answers)], np.float32)


@functools.partial(jax.jit, static_argnames="graphdef")
def _last_token_rewards(params, rows: dict, *, graphdef) -> jax.Array:
    values_NL = nnx.merge(graphdef, params)(rows["tokens"], rows["positions"], rows["segment_ids"])
    return last_token_values(values_NL, rows["segment_ids"])


class RewardModelScorer(Scorer):
    """A reward model's value at each answer's last token (its stop token, when it has one)."""

    def __init__(self, path: str, mesh, dtype: str = "float32"):
        self.name = path
        model = reward_model_from_pretrained(path, dtype=dtype, param_dtype=dtype, mesh=mesh)
        self.graphdef, self.params = nnx.split(model)

    def __call__(self, prompts, answers, rows):
        rewards_N = jax.device_get(_last_token_rewards(self.params, rows, graphdef=self.graphdef))
        return np.asarray(rewards_N[: len(answers)], np.float32)  # the rows may carry padding rows after the answers


def make_scorer(reward_cfg, mesh, dtype: str = "float32") -> Scorer:
    """The scorer `rl.reward` selects: the reward model at `model_path` when set, else the named function."""
    if reward_cfg.model_path:
        return RewardModelScorer(reward_cfg.model_path, mesh, dtype)
    return FunctionScorer(reward_cfg.function)
