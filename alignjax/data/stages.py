"""The stages that every data builder shares: the tokenizer, reading and validating rows, the held-out split, the
handling of bad rows, the progress of tokenisation, and SFT batches (which conditional-token SFT builds too).

`build_sft_data` and `build_preference_data` differ in their schema, tokenisation and batches; everything around
those lives here once, so that a bad row, a held-out split or a missing tokenizer behaves the same in both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.builtin import get_builtin
from alignjax.data.errors import DataError
from alignjax.data.report import DataReport
from alignjax.data.sources import SourceRow, read_rows
from alignjax.data.tokenization import TokenizedExample, check_chat_template

_HOLDOUT_STREAM = 1  # seeds the held-out choice apart from the epoch shuffles, which use (seed, epoch)
_PROGRESS_DELAY_S = 3.0  # a progress bar appears only when tokenising takes longer than this
_TOKENIZE_CHUNK = 1024  # examples per batched tokenizer call

T = TypeVar("T")
Validated = list[tuple[str, T]]  # (where the row came from, its validated form)


def resolve_tokenizer(cfg, tokenizer: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
    """The tokenizer to use: the one given, or a builtin dataset's own; it must have a chat template."""
    if tokenizer is None:
        if cfg.source != "builtin":
            raise DataError(
                f"data.source={cfg.source!r} needs a tokenizer: set the model/tokenizer path of the model being "
                "trained (only builtin datasets bring their own)"
            )
        tokenizer = get_builtin(cfg.path).tokenizer()
    check_chat_template(tokenizer)
    return tokenizer


def read_examples(
    cfg, validate: Callable[[Any, str], T], report: DataReport
) -> tuple[Validated[T], Validated[T]]:
    """Reads, validates and splits the rows of `cfg` into training and held-out examples.

    Args:
        cfg: the data config.
        validate: (row, where) -> the row's validated form, or a DataError.
        report: counts rows read and skipped.

    Returns:
        (train, held_out), each [(where, validated row)] in reading order; a builtin dataset's held-out examples
        are its own eval split, others' are `eval_fraction` of the rows, chosen by seed.
    """
    rows = itertools.islice(read_rows(cfg.source, cfg.path, cfg.split), cfg.max_examples or None)
    train = _validated(rows, validate, cfg, report)
    if cfg.source == "builtin":
        eval_rows = read_rows("builtin", cfg.path, get_builtin(cfg.path).eval_split)
        return train, _validated(eval_rows, validate, cfg, report)
    return _hold_out(train, cfg.eval_fraction, cfg.seed)


def rejected(error: DataError, cfg, report: DataReport) -> None:
    """Applies `on_bad_row` to a bad row: raise, or count the skip under its reason."""
    if cfg.on_bad_row == "error" or error.reason is None:
        raise error
    report.count_skip(error.reason, str(error))


def in_chunks(items: list[T], split: str) -> Iterator[list[T]]:
    """`items` in chunks for batched tokenizer calls, with a progress bar when that takes a while."""
    progress = tqdm(total=len(items), desc=f"tokenizing {split}", unit="ex", delay=_PROGRESS_DELAY_S, mininterval=1)
    with progress:
        for start in range(0, len(items), _TOKENIZE_CHUNK):
            chunk = items[start : start + _TOKENIZE_CHUNK]
            yield chunk
            progress.update(len(chunk))


def sft_batches(
    train_examples: list[TokenizedExample],
    eval_examples: list[TokenizedExample],
    tokenizer: PreTrainedTokenizerBase,
    cfg,
    report: DataReport,
) -> tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]:
    """Batches tokenised SFT examples (packed if `cfg.pack`) and completes the report's counts of them."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_iter = BatchIterator(
        train_examples,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        pack=cfg.pack,
        seed=cfg.seed,
        pad_id=pad_id,
        length_bucket=cfg.length_bucket,
    )
    evals = eval_batches(
        eval_examples, seq_len=cfg.seq_len, batch_size=cfg.batch_size, pad_id=pad_id, length_bucket=cfg.length_bucket
    )

    epoch_rows = train_iter.epoch_rows(0)
    report.train_examples, report.eval_examples = len(train_examples), len(eval_examples)
    report.packed_rows = len(epoch_rows)
    report.train_tokens = sum(len(e) for e in train_examples)
    report.target_tokens = int(sum(e.assistant_L[1:].sum() for e in train_examples))
    report.padding_fraction = 1.0 - report.train_tokens / (len(epoch_rows) * cfg.seq_len)
    report.batches_per_epoch = len(epoch_rows) / cfg.batch_size
    return train_iter, evals, tokenizer, report


def _validated(rows: Iterable[SourceRow], validate: Callable[[Any, str], T], cfg, report: DataReport) -> Validated[T]:
    examples = []
    for row in rows:
        report.examples_read += 1
        try:
            if isinstance(row.value, DataError):
                raise row.value
            examples.append((row.where, validate(row.value, row.where)))
        except DataError as e:
            rejected(e, cfg, report)
    return examples


def _hold_out(examples: list[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Splits off round(fraction * n) examples (at least one when fraction > 0), chosen by seed."""
    if fraction == 0 or not examples:
        return examples, []
    count = max(1, round(fraction * len(examples)))
    if count >= len(examples):
        raise DataError(f"data.eval_fraction={fraction} holds out all {len(examples)} examples; lower it or add data")
    chosen = set(np.random.default_rng([seed, _HOLDOUT_STREAM]).permutation(len(examples))[:count].tolist())
    train = [e for i, e in enumerate(examples) if i not in chosen]
    held_out = [e for i, e in enumerate(examples) if i in chosen]
    return train, held_out
