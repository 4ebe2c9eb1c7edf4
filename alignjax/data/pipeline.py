"""`build_data`: from a data config to training batches, eval batches and a report, for every example format.

One path, each stage in its own module, with the SFT and preference variants side by side:

    sources      read rows (files, hub, builtins)
    splits       validate them (`schemas`), hold some out for evaluation, raise or count bad rows (`on_bad_row`)
    formats      preference rows only: convert them to what `data.format` trains on (binarise ranked lists, split
                 pairs into unpaired examples)
    templates    render as `data.template` says (the chat template, or plain prompt and completion) and
                 tokenise: SFT examples with their assistant mask, preference examples as a prompt and its responses
    truncation   cut to `seq_len`; stop before training when that loses more than `data.max_lost_fraction`
    batching     an endless resumable stream of training batches and fixed eval batches, laid out by `packing`:
                 SFT rows [B, L] (packed if `data.pack`), or K responses per prompt [B, K, L]

`build_sft_data` ("sft") and `build_preference_data` ("pairs", "ranked", "unpaired", "conditional") differ only in
their validation, conversion, tokenisation and layout; `build_data` picks the one that `data.format` needs. K is
fixed for the run, so the train step compiles once: 2 for pairs and unpaired examples (with KTO's KL completion),
the longest list for ranked ones. `data.format="conditional"` ends like SFT: each pair becomes two SFT examples,
the chosen response after `data.control_good` and the rejected one after `data.control_bad`, with the tag given
(masked out of the loss), batched like any SFT data, packing included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm
from transformers import PreTrainedTokenizerBase

from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.builtin import load_builtin_tokenizer
from alignjax.data.config import validate_data_config
from alignjax.data.errors import DataError
from alignjax.data.formats import PREFERENCE_FORMATS, to_format
from alignjax.data.packing import Layout, layout_rows, preference_layout, responses_per_example
from alignjax.data.report import DataReport
from alignjax.data.schemas import preference_example, sft_messages
from alignjax.data.splits import read_examples, reject
from alignjax.data.templates import get_template
from alignjax.data.tokenization import PreferenceTokens, TokenizedExample, pad_token_id
from alignjax.data.truncation import check_losses, fit, join, truncate

_PROGRESS_DELAY_S = 3.0  # a progress bar appears only when tokenising takes longer than this
_TOKENIZE_CHUNK = 1024  # examples per batched tokenizer call

Example = TypeVar("Example")
Tokens = TypeVar("Tokens")
Built = tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]


def build_data(data_cfg, tokenizer: PreTrainedTokenizerBase | None = None) -> Built:
    """Builds an experiment's data in the format that `data.format` names: what a training loop calls.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`).
        tokenizer: the tokenizer of the model being trained; None takes a builtin dataset's own.

    Returns:
        (train_iter, eval_batches, tokenizer, report) of `build_sft_data` for "sft", of `build_preference_data`
        for the preference formats ("pairs", "ranked", "unpaired": [B, K, L] batches; "conditional": SFT batches).
    """
    validate_data_config(data_cfg)
    builder = build_sft_data if data_cfg.format == "sft" else build_preference_data
    return builder(data_cfg, tokenizer)


def build_sft_data(data_cfg, tokenizer: PreTrainedTokenizerBase | None = None) -> Built:
    """Builds the SFT data of an experiment.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`), with `format="sft"`.
        tokenizer: the tokenizer of the model being trained. None takes a builtin dataset's own tokenizer; other
            sources need one.

    Returns:
        (train_iter, eval_batches, tokenizer, report): an endless resumable `BatchIterator` of training batches
        ([B, L] arrays of `packing.layout_rows`), a list of fixed-shape unpacked eval batches with `example_index`
        (empty when nothing is held out), the tokenizer used, and the counts of what happened to the rows.
    """
    validate_data_config(data_cfg)
    cfg = data_cfg
    if cfg.format != "sft":
        raise DataError(f"data.format={cfg.format!r}: build_sft_data builds 'sft' data; call build_data instead")
    tokenizer = resolve_tokenizer(cfg, tokenizer)
    report = DataReport(source=f"{cfg.source}:{cfg.path}", format=cfg.format)
    train, held_out = read_examples(cfg, sft_messages, report)

    template = get_template(cfg.template)

    def encode(conversations: list[list[dict[str, str]]], wheres: list[str]) -> list:
        return template.sft(conversations, tokenizer, wheres)

    def cut(example: TokenizedExample, where: str) -> TokenizedExample:
        return truncate(example, cfg.seq_len, cfg.truncation_side, where)

    train_examples = _tokenized(train, encode, cut, cfg, report, "train")
    eval_examples = _tokenized(held_out, encode, cut, cfg, report, "eval")
    _check_kept(train_examples, eval_examples, len(held_out), cfg, report)
    return _batches(train_examples, eval_examples, tokenizer, cfg, report, layout_rows)


def build_preference_data(data_cfg, tokenizer: PreTrainedTokenizerBase | None = None) -> Built:
    """Builds the preference data of an experiment.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`) with `format` one of "pairs",
            "ranked", "unpaired" or "conditional".
        tokenizer: the tokenizer of the model being trained. None takes a builtin dataset's own tokenizer; other
            sources need one.

    Returns:
        (train_iter, eval_batches, tokenizer, report): an endless resumable `BatchIterator` of training batches
        ([B, K, L] arrays of `packing.layout_preferences`; SFT batches for "conditional"), a list of fixed-shape
        eval batches with `example_index` (empty when nothing is held out), the tokenizer used, and the counts of
        what happened to the rows.
    """
    validate_data_config(data_cfg)
    cfg = data_cfg
    if cfg.format not in PREFERENCE_FORMATS:
        raise DataError(
            f"data.format={cfg.format!r}: build_preference_data builds {list(PREFERENCE_FORMATS)}; call build_data"
        )
    tokenizer = resolve_tokenizer(cfg, tokenizer)
    report = DataReport(source=f"{cfg.source}:{cfg.path}", format=cfg.format)
    train, held_out = read_examples(cfg, preference_example, report)

    template = get_template(cfg.template)

    def encode(examples: list, wheres: list[str]) -> list:
        tags = None  # conditional examples (unpaired, one response each) get the control tag of their label
        if cfg.format == "conditional":
            tags = [cfg.control_good if example.label else cfg.control_bad for example in examples]
        return template.preferences(examples, tokenizer, wheres, tags)

    def cut(tokens: PreferenceTokens, where: str) -> PreferenceTokens:
        return fit(tokens, cfg.seq_len, where)

    train_examples = to_format(train, cfg.format, cfg.binarize, cfg.seed)
    held_out_examples = to_format(held_out, cfg.format, cfg.binarize, cfg.seed)
    train_tokens = _tokenized(train_examples, encode, cut, cfg, report, "train")
    eval_tokens = _tokenized(held_out_examples, encode, cut, cfg, report, "eval")
    _check_kept(train_tokens, eval_tokens, len(held_out_examples), cfg, report)
    if cfg.format == "conditional":
        train_rows = [join(t.prompt_P, t.responses[0], cfg.seq_len) for t in train_tokens]
        eval_rows = [join(t.prompt_P, t.responses[0], cfg.seq_len) for t in eval_tokens]
        return _batches(train_rows, eval_rows, tokenizer, cfg, report, layout_rows)
    k = responses_per_example(train_tokens + eval_tokens)
    layout = preference_layout(train_tokens + eval_tokens, k)
    return _batches(train_tokens, eval_tokens, tokenizer, cfg, report, layout, k)


def resolve_tokenizer(cfg, tokenizer: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
    """The tokenizer to use: the one given, or a builtin dataset's own; it must be able to render `data.template`.

    Args:
        cfg: the data config (`source`, `path`, `template`).
        tokenizer: the tokenizer of the model being trained, or None.

    Returns:
        The tokenizer.

    Raises:
        DataError: when none is given for a source other than a builtin, or the tokenizer has no chat template
            ("chat") or no EOS token ("plain").
    """
    if tokenizer is None:
        if cfg.source != "builtin":
            raise DataError(
                f"data.source={cfg.source!r} needs a tokenizer: set the model/tokenizer path of the model being "
                "trained (only builtin datasets bring their own)"
            )
        tokenizer = load_builtin_tokenizer(cfg.path)
    get_template(cfg.template).check(tokenizer)
    return tokenizer


def _tokenized(
    examples: list[tuple[str, Example]],
    encode: Callable[[list[Example], list[str]], list[Tokens | DataError]],
    cut: Callable[[Tokens, str], Tokens | None],
    cfg,
    report: DataReport,
    split: str,
) -> list[Tokens]:
    """Tokenises a split's examples in chunks and cuts them to `seq_len`; bad ones are rejected as `on_bad_row` says.

    Args:
        examples: (where, validated example) of the split, in order.
        encode: (examples, wheres) -> per example its tokens or its DataError (one batched tokenizer call).
        cut: (tokens, where) -> the tokens cut to `seq_len` (the same object when they fit); raises a DataError
            with a reason of `errors.LENGTH_LOSSES` when the cut leaves no response, which is counted whatever
            `on_bad_row` says (`truncation.check_losses` judges the counts).
        cfg: the data config.
        report: counts skipped and truncated examples and the longest example's length.
        split: "train" or "eval", for the progress bar.

    Returns:
        The kept examples' tokens, in order.
    """
    tokenized = []
    for chunk in _in_chunks(examples, split):
        wheres = [where for where, _ in chunk]
        results = encode([example for _, example in chunk], wheres)
        for result, where in zip(results, wheres):
            if isinstance(result, DataError):
                reject(result, cfg, report)
                continue
            report.longest_example = max(report.longest_example, len(result))
            try:
                fitted = cut(result, where)
            except DataError as e:  # a length loss, not a bad row
                report.count_skip(e.reason, str(e))
                continue
            if fitted is not result:
                report.count_truncated(f"{where}: {len(result)} tokens, cut to data.seq_len={cfg.seq_len}")
            tokenized.append(fitted)
    return tokenized


def _in_chunks(items: list, split: str) -> Iterator[list]:
    """`items` in chunks for batched tokenizer calls, with a progress bar when that takes a while on a terminal
    (`disable=None`: none in a piped log, where its carriage returns would leave fragments)."""
    progress = tqdm(
        total=len(items), desc=f"tokenizing {split}", unit="ex", delay=_PROGRESS_DELAY_S, mininterval=1, disable=None
    )
    with progress:
        for start in range(0, len(items), _TOKENIZE_CHUNK):
            chunk = items[start : start + _TOKENIZE_CHUNK]
            yield chunk
            progress.update(len(chunk))


def _check_kept(train: list, held_out: list, held_out_read: int, cfg, report: DataReport) -> None:
    """Raises when cutting to seq_len lost too much (`check_losses`), or when no training example is left, or no
    held-out one of the `held_out_read` examples held out: a run must not silently skip its evaluation."""
    check_losses(cfg, report, len(train) + len(held_out))
    if not train:
        raise DataError(f"no training examples are left after reading and filtering:\n{report}")
    if held_out_read and not held_out:
        raise DataError(
            f"data {report.source}: none of the {held_out_read} held-out examples is left after tokenising and "
            f"cutting to data.seq_len={cfg.seq_len}, so the run could not evaluate (skipped: {report.skipped}); "
            "raise data.seq_len, or hold out more rows (data.eval_fraction)"
        )


def _batches(
    train: list[Any],
    held_out: list[Any],
    tokenizer: PreTrainedTokenizerBase,
    cfg,
    report: DataReport,
    layout: Layout,
    k: int = 0,
) -> Built:
    """Batches tokenised examples and completes the report's counts of them.

    Args:
        train: the training examples (`TokenizedExample`s, or `PreferenceTokens` for [B, K, L] batches).
        held_out: the eval examples, of the same kind.
        tokenizer: the tokenizer, whose pad id fills padding.
        cfg: the data config (SFT rows are packed if `data.pack`; preference formats never are).
        report: the report to complete.
        layout: `packing.layout_rows`, or the `packing.preference_layout` of K responses per prompt.
        k: K of [B, K, L] batches; 0 for SFT rows.

    Returns:
        (train_iter, eval_batches, tokenizer, report), as `build_data` returns them.
    """
    pad_id = pad_token_id(tokenizer)
    common = {"seq_len": cfg.seq_len, "batch_size": cfg.batch_size, "pad_id": pad_id, "layout": layout}
    train_iter = BatchIterator(train, pack=cfg.pack, seed=cfg.seed, length_bucket=cfg.length_bucket, **common)
    evals = eval_batches(held_out, length_bucket=cfg.length_bucket, **common)

    counts = [_tokens_and_targets(example) for example in train]
    report.count_epoch(
        train_examples=len(train),
        eval_examples=len(held_out),
        rows=len(train_iter.epoch_rows(0)),
        row_slots=max(k, 1) * cfg.seq_len,
        train_tokens=sum(tokens for tokens, _ in counts),
        target_tokens=sum(targets for _, targets in counts),
        batch_size=cfg.batch_size,
        responses_per_example=k,
    )
    return train_iter, evals, tokenizer, report


def _tokens_and_targets(example: TokenizedExample | PreferenceTokens) -> tuple[int, int]:
    """An example's tokens in a training epoch and those that carry loss (every response repeats its prompt)."""
    if isinstance(example, PreferenceTokens):
        targets = sum(map(len, example.responses))
        return len(example.prompt_P) * len(example.responses) + targets, targets
    return len(example), int(example.assistant_L[1:].sum())
