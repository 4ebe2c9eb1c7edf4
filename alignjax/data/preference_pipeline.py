"""`build_preference_data`: from a data config to batches of responses per prompt, eval batches and a report.

The stages mirror `build_sft_data` and share its reading, held-out split and bad-row handling (`stages`): rows are
validated into prompts with scored responses (`preference_schemas`), held out by row (so the pairs of one prompt
never straddle the split), converted to what `data.format` trains on (`preference_formats`), tokenised
(`preference_tokenization`) and batched [B, K, L] (`preference_batching`). K is fixed for the run, so the train
step compiles once: 2 for pairs and unpaired examples, the longest list for ranked ones.

`data.format="conditional"` ends differently: each pair becomes two SFT examples, the chosen response after
`data.control_good` and the rejected one after `data.control_bad`, with the tag given (masked out of the loss),
batched like any SFT data, packing included.
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerBase

from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.config import validate_data_config
from alignjax.data.errors import DataError
from alignjax.data.preference_batching import preference_layout, responses_per_example
from alignjax.data.preference_formats import PREFERENCE_FORMATS, to_format
from alignjax.data.preference_schemas import PreferenceExample, preference_example
from alignjax.data.preference_tokenization import PreferenceTokens, encode_preferences, fit, join
from alignjax.data.report import DataReport
from alignjax.data.stages import in_chunks, read_examples, rejected, resolve_tokenizer, sft_batches


def build_preference_data(
    data_cfg, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[BatchIterator, list[dict[str, np.ndarray]], PreTrainedTokenizerBase, DataReport]:
    """Builds the preference data of an experiment.

    Args:
        data_cfg: the `data` ConfigDict (fields of `config.sft_data_config`) with `format` one of "pairs",
            "ranked", "unpaired" or "conditional".
        tokenizer: the tokenizer of the model being trained. None takes a builtin dataset's own tokenizer; other
            sources need one.

    Returns:
        (train_iter, eval_batches, tokenizer, report): an endless resumable `BatchIterator` of training batches
        ([B, K, L] arrays of `preference_batching`; SFT batches for "conditional"), a list of fixed-shape eval
        batches with `example_index` (empty when nothing is held out), the tokenizer used, and the counts of what
        happened to the rows.
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
    train_tokens = _tokenized(to_format(train, cfg.format, cfg.binarize, cfg.seed), tokenizer, cfg, report, "train")
    eval_tokens = _tokenized(to_format(held_out, cfg.format, cfg.binarize, cfg.seed), tokenizer, cfg, report, "eval")
    if not train_tokens:
        raise DataError(f"no training examples are left after reading and filtering:\n{report}")
    if cfg.format == "conditional":
        train_examples = [join(t.prompt_P, t.responses[0], cfg.seq_len) for t in train_tokens]
        eval_examples = [join(t.prompt_P, t.responses[0], cfg.seq_len) for t in eval_tokens]
        return sft_batches(train_examples, eval_examples, tokenizer, cfg, report)

    k = responses_per_example(train_tokens + eval_tokens)
    layout = preference_layout(train_tokens + eval_tokens, k)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_iter = BatchIterator(
        train_tokens,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        pack=False,
        seed=cfg.seed,
        pad_id=pad_id,
        layout=layout,
        length_bucket=cfg.length_bucket,
    )
    evals = eval_batches(
        eval_tokens,
        seq_len=cfg.seq_len,
        batch_size=cfg.batch_size,
        pad_id=pad_id,
        layout=layout,
        length_bucket=cfg.length_bucket,
    )

    report.train_examples, report.eval_examples = len(train_tokens), len(eval_tokens)
    report.responses_per_example = k
    report.packed_rows = len(train_tokens)
    report.train_tokens = sum(len(t.prompt_P) * len(t.responses) + sum(map(len, t.responses)) for t in train_tokens)
    report.target_tokens = sum(sum(map(len, t.responses)) for t in train_tokens)
    report.padding_fraction = 1.0 - report.train_tokens / (len(train_tokens) * k * cfg.seq_len)
    report.batches_per_epoch = len(train_tokens) / cfg.batch_size
    return train_iter, evals, tokenizer, report


def _tokenized(
    examples: list[tuple[str, PreferenceExample]],
    tokenizer: PreTrainedTokenizerBase,
    cfg,
    report: DataReport,
    split: str,
) -> list[PreferenceTokens]:
    """Tokenises a split's examples and fits them to `seq_len`; bad ones are rejected as `on_bad_row` says.

    Conditional examples (unpaired, one response each) get the control tag of their label.
    """
    tokenized = []
    for chunk in in_chunks(examples, split):
        wheres = [where for where, _ in chunk]
        tags = None
        if cfg.format == "conditional":
            tags = [cfg.control_good if example.label else cfg.control_bad for _, example in chunk]
        results = encode_preferences([example for _, example in chunk], tokenizer, wheres, tags)
        for result, where in zip(results, wheres):
            try:
                if isinstance(result, DataError):
                    raise result
                fitted = fit(result, cfg.seq_len, where)
            except DataError as e:
                rejected(e, cfg, report)
                continue
            report.truncated += fitted is not result
            tokenized.append(fitted)
    return tokenized
