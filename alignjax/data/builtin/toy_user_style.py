"""toy_user_style: a user who wants every toy answer in parentheses, shown by eight demonstrations (DITTO's task).

Why it exists: DITTO aligns a model to one user from a handful of demonstrations, and its toy experiment needs a
style that is easy to check and that the starting model never produces. The starting model is the quick start's
SFT model of the toy task (`toy_preferences`), which answers "reverse: kqzt" with "tzqk" (or, mostly, "tzq": it
learned from a sloppy demonstrator). This user writes "(tzqk)": the exact result, wrapped in parentheses.

- "train": `NUM_DEMONSTRATIONS` rows {"prompt", "demonstration"}: the user's demonstrations, on toy prompts of a
  draw of their own (`DATA_SEED`).
- "test": the 200 held-out prompts of `toy_preferences`, with the answer this user would write, for evaluation.

`follows_style` checks the style alone (the answer is wrapped in parentheses), `follows_style_exactly` the style
and the result ("(tzqk)").
"""

from __future__ import annotations

import functools

from alignjax.data.builtin import toy_instructions, toy_preferences

NAME = "toy_user_style"
SPLITS = ("train", "test")
EVAL_SPLIT = "test"
DATA_SEED = 20261208
NUM_DEMONSTRATIONS = 8


def styled(answer: str) -> str:
    """The user's way of writing an answer."""
    return f"({answer})"


def follows_style(prompt: str, answer: str) -> bool:
    """Whether `answer` is written the user's way: wrapped in parentheses (whitespace around it ignored)."""
    answer = answer.strip()
    return len(answer) >= 2 and answer[0] == "(" and answer[-1] == ")"


def follows_style_exactly(prompt: str, answer: str) -> bool:
    """Whether `answer` is the operation's exact result written the user's way."""
    return answer.strip() == styled(toy_preferences.expected_answer(prompt))


@functools.cache
def _splits() -> dict[str, list[dict]]:
    demonstrations = toy_instructions.generate(DATA_SEED, num_train=NUM_DEMONSTRATIONS, num_test=0)["train"]
    held_out = toy_preferences.demonstration_rows("test")
    return {
        split: [{"prompt": row["prompt"], "demonstration": styled(row["completion"])} for row in rows]
        for split, rows in (("train", demonstrations), ("test", held_out))
    }


def rows(split: str) -> list[dict]:
    """Rows {"prompt", "demonstration"}: the user's 8 demonstrations ("train") or held-out prompts ("test")."""
    return _splits()[split]
