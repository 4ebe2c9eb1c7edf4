"""`build_data`, `build_sft_data`: from a data config to training batches, eval batches and a report.

The stages, each in its own module: read rows (`sources`), validate them as SFT examples (`schemas`), hold some
out for evaluation, tokenise them with the chat template and mask the assistant's tokens (`tokenization`), then
batch them (`batching`, with `packing`). Bad rows raise or are counted, as `on_bad_row` says (`stages`, which
the preference builder shares). `build_data` picks the builder that `data.format` needs.
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data import schemas
from alignjax.data.batching import BatchIterator
from alignjax.data.config import validate_data_config
from alignjax.data.errors import RESPONSE_TRUNCATED, DataError
from alignjax.data.preference_pipeline import build_preference_data
from alignjax.data.report import DataReport
from alignjax.data.stages import in_chunks, read_examples, rejected, resolve_tokenizer, sft_batches
from alignjax.data.tokenization import TokenizedExample, encode_chats, truncate

Example = tuple[str, list[dict[str, str]]]  # (where the row came from, its validated messages)


def build_data(
    data_cfg, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]:
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


def build_sft_data(
    data_cfg, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]:
    """Builds the SFT data of an experiment.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`), with `format="sft"`.
        tokenizer: the tokenizer of the model being trained. None takes a builtin dataset's own tokenizer; other
            sources need one.

    Returns:
        (train_iter, eval_batches, tokenizer, report): an endless resumable `BatchIterator` of training batches,
        a list of fixed-shape unpacked eval batches with `example_index` (empty when nothing is held out), the
        tokenizer used, and the counts of what happened to the rows.
    """
    validate_data_config(data_cfg)
    cfg = data_cfg
    if cfg.format != "sft":
        raise DataError(f"data.format={cfg.format!r}: build_sft_data builds 'sft' data; call build_data instead")
    tokenizer = resolve_tokenizer(cfg, tokenizer)
    report = DataReport(source=f"{cfg.source}:{cfg.path}")
    train, held_out = read_examples(cfg, schemas.sft_messages, report)
    train_examples = _tokenized(train, tokenizer, cfg, report, "train")
    eval_examples = _tokenized(held_out, tokenizer, cfg, report, "eval")
    if not train_examples:
        raise DataError(f"no training examples are left after reading and filtering:\n{report}")
    return sft_batches(train_examples, eval_examples, tokenizer, cfg, report)


def _tokenized(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, cfg, report: DataReport, split: str
) -> list[TokenizedExample]:
    tokenized = []
    for chunk in in_chunks(examples, split):
        results = encode_chats([messages for _, messages in chunk], tokenizer, [where for where, _ in chunk])
        for result in results:
            if isinstance(result, DataError):
                rejected(result, cfg, report)
                continue
            cut = truncate(result, cfg.seq_len)
            if cut is None:
                report.count_skip(RESPONSE_TRUNCATED)
                continue
            report.truncated += cut is not result
            tokenized.append(cut)
    return tokenized
