"""Cutting tokenised examples to `data.seq_len`, and refusing to train when that loses more than the user allows.

An example longer than seq_len loses tokens. An SFT example is cut at its end (`data.truncation_side="right"`,
keeping the prompt's start) or at its start (`"left"`, keeping the end of the conversation: the response); it is
dropped when the cut leaves no response token. A preference example keeps its whole prompt and loses the ends of
its long responses; it is dropped when the prompt alone fills seq_len.

Neither is a fault of the row, so `data.on_bad_row` does not govern them: they are counted in the report
(`response_truncated`, `prompt_too_long`, `truncated`), and `check_losses` stops the run before training when the
share of examples dropped or cut exceeds `data.max_lost_fraction` (default 0: none), with the counts, an example
and the settings that would fix it. A run that trains on 4 of 175 examples, or on answers cut in half, looks
healthy in its loss curve; it should not start without the user saying so.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from alignjax.data.errors import LENGTH_LOSSES, PROMPT_TOO_LONG, RESPONSE_TRUNCATED, DataError
from alignjax.data.report import DataReport
from alignjax.data.tokenization import PreferenceTokens, TokenizedExample

SIDES = ("right", "left")  # data.truncation_side: which end of a too long SFT example is cut


def truncate(example: TokenizedExample, seq_len: int, side: str, where: str) -> TokenizedExample:
    """Cuts an SFT example to `seq_len` tokens at the end (`side="right"`) or at the start (`side="left"`).

    Args:
        example: a tokenised example.
        seq_len: the row length.
        side: one of SIDES.
        where: the example's origin, quoted in errors.

    Returns:
        The example itself when it fits, else its first (right) or last (left) `seq_len` tokens.

    Raises:
        DataError (reason "response_truncated"): the cut leaves no assistant token to predict (the first token of a
            row is never a target), so the example must be dropped.
    """
    if len(example) <= seq_len:
        return example
    kept = slice(None, seq_len) if side == "right" else slice(len(example) - seq_len, None)
    cut = TokenizedExample(example.tokens_L[kept], example.assistant_L[kept])
    if cut.assistant_L[1:].any():
        return cut
    if side == "right":
        lost = f"its response starts at token {int(np.argmax(example.assistant_L))}"
    else:
        lost = f"its last {seq_len} tokens hold no response token"
    raise DataError(f"{where}: {len(example)} tokens, and {lost}, beyond data.seq_len={seq_len}", RESPONSE_TRUNCATED)


def fit(tokens: PreferenceTokens, seq_len: int, where: str) -> PreferenceTokens:
    """Cuts each response of a preference example to the room that `seq_len` leaves after the prompt.

    Args:
        tokens: an example's untruncated ids.
        seq_len: the row length.
        where: the example's origin, quoted in errors.

    Returns:
        `tokens` itself when every prompt + response fits, else a copy with the long responses' ends cut off.

    Raises:
        DataError (reason "prompt_too_long"): the prompt leaves no room for a response token, so the example must
            be dropped.
    """
    room = seq_len - len(tokens.prompt_P)
    if room < 1:
        raise DataError(
            f"{where}: the prompt is {len(tokens.prompt_P)} tokens, which leaves no room for a response within "
            f"data.seq_len={seq_len}",
            PROMPT_TOO_LONG,
        )
    if all(len(r) <= room for r in tokens.responses):
        return tokens
    return dataclasses.replace(tokens, responses=tuple(r[:room] for r in tokens.responses))


def join(prompt_P: np.ndarray, response_R: np.ndarray, seq_len: int) -> TokenizedExample:
    """A prompt followed by a response as one SFT row whose assistant tokens are the response's, cut to `seq_len`.

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


def check_losses(cfg, report: DataReport, kept: int) -> None:
    """Raises when cutting to seq_len dropped or cut a larger share of the examples than `max_lost_fraction`.

    Args:
        cfg: the data config (`seq_len`, `max_lost_fraction`, `format`, `truncation_side`).
        report: the counts of both splits: examples dropped (`errors.LENGTH_LOSSES`) and cut (`truncated`), the
            first of each with its origin and length, and the longest example's length.
        kept: the examples of both splits that were kept (cut or not).

    Raises:
        DataError: with the counts, an example, the longest example's length and the settings that would fix it.
    """
    dropped = sum(report.skipped.get(reason, 0) for reason in LENGTH_LOSSES)
    lost, examples = dropped + report.truncated, kept + dropped
    if not lost or lost / examples <= cfg.max_lost_fraction:
        return
    example = next((report.skip_messages[r][0] for r in LENGTH_LOSSES if report.skip_messages.get(r)), None)
    fixes = [f"raise data.seq_len (the longest example has {report.longest_example} tokens)"]
    if cfg.format == "sft" and cfg.truncation_side == "right":
        fixes.append("set data.truncation_side='left' to keep responses and cut prompts")
    fixes.append(f"accept the loss with data.max_lost_fraction={math.ceil(100 * lost / examples) / 100}")
    raise DataError(
        f"data {report.source}: cutting examples to data.seq_len={cfg.seq_len} loses more than "
        f"data.max_lost_fraction={cfg.max_lost_fraction} allows: {dropped} of {examples} examples lose their whole "
        f"response and {report.truncated} more are cut\n"
        f"  e.g. {example or report.first_truncated}\n"
        f"  fix: {', '.join(fixes[:-1])}, or {fixes[-1]}"
    )
