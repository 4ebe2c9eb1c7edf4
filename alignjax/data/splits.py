"""Reading a split's rows into validated examples: the held-out split and the handling of bad rows.

Every kind of run reads its rows here, whatever it validates them into (SFT messages, preference examples, the
prompts of an on-policy run), so that the same `data` section holds out the same rows and treats a bad row the
same way everywhere:

- Held-out rows: a builtin dataset's held-out examples are its own eval split; other sources hold out
  round(`eval_fraction` * n) of their n valid rows (at least one when the fraction is above 0), chosen by `seed`
  (`hold_out`). Rows are held out whole, before any row becomes several examples, so the pairs of one prompt
  never straddle the split.
- Bad rows: a row that cannot be decoded or validated raises its DataError under `on_bad_row="error"` and is
  counted in the report under its reason under `on_bad_row="skip"` (`reject`); a problem with the whole source
  has no reason and always raises.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from alignjax.data.builtin import get_builtin
from alignjax.data.errors import DataError
from alignjax.data.report import DataReport
from alignjax.data.sources import SourceRow, read_rows

_HOLDOUT_STREAM = 1  # seeds the held-out choice apart from the epoch shuffles, which use (seed, epoch)

T = TypeVar("T")
Validated = list[tuple[str, T]]  # (where the row came from, its validated form)


def read_examples(cfg, validate: Callable[[Any, str], T], report: DataReport) -> tuple[Validated[T], Validated[T]]:
    """Reads, validates and splits the rows of `cfg` into training and held-out examples.

    Args:
        cfg: the data config (`source`, `path`, `split`, `max_examples`, `eval_fraction`, `seed`, `on_bad_row`).
        validate: (row, where) -> the row's validated form, or a DataError, e.g. `schemas.sft_messages`.
        report: counts rows read and skipped.

    Returns:
        (train, held_out), each [(where, validated row)] in reading order; a builtin dataset's held-out examples
        are its own eval split, others' are `eval_fraction` of the valid rows, chosen by seed (`hold_out`).

    Raises:
        DataError: for a problem with the whole source, or a bad row under `on_bad_row="error"`.
    """
    rows = itertools.islice(read_rows(cfg.source, cfg.path, cfg.split), cfg.max_examples or None)
    train = _validated(rows, validate, cfg, report)
    if cfg.source == "builtin":
        eval_rows = read_rows("builtin", cfg.path, get_builtin(cfg.path).eval_split)
        return train, _validated(eval_rows, validate, cfg, report)
    return hold_out(train, cfg.eval_fraction, cfg.seed)


def hold_out(examples: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Splits off round(fraction * n) of n examples (at least one when fraction > 0), chosen by seed.

    Args:
        examples: a split's examples in reading order.
        fraction: `data.eval_fraction`, in [0, 1).
        seed: `data.seed`.

    Returns:
        (train, held_out), each in reading order.

    Raises:
        DataError: when the fraction would hold out every example.
    """
    if fraction == 0 or not examples:
        return examples, []
    count = max(1, round(fraction * len(examples)))
    if count >= len(examples):
        raise DataError(f"data.eval_fraction={fraction} holds out all {len(examples)} examples; lower it or add data")
    chosen = set(np.random.default_rng([seed, _HOLDOUT_STREAM]).permutation(len(examples))[:count].tolist())
    train = [e for i, e in enumerate(examples) if i not in chosen]
    held_out = [e for i, e in enumerate(examples) if i in chosen]
    return train, held_out


def reject(error: DataError, cfg, report: DataReport) -> None:
    """Applies `on_bad_row` to a bad row: raise, or count the skip under its reason.

    Args:
        error: the row's problem.
        cfg: the data config (`on_bad_row`).
        report: counts the skip, keeping the error's message among the first of its reason.

    Raises:
        DataError: `error`, under `on_bad_row="error"` or when it has no reason (a problem with the whole source).
    """
    if cfg.on_bad_row == "error" or error.reason is None:
        raise error
    report.count_skip(error.reason, str(error))


def _validated(rows: Iterable[SourceRow], validate: Callable[[Any, str], T], cfg, report: DataReport) -> Validated[T]:
    examples = []
    for row in rows:
        report.examples_read += 1
        try:
            if isinstance(row.value, DataError):
                raise row.value
            examples.append((row.where, validate(row.value, row.where)))
        except DataError as e:
            reject(e, cfg, report)
    return examples
