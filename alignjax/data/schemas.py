"""Row schemas, validated into canonical examples; every problem names the file, row and field at fault.

A `None` value counts as missing, because the `datasets` library fills the columns a row lacks with `None`.
Three kinds of example are read, each by one function:

`sft_messages`: an SFT row is either a chat, `messages`: a list of {"role": "system" | "user" | "assistant",
"content": str}, or a `prompt` and a `completion`, which become the prompt's messages and the assistant's reply:
strings (a user message and the reply), or TRL's conversational form, chat messages and a one-message list (a
`demonstration` stands for the completion, so DITTO's demonstrations file is also its SFT warm-up's data).
When a row has both, `messages` wins: hub datasets such as UltraChat carry a `prompt` column beside the
conversation. A conversation must open with a system or user message (the prompt) and contain at least one
assistant message, and no assistant message may be empty: those are the tokens the model learns from.

`preference_example`: preference rows become one canonical form, a prompt and scored responses
(`PreferenceExample`). Three row kinds are told apart by their fields:

- pairwise: `chosen` and `rejected`, with a `prompt` (a string, which becomes a user message, or a list of chat
  messages), each response a string or TRL's conversational form `[{"role": "assistant", "content": ...}]`.
  Without a `prompt` the prompt is implicit, as in Anthropic's HH-RLHF: chosen and rejected are whole dialogues
  (strings "\\n\\nHuman: ...\\n\\nAssistant: ..." or message lists) that differ only in their last assistant turn,
  which is split off as the response; the shared turns before it become the prompt's messages.
- ranked: `prompt`, `responses` (strings or one-message lists, at least two) and `scores` (numbers, higher is
  better, one per response).
- unpaired (KTO, TRL's unpaired format): `prompt`, `completion` and a boolean `label` (desirable or not).

A pair is the ranked list [chosen, rejected] with scores [1, 0], so later stages handle one form. Every response
must be non-empty, and the responses that a pair or list compares must differ: a pair of identical texts (or a
list whose scores are all equal) has no preference to learn from.

`prompt_example`: the rows of an on-policy run need only a `prompt` (a string or chat messages, as above); other
fields are ignored, so SFT and preference files serve as prompt files too.

`demonstration_example`: a DITTO row, a `prompt` (as above) and the user's `demonstration` of the answer (a string
or a one-message list, not empty).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from alignjax.data.errors import (
    ASSISTANT_FIRST,
    EMPTY_RESPONSE,
    IDENTICAL_RESPONSES,
    LENGTH_MISMATCH,
    MALFORMED_DIALOGUE,
    MISSING_FIELD,
    NO_FINAL_RESPONSE,
    PROMPTS_DIFFER,
    TIED_SCORES,
    UNKNOWN_ROLE,
    WRONG_TYPE,
    DataError,
)

ROLES = ("system", "user", "assistant")
_NOTHING_TO_LEARN = "there is no response to learn from"
SFT_EXPECTED = (
    "`messages` (a list of {'role', 'content'} dicts) or `prompt` and `completion` (strings, or chat messages and "
    "one assistant message; `demonstration` stands for `completion`)"
)
PREFERENCE_EXPECTED = (
    "`prompt` with `chosen` and `rejected` (pairwise; without `prompt`, whole dialogues that differ only in the last "
    "assistant turn), `prompt` with `responses` and `scores` (ranked), or `prompt` with `completion` and `label` "
    "(unpaired)"
)
_RESPONSE = "a string or a one-message list [{'role': 'assistant', 'content': ...}]"
# HH-RLHF's dialogue markers: each turn starts on a blank line with its speaker.
_TURN = re.compile(r"\n\n(Human|Assistant):")
_SPEAKERS = {"Human": "user", "Assistant": "assistant"}


def sft_messages(row: Any, where: str) -> list[dict[str, str]]:
    """Validates an SFT row and returns it as chat messages.

    Args:
        row: a decoded row (a dict when well formed).
        where: the row's origin for error messages, e.g. "train.jsonl line 3".

    Returns:
        [{"role": ..., "content": ...}, ...] with only those two keys.

    Raises:
        DataError: naming `where`, the field and what was expected, with the reason to count a skip under.
    """
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with {SFT_EXPECTED}, got {type_name(row)}", WRONG_TYPE)
    if row.get("messages") is not None:
        return _check_messages(row["messages"], where)
    answer = "demonstration" if row.get("completion") is None and row.get("demonstration") is not None else "completion"
    for field in ("prompt", answer):
        if row.get(field) is None:
            raise DataError(f"{where}: field {field!r} is missing; an SFT row needs {SFT_EXPECTED}", MISSING_FIELD)
    reply = _response(row[answer], where, answer, _NOTHING_TO_LEARN)
    return prompt_messages(row["prompt"], where) + [{"role": "assistant", "content": reply}]


def chat_messages(messages: Any, where: str, field: str) -> list[dict[str, str]]:
    """Checks that `messages` is a list of {"role", "content"} string dicts with known roles.

    Args:
        messages: the value of the row's field.
        where: the row's origin, quoted in errors.
        field: the field's name, quoted in errors ("messages", "prompt", "chosen").

    Returns:
        Copies of the messages with only "role" and "content".

    Raises:
        DataError: naming `where`, the message's index and key, and what was expected.
    """
    if not isinstance(messages, list):
        raise DataError(
            f"{where}: field {field!r} must be a list of {{'role', 'content'}} dicts, got {type_name(messages)}",
            WRONG_TYPE,
        )
    checked = []
    for i, message in enumerate(messages):
        item = f"{field}[{i}]"
        if not isinstance(message, dict):
            expected = f"must be a {{'role', 'content'}} dict, got {type_name(message)}"
            raise DataError(f"{where}: {item} {expected}", WRONG_TYPE)
        for key in ("role", "content"):
            if message.get(key) is None:
                raise DataError(f"{where}: field '{item}.{key}' is missing; expected a string", MISSING_FIELD)
            if not isinstance(message[key], str):
                raise DataError(
                    f"{where}: field '{item}.{key}' must be a string, got {type_name(message[key])}", WRONG_TYPE
                )
        if message["role"] not in ROLES:
            raise DataError(
                f"{where}: {item}.role={message['role']!r} is not a known role; expected one of {ROLES}", UNKNOWN_ROLE
            )
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    checked = chat_messages(messages, where, "messages")
    for i, message in enumerate(checked):
        if message["role"] == "assistant" and not message["content"].strip():
            raise DataError(f"{where}: messages[{i}] (assistant) is empty; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
    if not any(m["role"] == "assistant" for m in checked):
        raise DataError(f"{where}: 'messages' has no assistant message; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
    if checked[0]["role"] == "assistant":
        raise DataError(
            f"{where}: messages[0] is an assistant message; a conversation must open with a system or user message",
            ASSISTANT_FIRST,
        )
    return checked


def type_name(value: Any) -> str:
    """A short description of a value's type for error messages: 'int (5)', 'list'."""
    name = type(value).__name__
    if isinstance(value, (bool, int, float)):
        return f"{name} ({value!r})"
    return name


@dataclasses.dataclass(frozen=True)
class PreferenceExample:
    """A validated preference row.

    Attributes:
        prompt: the prompt's chat messages, [{"role", "content"}, ...], opening with a system or user message.
        responses: the assistant's candidate replies (non-empty texts).
        scores: one per response, higher is better: [1, 0] for a pair (chosen first); for an unpaired example
            [1] when desirable and [0] when not.
        label: unpaired examples only: whether the response is desirable; None otherwise.
    """

    prompt: list[dict[str, str]]
    responses: tuple[str, ...]
    scores: tuple[float, ...]
    label: bool | None = None


def preference_example(row: Any, where: str) -> PreferenceExample:
    """Validates a pairwise, ranked or unpaired row (see the module docstring) into its canonical form.

    Args:
        row: a decoded row (a dict when well formed).
        where: the row's origin for error messages, e.g. "pairs.jsonl line 3".

    Returns:
        The row's PreferenceExample.

    Raises:
        DataError: naming `where`, the field and what was expected, with the reason to count a skip under.
    """
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with {PREFERENCE_EXPECTED}, got {type_name(row)}", WRONG_TYPE)
    if _present(row, "responses") or _present(row, "scores"):
        return _ranked(row, where)
    if _present(row, "label") or _present(row, "completion"):
        return _unpaired(row, where)
    return _pairwise(row, where)


def _present(row: dict, field: str) -> bool:
    return row.get(field) is not None


def _require(row: dict, fields: tuple[str, ...], where: str, kind: str) -> None:
    for field in fields:
        if not _present(row, field):
            raise DataError(f"{where}: field {field!r} is missing; a {kind} row needs {fields}", MISSING_FIELD)


def _pairwise(row: dict, where: str) -> PreferenceExample:
    if not (_present(row, "chosen") or _present(row, "rejected")):
        raise DataError(
            f"{where}: the row has none of the preference fields; expected {PREFERENCE_EXPECTED}", MISSING_FIELD
        )
    _require(row, ("chosen", "rejected"), where, "pairwise")
    if _present(row, "prompt"):
        prompt = prompt_messages(row["prompt"], where)
        chosen, rejected = _response(row["chosen"], where, "chosen"), _response(row["rejected"], where, "rejected")
    else:
        prompt, chosen, rejected = _split_implicit_prompt(row["chosen"], row["rejected"], where)
    if chosen == rejected:
        raise DataError(
            f"{where}: 'chosen' and 'rejected' are the same response; a pair needs two different ones",
            IDENTICAL_RESPONSES,
        )
    return PreferenceExample(prompt, (chosen, rejected), (1.0, 0.0))


def _ranked(row: dict, where: str) -> PreferenceExample:
    _require(row, ("prompt", "responses", "scores"), where, "ranked")
    responses, scores = row["responses"], row["scores"]
    for field, value in (("responses", responses), ("scores", scores)):
        if not isinstance(value, list):
            raise DataError(f"{where}: field {field!r} must be a list, got {type_name(value)}", WRONG_TYPE)
    if len(responses) != len(scores) or len(responses) < 2:
        raise DataError(
            f"{where}: 'responses' has {len(responses)} items and 'scores' {len(scores)}; a ranked row needs the "
            "same number of each, at least 2",
            LENGTH_MISMATCH,
        )
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(f"{where}: scores[{i}] must be a finite number, got {type_name(score)}", WRONG_TYPE)
    prompt = prompt_messages(row["prompt"], where)
    texts = tuple(_response(r, where, f"responses[{i}]") for i, r in enumerate(responses))
    if len(set(scores)) == 1:
        raise DataError(
            f"{where}: all {len(scores)} scores are {scores[0]}; a ranked row needs responses that score differently",
            TIED_SCORES,
        )
    first_seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        j = first_seen.setdefault(text, i)
        if scores[i] != scores[j]:
            raise DataError(
                f"{where}: responses[{j}] and responses[{i}] are the same text with different scores "
                f"({scores[j]} and {scores[i]})",
                IDENTICAL_RESPONSES,
            )
    return PreferenceExample(prompt, texts, tuple(float(s) for s in scores))


def _unpaired(row: dict, where: str) -> PreferenceExample:
    _require(row, ("prompt", "completion", "label"), where, "unpaired")
    if not isinstance(row["label"], bool):
        raise DataError(
            f"{where}: field 'label' must be true (desirable) or false (undesirable), got {type_name(row['label'])}",
            WRONG_TYPE,
        )
    completion = _response(row["completion"], where, "completion")
    return PreferenceExample(prompt_messages(row["prompt"], where), (completion,), (float(row["label"]),), row["label"])


def prompt_messages(value: Any, where: str) -> list[dict[str, str]]:
    """A string prompt as one user message, or a checked message list that opens with a system or user message."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages = chat_messages(value, where, "prompt")
    if not messages:
        raise DataError(f"{where}: field 'prompt' is an empty list; expected at least a user message", MISSING_FIELD)
    if messages[0]["role"] == "assistant":
        raise DataError(
            f"{where}: prompt[0] is an assistant message; a prompt must open with a system or user message",
            ASSISTANT_FIRST,
        )
    return messages


def _response(value: Any, where: str, field: str, why_not_empty: str = "there is nothing to compare") -> str:
    """The text of a response given as a string or a single assistant message; it must not be empty (an empty one
    is a DataError that says `why_not_empty`)."""
    if isinstance(value, list):
        messages = chat_messages(value, where, field)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            roles = [m["role"] for m in messages]
            raise DataError(f"{where}: field {field!r} has roles {roles}; expected {_RESPONSE}", WRONG_TYPE)
        value = messages[0]["content"]
    elif not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} must be {_RESPONSE}, got {type_name(value)}", WRONG_TYPE)
    if not value.strip():
        raise DataError(f"{where}: field {field!r} is an empty response; {why_not_empty}", EMPTY_RESPONSE)
    return value


def _split_implicit_prompt(chosen: Any, rejected: Any, where: str) -> tuple[list[dict[str, str]], str, str]:
    """Splits two whole dialogues into their shared prompt and their last assistant turns.

    Returns:
        (prompt messages, chosen response, rejected response); the responses are checked by `_response`.
    """
    dialogues = {field: _dialogue(value, where, field) for field, value in (("chosen", chosen), ("rejected", rejected))}
    for field, turns in dialogues.items():
        if not turns or turns[-1]["role"] != "assistant":
            last = turns[-1]["role"] if turns else "nothing"
            raise DataError(
                f"{where}: field {field!r} ends with {last}, not an assistant turn; without a 'prompt' field, chosen "
                "and rejected must be whole dialogues ending with the assistant turns they compare",
                NO_FINAL_RESPONSE,
            )
    prompts = {field: turns[:-1] for field, turns in dialogues.items()}
    if prompts["chosen"] != prompts["rejected"]:
        turn = next(
            (i for i, (a, b) in enumerate(zip(prompts["chosen"], prompts["rejected"])) if a != b),
            min(len(prompts["chosen"]), len(prompts["rejected"])),
        )
        raise DataError(
            f"{where}: 'chosen' and 'rejected' differ before their last assistant turn (first at turn {turn}: "
            f"{len(prompts['chosen'])} and {len(prompts['rejected'])} prompt turns); without a 'prompt' field they "
            "must share every turn but the last",
            PROMPTS_DIFFER,
        )
    prompt = prompts["chosen"]
    if not prompt or prompt[0]["role"] == "assistant":
        raise DataError(
            f"{where}: the dialogues do not open with a system or user turn, so they have no prompt", ASSISTANT_FIRST
        )
    return (
        prompt,
        _response([dialogues["chosen"][-1]], where, "chosen"),
        _response([dialogues["rejected"][-1]], where, "rejected"),
    )


def _dialogue(value: Any, where: str, field: str) -> list[dict[str, str]]:
    """A whole dialogue as messages: a message list, or HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant: ..." text."""
    if isinstance(value, list):
        return chat_messages(value, where, field)
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} must be a dialogue (a string or a list of messages), got {type_name(value)}",
            WRONG_TYPE,
        )
    pieces = _TURN.split(value)  # [text before the first turn, speaker, text, speaker, text, ...]
    if len(pieces) == 1 or pieces[0].strip():
        found = "no turns" if len(pieces) == 1 else f"text before the first turn: {pieces[0][:40]!r}"
        raise DataError(
            f"{where}: field {field!r} is not a dialogue of '\\n\\nHuman: ' and '\\n\\nAssistant: ' turns ({found})",
            MALFORMED_DIALOGUE,
        )
    return [{"role": _SPEAKERS[s], "content": text.strip()} for s, text in zip(pieces[1::2], pieces[2::2])]


@dataclasses.dataclass(frozen=True)
class PromptExample:
    """A validated prompt-only row: what an on-policy run generates responses to.

    Attributes:
        value: the row's `prompt` as given, a string or chat messages (what reward functions see).
        messages: the prompt as checked chat messages (`prompt_messages`).
    """

    value: Any
    messages: list[dict[str, str]]


def _check_has_prompt(row: Any, where: str, expected: str) -> None:
    if not isinstance(row, dict) or row.get("prompt") is None:
        got = f"fields {sorted(row)}" if isinstance(row, dict) else type_name(row)
        reason = MISSING_FIELD if isinstance(row, dict) else WRONG_TYPE
        raise DataError(f"{where}: expected an object with {expected}, got {got}", reason)


def prompt_example(row: Any, where: str) -> PromptExample:
    """Validates a row's `prompt` (a string or chat messages); its other fields are ignored.

    Args:
        row: a decoded row (a dict when well formed).
        where: the row's origin for error messages, e.g. "prompts.jsonl line 3".

    Returns:
        The row's PromptExample.

    Raises:
        DataError: naming `where`, the field and what was expected, with the reason to count a skip under.
    """
    _check_has_prompt(row, where, "a 'prompt' field (a string or a list of chat messages)")
    return PromptExample(row["prompt"], prompt_messages(row["prompt"], where))


@dataclasses.dataclass(frozen=True)
class DemonstrationExample:
    """A validated DITTO row: a prompt (as `PromptExample`) and the user's demonstrated answer to it."""

    value: Any
    messages: list[dict[str, str]]
    demonstration: str


_DEMONSTRATION_EXPECTED = "'prompt' (a string or a list of chat messages) and 'demonstration' (" + _RESPONSE + ")"


def demonstration_example(row: Any, where: str) -> DemonstrationExample:
    """Validates a row's `prompt` and `demonstration` (a string or a one-message list, not empty).

    Raises:
        DataError: naming `where`, the field and what was expected, with the reason to count a skip under.
    """
    _check_has_prompt(row, where, _DEMONSTRATION_EXPECTED)
    if row.get("demonstration") is None:
        raise DataError(
            f"{where}: field 'demonstration' is missing; a demonstration row needs {_DEMONSTRATION_EXPECTED}",
            MISSING_FIELD,
        )
    messages = prompt_messages(row["prompt"], where)
    return DemonstrationExample(row["prompt"], messages, _response(row["demonstration"], where, "demonstration"))
