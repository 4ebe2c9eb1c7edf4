"""Datasets that ship with alignjax, so that an experiment runs with no files and no network.

A builtin dataset brings its own splits (one of them held out for evaluation) and its own tokenizer, which is
what lets the README's first experiment train a model from scratch: `source="builtin"` needs no tokenizer path.
A dataset whose good answers follow a checkable rule brings the rule too, so a run can report how often the
model's greedy answers to the held-out prompts follow it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from alignjax.data.builtin import stories_user_style, toy_instructions, toy_preferences, toy_user_style
from alignjax.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A dataset generated in code.

    Attributes:
        name: the name `data.path` selects it by.
        splits: the split names `rows` accepts.
        eval_split: the held-out split that evaluation uses.
        rows: split name -> list of rows (SFT or preference rows, as `schemas` reads them).
        tokenizer: builds the dataset's own tokenizer (with a chat template); None for rows in plain text that the
            model's own tokenizer reads.
        rule: (prompt, answer) -> whether the answer follows the dataset's rule; None when there is none.
    """

    name: str
    splits: tuple[str, ...]
    eval_split: str
    rows: Callable[[str], list[dict]]
    tokenizer: Callable[[], PreTrainedTokenizerBase] | None
    rule: Callable[[str, str], bool] | None = None


_BUILTINS = {
    dataset.name: dataset
    for dataset in (
        BuiltinDataset(
            toy_instructions.NAME,
            toy_instructions.SPLITS,
            toy_instructions.EVAL_SPLIT,
            toy_instructions.rows,
            toy_instructions.tokenizer,
        ),
        BuiltinDataset(
            toy_preferences.DEMONSTRATIONS,
            toy_preferences.SPLITS,
            toy_preferences.EVAL_SPLIT,
            toy_preferences.demonstration_rows,
            toy_instructions.tokenizer,
            toy_preferences.follows_rule,
        ),
        BuiltinDataset(
            toy_preferences.PREFERENCES,
            toy_preferences.SPLITS,
            toy_preferences.EVAL_SPLIT,
            toy_preferences.preference_rows,
            toy_instructions.tokenizer,
            toy_preferences.follows_rule,
        ),
        BuiltinDataset(
            toy_user_style.NAME,
            toy_user_style.SPLITS,
            toy_user_style.EVAL_SPLIT,
            toy_user_style.rows,
            toy_instructions.tokenizer,
            toy_user_style.follows_style,
        ),
        BuiltinDataset(
            stories_user_style.NAME,
            stories_user_style.SPLITS,
            stories_user_style.EVAL_SPLIT,
            stories_user_style.rows,
            None,
            stories_user_style.ends_like_the_reader,
        ),
    )
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
    dataset = get_builtin(name)
    if dataset.tokenizer is None:
        raise DataError(
            f"builtin dataset {name!r} has no tokenizer of its own: set model.path (or model.tokenizer) to the model "
            "whose tokenizer reads it"
        )
    return dataset.tokenizer()
