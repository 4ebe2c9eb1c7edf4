"""toy_preferences and toy_demonstrations: the toy instruction task with a sloppy demonstrator and a checkable rule.

Why it exists: the README's main job must show alignment working end to end, offline, in minutes on a CPU. The
operations are those of `toy_instructions` (reverse / upper / sort a word); the twist is who wrote the data:

- `toy_demonstrations` (SFT rows): demonstrations from a sloppy demonstrator who, `SLOPPY_RATE` of the time,
  stops one character early ("reverse: kqzt" -> "tzq"). A model fine-tuned on them learns the operations and
  also the habit: its greedy answers are mostly cut short.
- `toy_preferences` (pairwise rows): for other prompts, the complete answer is chosen over the cut-short one.

The rule the preferences follow, `follows_rule`, is checkable: an answer follows it when it is exactly the
operation's result. SFT then DPO should raise how often greedy answers follow it, and held-out preference
accuracy measures whether the policy learned which answer is preferred.

All rows come from one draw of distinct words, so no word appears in two splits or two datasets: the "test" split
(the same 200 prompts in both datasets; correct completions for SFT, pairs for preferences) is unseen in training.
"""

from __future__ import annotations

import functools

import numpy as np

from alignjax.data.builtin import toy_instructions

PREFERENCES = "toy_preferences"
DEMONSTRATIONS = "toy_demonstrations"
SPLITS = ("train", "test")
EVAL_SPLIT = "test"
DATA_SEED = 20241121
NUM_DEMONSTRATIONS = 40000
NUM_PAIRS = 8000
NUM_TEST = 200
SLOPPY_RATE = 0.7


def expected_answer(prompt: str) -> str:
    """The operation's exact result for a prompt 'task: word'."""
    task, word = prompt.split(": ", 1)
    return toy_instructions.TASKS[task](word)


def follows_rule(prompt: str, answer: str) -> bool:
    """Whether `answer` is exactly the result the prompt asks for (whitespace around it ignored)."""
    return answer.strip() == expected_answer(prompt)


@functools.cache
def _splits() -> dict[str, list[dict]]:
    rows = toy_instructions.generate(DATA_SEED, num_train=NUM_DEMONSTRATIONS + NUM_PAIRS, num_test=NUM_TEST)
    sloppy_B = np.random.default_rng([DATA_SEED, 1]).random(NUM_DEMONSTRATIONS) < SLOPPY_RATE
    demonstrations = [
        {"prompt": row["prompt"], "completion": row["completion"][:-1] if sloppy else row["completion"]}
        for row, sloppy in zip(rows["train"][:NUM_DEMONSTRATIONS], sloppy_B)
    ]

    def pair(row: dict) -> dict:
        return {"prompt": row["prompt"], "chosen": row["completion"], "rejected": row["completion"][:-1]}

    return {
        "demonstrations/train": demonstrations,
        "demonstrations/test": rows["test"],
        "preferences/train": [pair(row) for row in rows["train"][NUM_DEMONSTRATIONS:]],
        "preferences/test": [pair(row) for row in rows["test"]],
    }


def demonstration_rows(split: str) -> list[dict]:
    """SFT rows {"prompt", "completion"}: sloppy demonstrations ("train") or correct held-out answers ("test")."""
    return _splits()[f"demonstrations/{split}"]


def preference_rows(split: str) -> list[dict]:
    """Pairwise rows {"prompt", "chosen", "rejected"}: the complete answer over the one cut short."""
    return _splits()[f"preferences/{split}"]
