"""The prompts an evaluation asks, read as training data is read, and the few-shot pool of demonstrations.

A prompt row needs a `prompt` (a string or chat messages; any other fields are kept out of the way), so SFT,
preference and prompt-only files all serve as prompt sets. A reference answer, when a row has one (`reference`,
else an SFT row's `completion` or a DITTO row's `demonstration`, else a pair's `chosen`), is what a single-answer
judge may be shown.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ml_collections import ConfigDict

from alignjax.data.schemas import prompt_example, sft_messages
from alignjax.data.sources import read_rows

REFERENCE_FIELDS = ("reference", "completion", "demonstration", "chosen")


@dataclasses.dataclass(frozen=True)
class EvalPrompt:
    """One evaluation prompt.

    Attributes:
      value: the row's `prompt` as given (what a rule judge sees, as a reward function does in training).
      messages: the prompt as checked chat messages.
      reference: the row's reference answer, or "" when it has none.
      where: the row's origin ("prompts.jsonl line 3"), for errors.
    """

    value: Any
    messages: list[dict[str, str]]
    reference: str
    where: str

    @property
    def key(self) -> str:
        """The prompt's identity across files: its messages as canonical JSON."""
        return prompt_key(self.messages)

    @property
    def instruction(self) -> str:
        """The prompt as a judge reads it: the one user message, or the conversation with its speakers."""
        if len(self.messages) == 1:
            return self.messages[0]["content"]
        return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in self.messages)


def prompt_key(messages: list[dict[str, str]]) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], ensure_ascii=False)


def _reference(row: dict) -> str:
    for field in REFERENCE_FIELDS:
        if isinstance(row.get(field), str):
            return row[field]
    return ""


def load_prompts(spec: ConfigDict) -> list[EvalPrompt]:
    """The prompt set `spec` (`config.prompt_set`) names, in file order, the first `max_prompts` when > 0.

    Raises:
      DataError: naming the file and row of a row without a usable `prompt`.
    """
    prompts = []
    for row in read_rows(spec.source, spec.path, spec.split):
        if spec.max_prompts and len(prompts) >= spec.max_prompts:
            break
        example = prompt_example(row.value, row.where)
        prompts.append(EvalPrompt(example.value, example.messages, _reference(row.value), row.where))
    return prompts


def load_demonstrations(spec: ConfigDict) -> list[list[dict[str, str]]]:
    """The few-shot pool: SFT rows (`messages`, or `prompt` and `completion` or `demonstration`) as conversations.

    Raises:
      DataError: naming the file and row of a row that is not an SFT row.
    """
    return [sft_messages(row.value, row.where) for row in read_rows(spec.source, spec.path, spec.split)]
