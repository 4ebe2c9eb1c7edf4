"""Data: one path from sources to batches, for every example format.

    sources -> splits (validated by schemas; held out; bad rows) -> formats -> templates -> truncation -> batching

`sources` reads rows from files, the hub or a builtin dataset (`builtin`); `splits` validates them into examples
(`schemas`: SFT conversations, preference examples, or the prompts of an on-policy run), holds some out for
evaluation and raises or counts bad rows as `data.on_bad_row` says; `formats` turns preference rows into what
`data.format` trains on (one of `FORMATS`); `templates` renders them as `data.template` says, with the chat template
(`tokenization`) or as plain prompt and completion for base models (`plain`), and tokenises them; `truncation` cuts
them to `data.seq_len` and stops a run that would lose more than `data.max_lost_fraction` of them; `batching` serves
an endless resumable training stream and fixed eval batches, laid out by `packing`. `pipeline.build_data` runs
the whole path for the `data` section of a config (`config`), and `report` counts what happened to the rows.
Bad data raise `DataError`; invalid config values raise `alignjax.config_errors.ConfigError`.

Usage, with `cfg.data` made by `sft_data_config(...)`; `data.format` picks SFT ("sft", "conditional") or
preference batches ("pairs", "ranked", "unpaired"):

    train_iter, eval_batches, tokenizer, report = build_data(cfg.data)
    batch = next(train_iter)    # SFT: tokens, positions, segment_ids, targets, loss_mask: [B, L]
                                # preferences: the same [B, K, L]; valid_BK, scores_BK, labels_B
    saved = train_iter.state()  # JSON-serialisable; train_iter.restore(saved) resumes exactly
"""

from alignjax.data.batching import BatchIterator, eval_batches, preference_eval_batches, trim_to_bucket
from alignjax.data.builtin import load_builtin_tokenizer
from alignjax.data.config import sft_data_config, validate_data_config
from alignjax.data.errors import DataError
from alignjax.data.formats import BINARIZE, FORMATS, binarize, to_format
from alignjax.data.packing import layout_preferences, preference_layout
from alignjax.data.pipeline import build_data, build_preference_data, build_sft_data
from alignjax.data.report import DataReport
from alignjax.data.schemas import (
    DemonstrationExample,
    PreferenceExample,
    PromptExample,
    demonstration_example,
    preference_example,
    prompt_example,
    prompt_messages,
    sft_messages,
)
from alignjax.data.splits import hold_out, read_examples
from alignjax.data.templates import TEMPLATES, get_template
from alignjax.data.tokenization import (
    PreferenceTokens,
    TokenizedExample,
    conditional_prompt,
    encode_chat,
    encode_chat_prompt,
    encode_preferences,
    pad_token_id,
)

__all__ = [
    "BINARIZE",
    "FORMATS",
    "TEMPLATES",
    "BatchIterator",
    "DataError",
    "DataReport",
    "DemonstrationExample",
    "PreferenceExample",
    "PreferenceTokens",
    "PromptExample",
    "TokenizedExample",
    "binarize",
    "build_data",
    "build_preference_data",
    "build_sft_data",
    "conditional_prompt",
    "demonstration_example",
    "encode_chat",
    "encode_chat_prompt",
    "encode_preferences",
    "eval_batches",
    "get_template",
    "hold_out",
    "layout_preferences",
    "load_builtin_tokenizer",
    "pad_token_id",
    "preference_eval_batches",
    "preference_example",
    "preference_layout",
    "prompt_example",
    "prompt_messages",
    "read_examples",
    "sft_data_config",
    "sft_messages",
    "to_format",
    "trim_to_bucket",
    "validate_data_config",
]
