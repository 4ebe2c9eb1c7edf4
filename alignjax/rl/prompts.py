"""The prompts an on-policy run answers: read from the data source, rendered with the chat template.

Rows need only a `prompt` field (a string or a list of chat messages; other fields are ignored). Training
prompts come from `data.split`; held-out prompts from a builtin dataset's own held-out split, or from a
`data.eval_fraction` share of a file's rows. Each iteration takes the next `rl.prompts_per_iteration` prompts
of a seeded per-epoch shuffle, a pure function of the iteration number, so a resumed run sees the same prompts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from alignjax.data.builtin import get_builtin
from alignjax.data.errors import DataError
from alignjax.data.preference_schemas import prompt_messages
from alignjax.data.sources import read_rows
from alignjax.data.tokenization import encode_chat_prompt


@dataclasses.dataclass(frozen=True)
class Prompts:
    """Parallel lists: the data's `prompt` values (what reward functions see) and their token ids."""

    values: list[Any]
    token_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.values)

    def take(self, indices) -> "Prompts":
        return Prompts([self.values[i] for i in indices], [self.token_ids[i] for i in indices])


def _encode(rows, tokenizer, max_prompt_len: int, on_bad_row: str) -> tuple[Prompts, int]:
    values, token_ids, skipped = [], [], 0
    for row in rows:
        try:
            if isinstance(row.value, DataError):
                raise row.value
            if not isinstance(row.value, dict) or "prompt" not in row.value:
                raise DataError(f"{row.where}: expected an object with a 'prompt' field, got {type(row.value).__name__}")
            ids = encode_chat_prompt(prompt_messages(row.value["prompt"], row.where), tokenizer, row.where)
            if len(ids) > max_prompt_len:
                raise DataError(
                    f"{row.where}: the prompt is {len(ids)} tokens after the chat template, more than "
                    f"rl.max_prompt_len={max_prompt_len}; raise rl.max_prompt_len or shorten the prompt"
                )
        except DataError:
            if on_bad_row == "error":
                raise
            skipped += 1
            continue
        values.append(row.value["prompt"])
        token_ids.append(ids)
    return Prompts(values, token_ids), skipped


def load_prompts(data_cfg, tokenizer, max_prompt_len: int) -> tuple[Prompts, Prompts, int]:
    """(training prompts, held-out prompts, rows skipped as bad) from the `data` section."""
    rows = list(read_rows(data_cfg.source, data_cfg.path, data_cfg.split))
    if data_cfg.max_examples:
        rows = rows[: data_cfg.max_examples]
    if data_cfg.source == "builtin":
        dataset = get_builtin(data_cfg.path)
        eval_rows = list(read_rows("builtin", data_cfg.path, dataset.eval_split))
    else:
        order = np.random.default_rng(data_cfg.seed).permutation(len(rows))
        held = int(len(rows) * data_cfg.eval_fraction)
        eval_rows = [rows[i] for i in sorted(order[:held])]
        rows = [rows[i] for i in sorted(order[held:])]
    train, skipped = _encode(rows, tokenizer, max_prompt_len, data_cfg.on_bad_row)
    held_out, skipped_eval = _encode(eval_rows, tokenizer, max_prompt_len, data_cfg.on_bad_row)
    if not len(train):
        raise DataError(f"data.path={data_cfg.path!r}: no usable prompts in split {data_cfg.split!r}")
    return train, held_out, skipped + skipped_eval


def iteration_prompts(prompts: Prompts, iteration: int, count: int, seed: int) -> Prompts:
    """The `count` prompts of iteration `iteration`: consecutive slices of a per-epoch seeded permutation."""
    orders: dict[int, np.ndarray] = {}
    picked = []
    for position in range(iteration * count, (iteration + 1) * count):
        epoch, offset = divmod(position, len(prompts))
        if epoch not in orders:
            orders[epoch] = np.random.default_rng([seed, epoch]).permutation(len(prompts))
        picked.append(int(orders[epoch][offset]))
    return prompts.take(picked)
