"""The SFT example schema, and validation that names the file, row and field of every problem.

An SFT row is either a chat, `messages`: a list of {"role": "system" | "user" | "assistant", "content": str}, or
a `prompt` and a `completion` string, which become a user message and the assistant's reply. When a row has
both, `messages` wins: hub datasets such as UltraChat carry a `prompt` column beside the conversation. A `None`
value counts as missing, because the `datasets` library fills the columns a row lacks with `None`.

A conversation must open with a system or user message (the prompt) and contain at least one assistant message,
and no assistant message may be empty: those are the tokens the model learns from.
"""

from __future__ import annotations

from typing import Any

from alignjax.data.errors import (
    ASSISTANT_FIRST,
    EMPTY_RESPONSE,
    MISSING_FIELD,
    UNKNOWN_ROLE,
    WRONG_TYPE,
    DataError,
)

ROLES = ("system", "user", "assistant")
_NOTHING_TO_LEARN = "there is no response to learn from"
EXPECTED = "`messages` (a list of {'role', 'content'} dicts) or `prompt` and `completion` (strings)"


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
        raise DataError(f"{where}: expected an object with {EXPECTED}, got {_type(row)}", WRONG_TYPE)
    if row.get("messages") is not None:
        return _check_messages(row["messages"], where)
    for field in ("prompt", "completion"):
        if row.get(field) is None:
            raise DataError(f"{where}: field {field!r} is missing; an SFT row needs {EXPECTED}", MISSING_FIELD)
        if not isinstance(row[field], str):
            raise DataError(f"{where}: field {field!r} must be a string, got {_type(row[field])}", WRONG_TYPE)
    if not row["completion"].strip():
        raise DataError(f"{where}: field 'completion' is empty; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise DataError(
            f"{where}: field 'messages' must be a list of {{'role', 'content'}} dicts, got {_type(messages)}",
            WRONG_TYPE,
        )
    checked = []
    for i, message in enumerate(messages):
        field = f"messages[{i}]"
        if not isinstance(message, dict):
            raise DataError(f"{where}: {field} must be a {{'role', 'content'}} dict, got {_type(message)}", WRONG_TYPE)
        for key in ("role", "content"):
            if message.get(key) is None:
                raise DataError(f"{where}: field '{field}.{key}' is missing; expected a string", MISSING_FIELD)
            if not isinstance(message[key], str):
                raise DataError(
                    f"{where}: field '{field}.{key}' must be a string, got {_type(message[key])}", WRONG_TYPE
                )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(
                f"{where}: {field}.role={role!r} is not a known role; expected one of {ROLES}", UNKNOWN_ROLE
            )
        if role == "assistant" and not content.strip():
            raise DataError(f"{where}: {field} (assistant) is empty; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
        checked.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in checked):
        raise DataError(f"{where}: 'messages' has no assistant message; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
    if checked[0]["role"] == "assistant":
        raise DataError(
            f"{where}: messages[0] is an assistant message; a conversation must open with a system or user message",
            ASSISTANT_FIRST,
        )
    return checked


def _type(value: Any) -> str:
    """A short description of a value's type for error messages: 'int (5)', 'list'."""
    name = type(value).__name__
    if isinstance(value, (bool, int, float)):
        return f"{name} ({value!r})"
    return name
