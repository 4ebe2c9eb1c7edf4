"""SFT data: sources (files, hub, builtins) -> validated examples -> chat-template tokens -> fixed-shape batches.

Usage, with `cfg.data` made by `sft_data_config(...)`:

    train_iter, eval_batches, tokenizer, report = build_sft_data(cfg.data)
    batch = next(train_iter)    # tokens, positions, segment_ids, targets, loss_mask: [batch_size, seq_len]
    saved = train_iter.state()  # JSON-serialisable; train_iter.restore(saved) resumes exactly
"""

from alignjax.data.batching import BatchIterator, eval_batches
from alignjax.data.builtin import load_builtin_tokenizer
from alignjax.data.config import sft_data_config, validate_data_config
from alignjax.data.errors import DataError
from alignjax.data.pipeline import build_sft_data
from alignjax.data.report import DataReport
from alignjax.data.tokenization import TokenizedExample, encode_chat

__all__ = [
    "BatchIterator",
    "DataError",
    "DataReport",
    "TokenizedExample",
    "build_sft_data",
    "encode_chat",
    "eval_batches",
    "load_builtin_tokenizer",
    "sft_data_config",
    "validate_data_config",
]
