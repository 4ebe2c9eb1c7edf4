"""The prompts an on-policy run answers: read from the data source, rendered as `data.template` says (the chat
template, or the plain text of a base model's prompt), exactly as the data package renders them for offline runs.

Rows need only a `prompt` field (a string or a list of chat messages; other fields are ignored). They are read,
validated and split by the data package's one path (`alignjax.data.read_examples`), so an on-policy run holds out
exactly the rows that an offline run with the same `data` section holds out: a builtin dataset's own held-out
split, or a `data.eval_fraction` share of a file's valid rows chosen by `data.seed`; bad rows raise or are skipped
as `data.on_bad_row` says. Each iteration takes the next `rl.prompts_per_iteration` prompts of a seeded per-epoch
shuffle, a pure function of the iteration number, so a resumed run sees the same prompts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from alignjax.data import (
    DataError,
    DataReport,
    PromptExample,
    get_template,
    prompt_example,
    read_examples,
    validate_data_config,
)
from alignjax.data.errors import PROMPT_TOO_LONG
from alignjax.data.splits import reject


@dataclasses.dataclass(frozen=True)
class Prompts:
    """Parallel lists: the data's `prompt` values (what reward functions see) and their token ids."""

    values: list[Any]
    token_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.values)

    def take(self, indices) -> Prompts:
        return Prompts([self.values[i] for i in indices], [self.token_ids[i] for i in indices])


def _encode(
    examples: list[tuple[str, PromptExample]], tokenizer, max_prompt_len: int, data_cfg, report: DataReport
) -> Prompts:
    values, token_ids = [], []
    template = get_template(data_cfg.template)
    for where, example in examples:
        try:
            ids = template.prompt(example.messages, tokenizer, "", where)
            if len(ids) > max_prompt_len:
                raise DataError(
                    f"{where}: the prompt is {len(ids)} tokens after data.template={data_cfg.template!r}, more than "
                    f"rl.max_prompt_len={max_prompt_len}; raise rl.max_prompt_len or shorten the prompt",
                    PROMPT_TOO_LONG,
                )
        except DataError as e:
            reject(e, data_cfg, report)
            continue
        values.append(example.value)
        token_ids.append(ids)
    return Prompts(values, token_ids)


def load_prompts(data_cfg, tokenizer, max_prompt_len: int) -> tuple[Prompts, Prompts, int]:
    """The training and held-out prompts of the `data` section.

    Args:
        data_cfg: the `data` ConfigDict (`source`, `path`, `split`, `max_examples`, `eval_fraction`, `seed`,
            `on_bad_row`, `template`).
        tokenizer: the policy's tokenizer (with a chat template for `data.template="chat"`).
        max_prompt_len: the most tokens a rendered prompt may have (`rl.max_prompt_len`).

    Returns:
        (training prompts, held-out prompts, rows skipped as bad): the held-out rows are those an offline run
        with the same `data` section holds out.

    Raises:
        ConfigError: for an invalid value of the `data` section.
        DataError: for a problem with the source, a bad row under `on_bad_row="error"`, or no training prompts.
    """
    validate_data_config(data_cfg)  # e.g. a mistyped data.template is named, not a KeyError
    report = DataReport(source=f"{data_cfg.source}:{data_cfg.path}", format="prompts")
    train_rows, held_out_rows = read_examples(data_cfg, prompt_example, report)
    train = _encode(train_rows, tokenizer, max_prompt_len, data_cfg, report)
    held_out = _encode(held_out_rows, tokenizer, max_prompt_len, data_cfg, report)
    if not len(train):
        raise DataError(f"data.path={data_cfg.path!r}: no usable prompts in split {data_cfg.split!r}")
    return train, held_out, sum(report.skipped.values())


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
