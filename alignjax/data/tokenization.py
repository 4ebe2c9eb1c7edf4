"""Chat-template tokenisation of SFT examples, with a mask over exactly the assistant's tokens.

Examples are rendered with the tokenizer's own chat template, so training sees the format the model will later be
prompted with. The assistant's spans are found by rendering incrementally: for assistant message i, the tokens of
messages[:i] with the generation prompt mark where its response starts, and the tokens of messages[:i+1] mark where
it ends, including whatever the template writes after it (the end-of-turn token), so the model learns to stop.

That needs a prefix-consistent template: rendering the start of a conversation must give a prefix of the tokens of
all of it. Templates that rewrite earlier turns (e.g. drop the reasoning of past assistant messages) are not; we
raise rather than train on a silently wrong mask.

(The module is not called `tokenize.py` so that it can never shadow the standard library's `tokenize`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jinja2
import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data.errors import TEMPLATE_ERROR, DataError


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """One example as token ids.

    Attributes:
        tokens_L: int32 token ids of the rendered conversation.
        assistant_L: bool, True where the token belongs to an assistant turn (a token the model learns to
            predict, end-of-turn included).
    """

    tokens_L: np.ndarray
    assistant_L: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens_L)


def tokenizer_name(tokenizer: PreTrainedTokenizerBase) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def check_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises DataError, naming the tokenizer, when it has no chat template to render conversations with."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            f"tokenizer {tokenizer_name(tokenizer)!r} has no chat template; set one (tokenizer.chat_template = "
            "'<jinja>', or add chat_template.jinja to its directory) or use a chat model's tokenizer"
        )


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool, where: str) -> str:
    """`messages` rendered as text by the tokenizer's chat template; a template error becomes a DataError."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateError as e:  # templates reject what they cannot format, e.g. non-alternating roles.
        raise DataError(
            f"{where}: the chat template of {tokenizer_name(tokenizer)!r} rejected this conversation: {e}",
            TEMPLATE_ERROR,
        ) from e


def _texts(messages: list[dict[str, str]], tokenizer, where: str) -> list[str]:
    """The renderings a conversation's mask needs: the whole, then per assistant turn i its start and end.

    The start is messages[:i] with the generation prompt; the end is messages[:i + 1] (the whole, for the last).
    """
    texts = [render_chat(tokenizer, messages, False, where)]
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            texts.append(render_chat(tokenizer, messages[:i], True, where))
            end = texts[0] if i == len(messages) - 1 else render_chat(tokenizer, messages[: i + 1], False, where)
            texts.append(end)
    return texts


def check_prefix(prefix: list[int], tokens: list[int], what: str, tokenizer, where: str) -> None:
    """Raises DataError unless `prefix` starts `tokens`: the template must render a conversation's start as a prefix."""
    if tokens[: len(prefix)] != prefix:
        raise DataError(
            f"{where}: the chat template of {tokenizer_name(tokenizer)!r} is not prefix-consistent: {what}. "
            "Loss masking renders each assistant turn's prefix separately, so the template must render the start "
            "of a conversation as a prefix of the whole (templates that rewrite earlier turns are not)"
        )


def _example(ids: list[list[int]], messages: list[dict[str, str]], tokenizer, where: str) -> TokenizedExample:
    """Builds the example from the token ids of `_texts`, checking that each turn's span is a prefix of the whole."""
    tokens = ids[0]
    assistant = np.zeros(len(tokens), dtype=bool)
    spans = iter(ids[1:])
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start, end = next(spans), next(spans)
        what = f"messages[:{i}] with the generation prompt is not a prefix of messages[:{i + 1}]"
        check_prefix(start, end, what, tokenizer, where)
        what = f"messages[:{i + 1}] is not a prefix of the whole conversation"
        check_prefix(end, tokens, what, tokenizer, where)
        if len(end) == len(start):
            raise DataError(
                f"{where}: the chat template of {tokenizer_name(tokenizer)!r} rendered no tokens for messages[{i}] "
                "(assistant)"
            )
        assistant[len(start) : len(end)] = True
    return TokenizedExample(np.asarray(tokens, dtype=np.int32), assistant)


def encode_chats(
    conversations: Sequence[list[dict[str, str]]], tokenizer: PreTrainedTokenizerBase, wheres: Sequence[str]
) -> list[TokenizedExample | DataError]:
    """Tokenises validated conversations and marks their assistant tokens, in one batched tokenizer call.

    Renders with `apply_chat_template(tokenize=False)` and tokenises without adding special tokens, exactly as
    `apply_chat_template(tokenize=True)` does, but all texts at once in the fast tokenizer's batch path.

    Args:
        conversations: chat messages as returned by `schemas.sft_messages` (each opens with a non-assistant message).
        tokenizer: a transformers tokenizer with a chat template.
        wheres: each conversation's origin, quoted in errors.

    Returns:
        Per conversation, its untruncated TokenizedExample, or the DataError that describes why it has none (a
        template that rejects it; one that is not prefix-consistent, which has no reason and is never skipped).
    """
    results: list[TokenizedExample | DataError | tuple[int, int]] = []
    texts: list[str] = []
    for messages, where in zip(conversations, wheres):
        try:
            pieces = _texts(messages, tokenizer, where)
        except DataError as e:
            results.append(e)
            continue
        results.append((len(texts), len(pieces)))
        texts.extend(pieces)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    for k, (result, messages, where) in enumerate(zip(results, conversations, wheres)):
        if isinstance(result, tuple):
            first, count = result
            try:
                results[k] = _example(ids[first : first + count], messages, tokenizer, where)
            except DataError as e:
                results[k] = e
    return results


def encode_chat(messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase, where: str) -> TokenizedExample:
    """Tokenises one validated conversation and marks its assistant tokens (see `encode_chats`).

    Args:
        messages: chat messages as returned by `schemas.sft_messages`.
        tokenizer: a transformers tokenizer with a chat template.
        where: the row's origin, quoted in errors.

    Returns:
        The example's tokens and assistant mask, untruncated; a DataError is raised instead of returned.
    """
    (result,) = encode_chats([messages], tokenizer, [where])
    if isinstance(result, DataError):
        raise result
    return result


def encode_chat_prompt(messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase, where: str) -> list[int]:
    """The token ids of `messages` followed by the assistant's opening, ready for the model to answer.

    Rendered with the chat template and tokenised without adding special tokens, as
    `apply_chat_template(add_generation_prompt=True, tokenize=True)` does; `where` names the source in errors.
    """
    return conditional_prompt(messages, tokenizer, "", where)


def conditional_prompt(
    messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase, tag: str, where: str = "prompt"
) -> list[int]:
    """The ids that prompt a model trained with conditional tokens (`data.format="conditional"`) to answer well.

    Conditional-token training writes a control tag (`data.control_good` or `data.control_bad`) at the start of
    the assistant's turn and learns the response after it; at inference the prompt ends with the good tag, so the
    model continues in the style it learned under that tag. The ids are those of the training examples' prefix:
    the rendered prompt with the generation prompt, followed by the tag's text, tokenised together.

    Args:
        messages: the prompt's chat messages.
        tokenizer: the tokenizer of the trained model, with a chat template.
        tag: the control tag's text, e.g. "<good>"; "" gives `encode_chat_prompt`'s ids.
        where: names the prompt in errors.

    Returns:
        The token ids, to which the model's answer is appended.
    """
    check_chat_template(tokenizer)
    text = render_chat(tokenizer, messages, add_generation_prompt=True, where=where) + tag
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def truncate(example: TokenizedExample, seq_len: int) -> TokenizedExample | None:
    """Cuts an example to its first `seq_len` tokens, keeping the prompt's start and losing the end.

    Args:
        example: a tokenised example.
        seq_len: the row length.

    Returns:
        The example itself when it fits; its first `seq_len` tokens otherwise; None when the cut leaves no
        assistant token to predict (the first token of a row is never a target), so the example must be dropped.
    """
    if len(example) <= seq_len:
        return example
    cut = TokenizedExample(example.tokens_L[:seq_len], example.assistant_L[:seq_len])
    return cut if cut.assistant_L[1:].any() else None
