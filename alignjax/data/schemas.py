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
        raise DataError(f"{where}: expected an object with {EXPECTED}, got {type_name(row)}", WRONG_TYPE)
    if row.get("messages") is not None:
        return _check_messages(row["messages"], where)
    for field in ("prompt", "completion"):
        if row.get(field) is None:
            raise DataError(f"{where}: field {field!r} is missing; an SFT row needs {EXPECTED}", MISSING_FIELD)
        if not isinstance(row[field], str):
            raise DataError(f"{where}: field {field!r} must be a string, got {type_name(row[field])}", WRONG_TYPE)
    if not row["completion"].strip():
        raise DataError(f"{where}: field 'completion' is empty; {_NOTHING_TO_LEARN}", EMPTY_RESPONSE)
    return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


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
