"""`build_sft_data`: from a data config to training batches, eval batches and a report.

The stages, each in its own module: read rows (`sources`), validate them as SFT examples (`schemas`), hold some
out for evaluation, tokenise them with the chat template and mask the assistant's tokens (`tokenization`), then
batch them (`batching`, with `packing`). Bad rows raise or are counted, as `on_bad_row` says, in one place here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from alignjax.data import schemas
from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.builtin import get_builtin
from alignjax.data.config import validate_data_config
from alignjax.data.errors import RESPONSE_TRUNCATED, DataError
from alignjax.data.report import DataReport
from alignjax.data.sources import SourceRow, read_rows
from alignjax.data.tokenization import TokenizedExample, check_chat_template, encode_chats, truncate

_HOLDOUT_STREAM = 1  # seeds the held-out choice apart from the epoch shuffles, which use (seed, epoch)
_PROGRESS_DELAY_S = 3.0  # a progress bar appears only when tokenising takes longer than this
_TOKENIZE_CHUNK = 1024  # conversations per batched tokenizer call


Example = tuple[str, list[dict[str, str]]]  # (where the row came from, its validated messages)


def build_sft_data(
    data_cfg, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]:
    """Builds the SFT data of an experiment.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`).
        tokenizer: the tokenizer of the model being trained. None takes a builtin dataset's own tokenizer; other
            sources need one.

    Returns:
        (train_iter, eval_batches, tokenizer, report): an endless resumable `BatchIterator` of training batches,
        a list of fixed-shape unpacked eval batches with `example_index` (empty when nothing is held out), the
        tokenizer used, and the counts of what happened to the rows.
    """
    validate_data_config(data_cfg)
    cfg = data_cfg
    if tokenizer is None:
        if cfg.source != "builtin":
            raise DataError(
                f"data.source={cfg.source!r} needs a tokenizer: set the model/tokenizer path of the model being "
                "trained (only builtin datasets bring their own)"
            )
        tokenizer = get_builtin(cfg.path).tokenizer()
    check_chat_template(tokenizer)
    report = DataReport(source=f"{cfg.source}:{cfg.path}")

    rows = itertools.islice(read_rows(cfg.source, cfg.path, cfg.split), cfg.max_examples or None)
    train = _validated(rows, cfg, report)
    if cfg.source == "builtin":
        held_out = _validated(read_rows("builtin", cfg.path, get_builtin(cfg.path).eval_split), cfg, report)
    else:
        train, held_out = _hold_out(train, cfg.eval_fraction, cfg.seed)

    train_examples = _tokenized(train, tokenizer, cfg, report, "train")
    eval_examples = _tokenized(held_out, tokenizer, cfg, report, "eval")
    if not train_examples:
        raise DataError(f"no training examples are left after reading and filtering:\n{report}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_iter = BatchIterator(
        train_examples, seq_len=cfg.seq_len, batch_size=cfg.batch_size, pack=cfg.pack, seed=cfg.seed, pad_id=pad_id
    )
    evals = eval_batches(eval_examples, seq_len=cfg.seq_len, batch_size=cfg.batch_size, pad_id=pad_id)

    epoch_rows = train_iter.epoch_rows(0)
    report.train_examples, report.eval_examples = len(train_examples), len(eval_examples)
    report.packed_rows = len(epoch_rows)
    report.train_tokens = sum(len(e) for e in train_examples)
    report.target_tokens = int(sum(e.assistant_L[1:].sum() for e in train_examples))
    report.padding_fraction = 1.0 - report.train_tokens / (len(epoch_rows) * cfg.seq_len)
    report.batches_per_epoch = len(epoch_rows) / cfg.batch_size
    return train_iter, evals, tokenizer, report


def _rejected(error: DataError, cfg, report: DataReport) -> None:
    """Applies `on_bad_row` to a bad row: raise, or count the skip under its reason."""
    if cfg.on_bad_row == "error" or error.reason is None:
        raise error
    report.count_skip(error.reason)


def _validated(rows: Iterable[SourceRow], cfg, report: DataReport) -> list[Example]:
    examples = []
    for row in rows:
        report.examples_read += 1
        try:
            if isinstance(row.value, DataError):
                raise row.value
            examples.append((row.where, schemas.sft_messages(row.value, row.where)))
        except DataError as e:
            _rejected(e, cfg, report)
    return examples


def _hold_out(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
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


def _tokenized(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, cfg, report: DataReport, split: str
) -> list[TokenizedExample]:
    tokenized = []
    progress = tqdm(total=len(examples), desc=f"tokenizing {split}", unit="ex", delay=_PROGRESS_DELAY_S, mininterval=1)
    with progress:
        for start in range(0, len(examples), _TOKENIZE_CHUNK):
            chunk = examples[start : start + _TOKENIZE_CHUNK]
            results = encode_chats([messages for _, messages in chunk], tokenizer, [where for where, _ in chunk])
            for result in results:
                if isinstance(result, DataError):
                    _rejected(result, cfg, report)
                    continue
                cut = truncate(result, cfg.seq_len)
                if cut is None:
                    report.count_skip(RESPONSE_TRUNCATED)
                    continue
                report.truncated += cut is not result
                tokenized.append(cut)
            progress.update(len(chunk))
    return tokenized
