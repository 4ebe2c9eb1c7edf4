"""Labelled pairs for meta-evaluation: two answers to one instruction and which one a person judged better.

Two formats are read (`eval.labelled_format`, or told apart by their fields with "auto"):
- llmbar: LLMBar's `input`, `output_1`, `output_2` and `label` (1 or 2: the better output);
- pairs: preference pairs, `chosen` and `rejected` with a `prompt`, or whole HH-RLHF dialogues that differ only in
  their last assistant turn (read as training reads them); output 1 is the chosen answer, label 1.
An optional `split` field groups the pairs in the report (LLMBar's Natural / Adversarial subsets, say); without
one, every pair is in the file's split. Each bad row is an error naming the file, the row and the field.
"""

from __future__ import annotations

import dataclasses
import os

from alignjax.data.errors import DataError
from alignjax.data.schemas import preference_example, type_name
from alignjax.data.sources import read_rows
from alignjax.eval.prompt_sets import EvalPrompt

LLMBAR_FIELDS = ("input", "output_1", "output_2", "label")


@dataclasses.dataclass(frozen=True)
class LabelledPair:
    """prompt: the instruction; outputs: the two answers; label: 1 or 2, the better one; split: its group."""

    prompt: EvalPrompt
    output_1: str
    output_2: str
    label: int
    split: str


def source_of(path: str) -> str:
    return "parquet" if path.endswith(".parquet") else "json"


def load_labelled(
    path: str, fmt: str = "auto", max_pairs: int = 0, skip_bad: bool = False
) -> tuple[list[LabelledPair], list[str]]:
    """The labelled pairs in `path` (JSON, JSON Lines or Parquet), the first `max_pairs` when > 0, and the errors
    of the rows skipped (`skip_bad`; real data sets have a few, e.g. HH-RLHF's pairs with an empty answer).

    Raises:
      DataError: naming the file, row and field of a row with a missing field, a wrong type or a label that is
        neither 1 nor 2 (unless `skip_bad`), or a file without a good pair.
    """
    default_split = os.path.basename(path).split(".")[0]
    pairs, skipped = [], []
    for row in read_rows(source_of(path), path, "train"):
        if max_pairs and len(pairs) >= max_pairs:
            break
        try:
            pair = _pair(row.value, row.where, fmt)
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append(str(e))
            continue
        split = row.value.get("split")
        pairs.append(dataclasses.replace(pair, split=str(split) if split is not None else default_split))
    if not pairs:
        raise DataError(f"{path}: no labelled pairs" + (f" ({len(skipped)} bad rows skipped)" if skipped else ""))
    return pairs, skipped


def _pair(value, where: str, fmt: str) -> LabelledPair:
    if isinstance(value, DataError):  # a line that is not JSON
        raise value
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected an object, got {type_name(value)}")
    kind = fmt if fmt != "auto" else ("llmbar" if "output_1" in value or "input" in value else "pairs")
    return _llmbar(value, where) if kind == "llmbar" else _pairs(value, where)


def _llmbar(value: dict, where: str) -> LabelledPair:
    for field in LLMBAR_FIELDS:
        if value.get(field) is None:
            raise DataError(f"{where}: field {field!r} is missing; an LLMBar row has {', '.join(LLMBAR_FIELDS)}")
    for field in LLMBAR_FIELDS[:3]:
        if not isinstance(value[field], str):
            raise DataError(f"{where}: field {field!r} must be a string, got {type_name(value[field])}")
    label = value["label"]
    if isinstance(label, str) and label.strip() in ("1", "2"):
        label = int(label)
    if isinstance(label, bool) or label not in (1, 2):
        raise DataError(f"{where}: field 'label' is {label!r}; expected 1 (output_1 is better) or 2 (output_2 is)")
    prompt = EvalPrompt(value["input"], [{"role": "user", "content": value["input"]}], "", where)
    return LabelledPair(prompt, value["output_1"], value["output_2"], int(label), "")


def _pairs(value: dict, where: str) -> LabelledPair:
    example = preference_example(value, where)
    if example.label is not None or len(example.responses) != 2:
        raise DataError(f"{where}: expected a pair (`chosen` and `rejected`), got another preference format")
    prompt = EvalPrompt(value.get("prompt"), example.prompt, "", where)
    return LabelledPair(prompt, example.responses[0], example.responses[1], 1, "")
