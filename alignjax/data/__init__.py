"""Data: sources (files, hub, builtins) -> validated examples -> chat-template tokens -> fixed-shape batches.

Usage, with `cfg.data` made by `sft_data_config(...)`; `data.format` picks SFT ("sft", "conditional") or
preference batches ("pairs", "ranked", "unpaired"):

    train_iter, eval_batches, tokenizer, report = build_data(cfg.data)
    batch = next(train_iter)    # SFT: tokens, positions, segment_ids, targets, loss_mask: [batch_size, seq_len]
                                # preferences: the same [B, K, seq_len]; valid_BK, scores_BK, labels_B
    saved = train_iter.state()  # JSON-serialisable; train_iter.restore(saved) resumes exactly
"""

from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.builtin import load_builtin_tokenizer
from alignjax.data.config import FORMATS, sft_data_config, validate_data_config
from alignjax.data.errors import DataError
from alignjax.data.pipeline import build_data, build_sft_data
from alignjax.data.preference_batching import layout_preferences, preference_eval_batches
from alignjax.data.preference_formats import BINARIZE, binarize, to_format
from alignjax.data.preference_pipeline import build_preference_data
from alignjax.data.preference_schemas import PreferenceExample, preference_example
from alignjax.data.preference_tokenization import PreferenceTokens, encode_preferences
from alignjax.data.report import DataReport
from alignjax.data.tokenization import TokenizedExample, conditional_prompt, encode_chat, encode_chat_prompt

__all__ = [
    "BINARIZE",
    "BatchIterator",
    "DataError",
    "DataReport",
    "FORMATS",
    "PreferenceExample",
    "PreferenceTokens",
    "TokenizedExample",
    "binarize",
    "build_data",
    "build_preference_data",
    "build_sft_data",
    "conditional_prompt",
    "encode_chat",
    "encode_chat_prompt",
    "encode_preferences",
    "eval_batches",
    "layout_preferences",
    "load_builtin_tokenizer",
    "preference_eval_batches",
    "preference_example",
    "sft_data_config",
    "to_format",
    "validate_data_config",
]
