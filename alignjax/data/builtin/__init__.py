"""Datasets that ship with alignjax, so that an experiment runs with no files and no network.

A builtin dataset brings its own splits (one of them held out for evaluation) and its own tokenizer, which is
what lets the README's first experiment train a model from scratch: `source="builtin"` needs no tokenizer path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from alignjax.data.builtin import toy_instructions
from alignjax.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A dataset generated in code.

    Attributes:
        name: the name `data.path` selects it by.
        splits: the split names `rows` accepts.
        eval_split: the held-out split that evaluation uses.
        rows: split name -> list of SFT rows.
        tokenizer: builds the dataset's own tokenizer (with a chat template).
    """

    name: str
    splits: tuple[str, ...]
    eval_split: str
    rows: Callable[[str], list[dict]]
    tokenizer: Callable[[], PreTrainedTokenizerBase]


_BUILTINS = {
    module.NAME: BuiltinDataset(module.NAME, module.SPLITS, module.EVAL_SPLIT, module.rows, module.tokenizer)
    for module in (toy_instructions,)
}


def get_builtin(name: str) -> BuiltinDataset:
    """The builtin dataset called `name`; a DataError lists the valid names otherwise."""
    if name not in _BUILTINS:
        raise DataError(f"data.path={name!r} is not a builtin dataset; builtin datasets are {sorted(_BUILTINS)}")
    return _BUILTINS[name]


def load_builtin_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of builtin dataset `name` (a fresh instance each call; save it with `save_pretrained`).

    Args:
        name: a builtin dataset name, e.g. "toy_instructions".

    Returns:
        A `transformers` fast tokenizer with pad, bos and eos tokens and a chat template.
    """
    return get_builtin(name).tokenizer()
