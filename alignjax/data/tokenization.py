"""Chat-template tokenisation: SFT conversations with a mask over the assistant's tokens, and preference examples
as one prompt's ids followed by each response's ids.

Examples are rendered with the tokenizer's own chat template, so training sees the format the model will later be
prompted with, and tokenised without adding special tokens, exactly as `apply_chat_template(tokenize=True)` does,
but all texts of many examples at once in the fast tokenizer's batch path.

SFT (`encode_chats`): the assistant's spans are found by rendering incrementally: for assistant message i, the
tokens of messages[:i] with the generation prompt mark where its response starts, and the tokens of
messages[:i+1] mark where it ends, including whatever the template writes after it (the end-of-turn token), so
the model learns to stop.

Preferences (`encode_preferences`): the prompt is rendered with the generation prompt, exactly as it is given to
the model at inference; each response is the rest of the rendering of prompt + [assistant response]. Prompt and
responses are kept apart, so that a batch can join any prompt with any response: KTO's KL estimate puts another
example's completion under this prompt (`packing.layout_preferences`). Conditional-token SFT writes a control tag
at the start of the assistant's turn: the tag is then part of the prompt's ids (the prompt text plus the tag,
tokenised together, as `conditional_prompt` does at inference), so it is given rather than learned.

Both need a prefix-consistent template: rendering the start of a conversation must give a prefix of the tokens of
all of it. Templates that rewrite earlier turns (e.g. drop the reasoning of past assistant messages) are not; we
raise rather than train on a silently wrong mask.

The example types (`TokenizedExample`, `PreferenceTokens`) and the batched tokenizer call (`encode_batched`) serve
the plain rendering of base models too (`plain`, `data.template="plain"`); cutting examples to seq_len is
`truncation`'s.

(The module is not called `tokenize.py` so that it can never shadow the standard library's `tokenize`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TypeVar

import jinja2
import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data.errors import TEMPLATE_ERROR, DataError
from alignjax.data.schemas import PreferenceExample

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """One SFT example as token ids.

    Attributes:
        tokens_L: int32 token ids of the rendered conversation.
        assistant_L: bool, True where the token belongs to an assistant turn (a token the model learns to
            predict, end-of-turn included).
    """

    tokens_L: np.ndarray
    assistant_L: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens_L)


@dataclasses.dataclass(frozen=True)
class PreferenceTokens:
    """A preference example as token ids.

    Attributes:
        prompt_P: int32 ids of the rendered prompt with the generation prompt (and the control tag, if any).
        responses: per response, int32 ids of what follows the prompt: the reply and the end of its turn.
        scores: the responses' scores (see `PreferenceExample`).
        label: unpaired examples only: whether the response is desirable.
    """

    prompt_P: np.ndarray
    responses: tuple[np.ndarray, ...]
    scores: tuple[float, ...]
    label: bool | None = None

    def __len__(self) -> int:
        """The tokens of the longest response's row, prompt included."""
        return len(self.prompt_P) + max(len(r) for r in self.responses)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token id that padding is written with: the tokenizer's pad id, else its EOS id, else 0.

    Padding never carries loss and is masked out of attention, so any id works; the pad id keeps batches equal to
    what other tools would build, and EOS is what generation pads with when a tokenizer has no pad token.
    """
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0


def tokenizer_name(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's name or path for error messages, else its class name."""
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


def check_prefix(prefix: list[int], tokens: list[int], what: str, tokenizer, where: str) -> None:
    """Raises DataError unless `prefix` starts `tokens`: the template must render a conversation's start as a prefix."""
    if tokens[: len(prefix)] != prefix:
        raise DataError(
            f"{where}: the chat template of {tokenizer_name(tokenizer)!r} is not prefix-consistent: {what}. "
            "Loss masking renders each assistant turn's prefix separately, so the template must render the start "
            "of a conversation as a prefix of the whole (templates that rewrite earlier turns are not)"
        )


def encode_batched(
    items: Sequence[Item],
    wheres: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    render: Callable[[Item, str], list[str]],
    build: Callable[[list[list[int]], Item, str], Result],
) -> list[Result | DataError]:
    """Renders every item's texts, tokenises all of them in one call (no special tokens added), and builds each item
    from its texts' ids.

    Args:
        items: the examples.
        wheres: each item's origin, quoted in errors.
        tokenizer: the tokenizer.
        render: (item, where) -> the texts whose ids the item needs.
        build: (those texts' ids, item, where) -> the item's tokenised form.

    Returns:
        Per item, its tokenised form, or the DataError that `render` or `build` raised for it.
    """
    spans: list[tuple[int, int] | DataError] = []
    texts: list[str] = []
    for item, where in zip(items, wheres):
        try:
            pieces = render(item, where)
        except DataError as e:
            spans.append(e)
            continue
        spans.append((len(texts), len(pieces)))
        texts.extend(pieces)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    results: list[Result | DataError] = []
    for span, item, where in zip(spans, items, wheres):
        if isinstance(span, DataError):
            results.append(span)
            continue
        first, count = span
        try:
            results.append(build(ids[first : first + count], item, where))
        except DataError as e:
            results.append(e)
    return results


def encode_chats(
    conversations: Sequence[list[dict[str, str]]], tokenizer: PreTrainedTokenizerBase, wheres: Sequence[str]
) -> list[TokenizedExample | DataError]:
    """Tokenises validated conversations and marks their assistant tokens, in one batched tokenizer call.

    Args:
        conversations: chat messages as returned by `schemas.sft_messages` (each opens with a non-assistant message).
        tokenizer: a transformers tokenizer with a chat template.
        wheres: each conversation's origin, quoted in errors.

    Returns:
        Per conversation, its untruncated TokenizedExample, or the DataError that describes why it has none (a
        template that rejects it; one that is not prefix-consistent, which has no reason and is never skipped).
    """

    def render(messages: list[dict[str, str]], where: str) -> list[str]:
        # The whole conversation, then per assistant turn i its start (messages[:i] with the generation prompt)
        # and its end (messages[:i + 1]; the whole, for the last turn).
        texts = [render_chat(tokenizer, messages, False, where)]
        for i, message in enumerate(messages):
            if message["role"] == "assistant":
                texts.append(render_chat(tokenizer, messages[:i], True, where))
                end = texts[0] if i == len(messages) - 1 else render_chat(tokenizer, messages[: i + 1], False, where)
                texts.append(end)
        return texts

    def build(ids: list[list[int]], messages: list[dict[str, str]], where: str) -> TokenizedExample:
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
                    f"{where}: the chat template of {tokenizer_name(tokenizer)!r} rendered no tokens for "
                    f"messages[{i}] (assistant)"
                )
            assistant[len(start) : len(end)] = True
        return TokenizedExample(np.asarray(tokens, dtype=np.int32), assistant)

    return encode_batched(conversations, wheres, tokenizer, render, build)


def encode_preferences(
    examples: Sequence[PreferenceExample],
    tokenizer: PreTrainedTokenizerBase,
    wheres: Sequence[str],
    tags: Sequence[str] | None = None,
) -> list[PreferenceTokens | DataError]:
    """Tokenises preference examples with the chat template, in one batched tokenizer call.

    Args:
        examples: validated examples.
        tokenizer: a transformers tokenizer with a chat template.
        wheres: each example's origin, quoted in errors.
        tags: per example, a control tag written at the start of the assistant's turn before each response and
            counted as prompt (conditional-token SFT); None writes none.

    Returns:
        Per example, its untruncated PreferenceTokens, or the DataError that says why it has none: a template that
        rejects it; one that is not prefix-consistent, or a tag whose tokens merge with the response's (those have
        no reason and are never skipped).
    """

    def render(item: tuple[PreferenceExample, str], where: str) -> list[str]:
        example, tag = item
        texts = [render_chat(tokenizer, example.prompt, True, where) + tag]
        for response in example.responses:
            conversation = example.prompt + [{"role": "assistant", "content": tag + response}]
            texts.append(render_chat(tokenizer, conversation, False, where))
        return texts

    def build(ids: list[list[int]], item: tuple[PreferenceExample, str], where: str) -> PreferenceTokens:
        # The prompt's ids (ids[0]) and each response's: the rest of ids[1 + k], once ids[0] is checked a prefix.
        (example, tag), prompt, responses = item, ids[0], []
        for k, full in enumerate(ids[1:]):
            what = f"the prompt with the generation prompt is not a prefix of the prompt with response {k}"
            if tag:
                what += (
                    f" after control tag {tag!r} (if the tag's last characters merge with the response's first into "
                    "one token, end the tag with a space or a newline, or make it a special token)"
                )
            check_prefix(prompt, full, what, tokenizer, where)
            if len(full) == len(prompt):
                name = tokenizer_name(tokenizer)
                raise DataError(f"{where}: the chat template of {name!r} rendered no tokens for response {k}")
            responses.append(np.asarray(full[len(prompt) :], dtype=np.int32))
        return PreferenceTokens(np.asarray(prompt, dtype=np.int32), tuple(responses), example.scores, example.label)

    tags = tags if tags is not None else [""] * len(examples)
    return encode_batched(list(zip(examples, tags)), wheres, tokenizer, render, build)


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
