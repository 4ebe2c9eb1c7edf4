"""The `data` section of an experiment config: its fields, their defaults and their validation.

One section serves every example format (`format`, one of `formats.FORMATS`): SFT, the preference formats
(pairs, ranked lists, unpaired), and conditional-token SFT, rendered with the tokenizer's chat template or as plain
prompt and completion (`template`, one of `templates.TEMPLATES`). Experiments build it with `sft_data_config(...)` so
every field exists (a locked ConfigDict then turns a mistyped override into an error); `validate_data_config`
checks the values before any file is opened and raises `ConfigError` naming the field and what it accepts, or the
combination of fields that cannot work together.
"""

from __future__ import annotations

import numbers

import ml_collections

from alignjax.config_errors import require
from alignjax.data.formats import BINARIZE, FORMATS
from alignjax.data.templates import TEMPLATES
from alignjax.data.truncation import SIDES

SOURCES = ("builtin", "json", "parquet", "hf")
ON_BAD_ROW = ("error", "skip")
UNPACKED_FORMATS = ("pairs", "ranked", "unpaired")  # batches of K responses per prompt are never packed

_DEFAULTS = {
    "source": "builtin",  # one of SOURCES
    "path": "toy_instructions",  # builtin name, file / directory / glob, or hub dataset id (or local dataset dir)
    "split": "train",  # split to train on (hub and builtin datasets; local files have one split)
    "eval_fraction": 0.1,  # share of rows held out for eval, chosen by seed; builtins use their own held-out split
    "seq_len": 64,  # tokens per row; longer examples are cut (see truncation_side, max_lost_fraction)
    "truncation_side": "right",  # SFT: "right" cuts a long example's end, "left" its start (keeps the response)
    # Share of examples that cutting to seq_len may drop (no response token left) or cut before the run stops with
    # the counts and the fixes; 0.0: none. It applies whatever on_bad_row says: a long row is not a bad row.
    "max_lost_fraction": 0.0,
    "length_bucket": 0,  # 0: batches of seq_len columns; b > 0: each batch cut to its longest row, rounded up to b
    "batch_size": 32,  # rows per global batch
    "pack": False,  # pack several examples per row (segment ids keep them apart)
    "seed": 0,  # held-out choice and per-epoch shuffling
    "on_bad_row": "error",  # "error": the first bad row raises; "skip": bad rows are counted and left out
    "template": "chat",  # "chat": the tokenizer's chat template; "plain": prompt text, completion text, EOS
    "max_examples": 0,  # read at most this many rows of the training split; 0 reads all
    "format": "sft",  # one of FORMATS: what the rows become (see alignjax.data.build_data)
    "binarize": "best_vs_random",  # how ranked lists become pairs: one of formats.BINARIZE
    "control_good": "<good>",  # conditional format: tag before chosen responses (and at inference)
    "control_bad": "<bad>",  # conditional format: tag before rejected responses
}


def sft_data_config(**overrides) -> ml_collections.ConfigDict:
    """The data config of an SFT experiment, with defaults that train on the builtin toy task.

    Args:
        **overrides: field values to replace the defaults; an unknown field is an error.

    Returns:
        A ConfigDict with exactly the fields `build_sft_data` reads.
    """
    cfg = ml_collections.ConfigDict(_DEFAULTS)
    for field, value in overrides.items():
        if field not in _DEFAULTS:
            raise AttributeError(f"data config has no field {field!r}; fields are {sorted(_DEFAULTS)}")
        cfg[field] = value
    return cfg


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# field -> (accepts the value?, what is valid)
_CHECKS = {
    "source": (lambda v: v in SOURCES, f"one of {list(SOURCES)}"),
    "path": (lambda v: isinstance(v, str) and v != "", "a non-empty string (builtin name, file, glob or hub id)"),
    "split": (lambda v: isinstance(v, str) and v != "", "a non-empty split name such as 'train'"),
    "eval_fraction": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "seq_len": (lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "truncation_side": (lambda v: v in SIDES, f"one of {list(SIDES)}"),
    "max_lost_fraction": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0: no example may be lost)"),
    "length_bucket": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: every batch has seq_len columns)"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "pack": (lambda v: isinstance(v, bool), "True or False"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "on_bad_row": (lambda v: v in ON_BAD_ROW, f"one of {list(ON_BAD_ROW)}"),
    "template": (lambda v: v in TEMPLATES, f"one of {list(TEMPLATES)}"),
    "max_examples": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0 reads all rows)"),
    "format": (lambda v: v in FORMATS, f"one of {list(FORMATS)}"),
    "binarize": (lambda v: v in BINARIZE, f"one of {list(BINARIZE)}"),
    "control_good": (lambda v: isinstance(v, str) and v != "", "a non-empty string such as '<good>'"),
    "control_bad": (lambda v: isinstance(v, str) and v != "", "a non-empty string such as '<bad>'"),
}


def validate_data_config(cfg) -> None:
    """Checks every field of a `data` section before any file is opened.

    Args:
        cfg: a ConfigDict (or any mapping-like object with attribute access) with the fields of `sft_data_config`.

    Raises:
        ConfigError: naming the first field that is missing or holds an invalid value, and what is valid; or two
            fields that cannot work together.
    """
    for field, (accepts, valid) in _CHECKS.items():
        require(field in cfg, f"data.{field} is missing; expected {valid} (see alignjax.data.sft_data_config)")
        value = cfg[field]
        require(accepts(value), f"data.{field}={value!r} is invalid; expected {valid}")
    require(
        cfg.control_good != cfg.control_bad,
        f"data.control_good and data.control_bad are both {cfg.control_good!r}; expected two different tags",
    )
    require(
        not (cfg.pack and cfg.format in UNPACKED_FORMATS),
        f"data.pack=True with data.format={cfg.format!r}: batches of responses per prompt are never packed; "
        "set data.pack=False",
    )
    require(
        cfg.truncation_side == "right" or cfg.format == "sft",
        f"data.truncation_side={cfg.truncation_side!r} with data.format={cfg.format!r}: preference examples keep "
        "their whole prompt and cut their responses' ends; set data.truncation_side='right'",
    )
