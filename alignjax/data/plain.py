"""Plain prompt/completion tokenisation (`data.template="plain"`), for base models that have no chat template.

An example is its prompt's text followed by its completion's text, nothing in between: the tokenizer's BOS first
when it writes one before a text (as `tokenizer(text)` does), then the prompt's ids, the completion's ids and EOS,
so that the model learns to stop. The loss mask covers the completion and EOS only. At inference the model is
given BOS and the prompt's ids (`plain_prompt`): the very ids it was trained to continue.

Only a prompt and one reply can be written this way: SFT rows with `prompt` and `completion` (or `messages` holding
one user message and one assistant message), and preference rows whose prompt is a string (or one user message).
A conversation with a system message or several turns has no plain rendering: it is a DataError naming the row,
with reason `template_error` (so `on_bad_row="skip"` can leave it out), and needs `data.template="chat"`.

The boundary between prompt and completion. A subword tokenizer may merge the prompt's last characters with the
completion's first, so the ids of the whole text need not start with the prompt's ids. We tokenise the prompt,
the whole text and the completion alone. When the prompt's ids are a prefix of the whole's (the usual case: the
completion starts at a word), the rest of the whole's ids are the completion's: exactly what the tokenizer makes of
the text. Otherwise (a merge across the boundary, e.g. after a prompt that ends with a space) we keep the prompt's
own ids, which are what inference gives the model, and append the completion tokenised alone, as TRL does for
prompt-completion data. Tokenising the completion alone every time would be simpler but wrong for SentencePiece
tokenizers, which write a word-start marker at the start of every text: " there" alone becomes "▁", "▁there"
where after the prompt it is the single "▁there".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data.errors import TEMPLATE_ERROR, DataError
from alignjax.data.schemas import PreferenceExample
from alignjax.data.tokenization import PreferenceTokens, TokenizedExample, encode_batched, tokenizer_name


def check_plain_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Raises DataError, naming the tokenizer, when it has no EOS token to end completions with."""
    if tokenizer.eos_token_id is None:
        raise DataError(
            f"tokenizer {tokenizer_name(tokenizer)!r} has no EOS token; data.template='plain' ends every completion "
            "with it so that the model learns to stop"
        )


def encode_plain_chats(
    conversations: Sequence[list[dict[str, str]]], tokenizer: PreTrainedTokenizerBase, wheres: Sequence[str]
) -> list[TokenizedExample | DataError]:
    """Tokenises prompt/completion conversations as plain text, the completion and EOS under the loss mask.

    Args:
        conversations: chat messages as returned by `schemas.sft_messages`; only [user, assistant] ones have a
            plain rendering.
        tokenizer: a transformers tokenizer with an EOS token.
        wheres: each conversation's origin, quoted in errors.

    Returns:
        Per conversation, its untruncated TokenizedExample, or the DataError (reason `template_error`) of a
        conversation that is not one prompt and one reply.
    """
    bos, eos = _bos(tokenizer), [tokenizer.eos_token_id]

    def render(messages: list[dict[str, str]], where: str) -> list[str]:
        prompt, completion = _contents(messages, ("user", "assistant"), where)
        return [prompt, prompt + completion, completion]

    def build(ids: list[list[int]], messages: list[dict[str, str]], where: str) -> TokenizedExample:
        prompt, whole, alone = ids
        tokens_L = np.asarray(bos + prompt + _completion(prompt, whole, alone) + eos, dtype=np.int32)
        return TokenizedExample(tokens_L, np.arange(len(tokens_L)) >= len(bos) + len(prompt))

    return encode_batched(conversations, wheres, tokenizer, render, build)


def encode_plain_preferences(
    examples: Sequence[PreferenceExample],
    tokenizer: PreTrainedTokenizerBase,
    wheres: Sequence[str],
    tags: Sequence[str] | None = None,
) -> list[PreferenceTokens | DataError]:
    """Tokenises preference examples as plain text: BOS and the prompt, then each response and EOS.

    Args:
        examples: validated examples; only those whose prompt is one user message have a plain rendering.
        tokenizer: a transformers tokenizer with an EOS token.
        wheres: each example's origin, quoted in errors.
        tags: per example, a control tag written after the prompt and counted as prompt (conditional-token SFT);
            None writes none.

    Returns:
        Per example, its untruncated PreferenceTokens, or the DataError (reason `template_error`) of a prompt that
        is not one user message.
    """
    bos, eos = _bos(tokenizer), [tokenizer.eos_token_id]

    def render(item: tuple[PreferenceExample, str], where: str) -> list[str]:
        example, tag = item
        (prompt,) = _contents(example.prompt, ("user",), where)
        prompt += tag
        return [prompt] + [text for response in example.responses for text in (prompt + response, response)]

    def build(ids: list[list[int]], item: tuple[PreferenceExample, str], where: str) -> PreferenceTokens:
        example, prompt = item[0], ids[0]
        responses = tuple(
            np.asarray(_completion(prompt, whole, alone) + eos, dtype=np.int32)
            for whole, alone in zip(ids[1::2], ids[2::2])
        )
        return PreferenceTokens(np.asarray(bos + prompt, dtype=np.int32), responses, example.scores, example.label)

    tags = tags if tags is not None else [""] * len(examples)
    return encode_batched(list(zip(examples, tags)), wheres, tokenizer, render, build)


def plain_prompt(
    messages: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase, tag: str, where: str = "prompt"
) -> list[int]:
    """The ids that prompt a model trained with `data.template="plain"`: BOS (if the tokenizer writes one) and the
    prompt's text followed by `tag` (a conditional-token control tag, or ""), tokenised together.

    Args:
        messages: the prompt as chat messages: one user message.
        tokenizer: the tokenizer of the trained model.
        tag: text written after the prompt, as in training; "" for none.
        where: names the prompt in errors.

    Returns:
        The token ids, to which the model's answer is appended.
    """
    (prompt,) = _contents(messages, ("user",), where)
    return _bos(tokenizer) + tokenizer(prompt + tag, add_special_tokens=False)["input_ids"]


def _bos(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """[BOS] when the tokenizer writes BOS before a text (as `tokenizer(text)` does), else []."""
    bos = tokenizer.bos_token_id
    return [bos] if bos is not None and tokenizer("")["input_ids"][:1] == [bos] else []


def _contents(messages: list[dict[str, str]], roles: tuple[str, ...], where: str) -> list[str]:
    """The messages' texts when their roles are `roles`; other conversations have no plain rendering."""
    if tuple(m["role"] for m in messages) != roles:
        raise DataError(
            f"{where}: data.template='plain' writes a prompt (one user message) and its completion, not roles "
            f"{[m['role'] for m in messages]}; conversations need data.template='chat' and a tokenizer with a chat "
            "template",
            TEMPLATE_ERROR,
        )
    return [m["content"] for m in messages]


def _completion(prompt: list[int], whole: list[int], alone: list[int]) -> list[int]:
    """The completion's ids after `prompt`: the rest of `whole` (prompt + completion tokenised together) when
    `prompt` is its prefix, else `alone` (the completion tokenised by itself; see the module docstring)."""
    if len(whole) > len(prompt) and whole[: len(prompt)] == prompt:
        return whole[len(prompt) :]
    return alone
