"""Chat-template tokenisation of preference examples: one prompt's ids, then each response's ids after it.

The prompt is rendered with the generation prompt, exactly as it is given to the model at inference; each response
is the rest of the rendering of prompt + [assistant response], so its ids include whatever the template writes
after the reply (the end-of-turn token) and the model learns to stop. As in `tokenization`, that needs a
prefix-consistent template, and we raise rather than train on a silently wrong split.

Prompt and responses are kept apart, so that a batch can join any prompt with any response: KTO's KL estimate
puts another example's completion under this prompt (`preference_batching`).

Conditional-token SFT writes a control tag at the start of the assistant's turn: the tag is then part of the
prompt's ids (the prompt text plus the tag, tokenised together, as `tokenization.conditional_prompt` does at
inference), so it is given rather than learned, and the example is an ordinary SFT `TokenizedExample`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data.errors import PROMPT_TOO_LONG, DataError
from alignjax.data.preference_schemas import PreferenceExample
from alignjax.data.tokenization import TokenizedExample, check_prefix, render_chat, tokenizer_name


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


def join(prompt_P: np.ndarray, response_R: np.ndarray, seq_len: int) -> TokenizedExample:
    """A prompt followed by a response as one row whose assistant tokens are the response's, cut to `seq_len`.

    Args:
        prompt_P: prompt ids, shorter than `seq_len`.
        response_R: response ids.
        seq_len: the row length; the response loses its end to fit.

    Returns:
        The row's tokens and its assistant mask (False on the prompt, True on the response).
    """
    response_R = response_R[: seq_len - len(prompt_P)]
    tokens_L = np.concatenate([prompt_P, response_R]).astype(np.int32)
    assistant_L = np.arange(len(tokens_L)) >= len(prompt_P)
    return TokenizedExample(tokens_L, assistant_L)


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
    tags = tags if tags is not None else [""] * len(examples)
    results: list[PreferenceTokens | DataError | int] = []
    texts: list[str] = []
    for example, where, tag in zip(examples, wheres, tags):
        try:
            pieces = [render_chat(tokenizer, example.prompt, True, where) + tag]
            for response in example.responses:
                conversation = example.prompt + [{"role": "assistant", "content": tag + response}]
                pieces.append(render_chat(tokenizer, conversation, False, where))
        except DataError as e:
            results.append(e)
            continue
        results.append(len(texts))
        texts.extend(pieces)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    for i, (result, example, where, tag) in enumerate(zip(results, examples, wheres, tags)):
        if isinstance(result, int):
            try:
                results[i] = _split(ids[result : result + 1 + len(example.responses)], example, tokenizer, where, tag)
            except DataError as e:
                results[i] = e
    return results


def _split(ids: list[list[int]], example: PreferenceExample, tokenizer, where: str, tag: str) -> PreferenceTokens:
    """The prompt's ids (ids[0]) and each response's: the rest of ids[1 + k], once ids[0] is checked a prefix."""
    prompt, responses = ids[0], []
    for k, full in enumerate(ids[1:]):
        what = f"the prompt with the generation prompt is not a prefix of the prompt with response {k}"
        if tag:
            what += (
                f" after control tag {tag!r} (if the tag's last characters merge with the response's first into one "
                "token, end the tag with a space or a newline, or make it a special token)"
            )
        check_prefix(prompt, full, what, tokenizer, where)
        if len(full) == len(prompt):
            name = tokenizer_name(tokenizer)
            raise DataError(f"{where}: the chat template of {name!r} rendered no tokens for response {k}")
        responses.append(np.asarray(full[len(prompt) :], dtype=np.int32))
    return PreferenceTokens(np.asarray(prompt, dtype=np.int32), tuple(responses), example.scores, example.label)


def fit(tokens: PreferenceTokens, seq_len: int, where: str) -> PreferenceTokens:
    """Cuts each response to the room that `seq_len` leaves after the prompt.

    Args:
        tokens: an example's untruncated ids.
        seq_len: the row length.
        where: the example's origin, quoted in errors.

    Returns:
        `tokens` itself when every prompt + response fits, else a copy with the long responses' ends cut off.

    Raises:
        DataError (reason "prompt_too_long"): the prompt leaves no room for a response token.
    """
    room = seq_len - len(tokens.prompt_P)
    if room < 1:
        raise DataError(
            f"{where}: the prompt is {len(tokens.prompt_P)} tokens, which leaves no room for a response within "
            f"data.seq_len={seq_len}; raise seq_len or shorten the prompt",
            PROMPT_TOO_LONG,
        )
    if all(len(r) <= room for r in tokens.responses):
        return tokens
    return dataclasses.replace(tokens, responses=tuple(r[:room] for r in tokens.responses))
