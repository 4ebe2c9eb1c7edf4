"""A user's demonstrations (DITTO): each a prompt and the answer the user wrote for it, as token ids.

Rows have a `prompt` (a string or chat messages) and a `demonstration` (a string or one assistant message); they
are read, validated and split by the data package's one path (`alignjax.data.read_examples`), so the SFT warm-up
stage, which reads the same file as SFT rows, trains on exactly these demonstrations. A demonstration is rendered
as a preference response is (`data.template`): its ids are what follows the rendered prompt, end of turn included,
so it is compared with the policy's samples token for token. A prompt longer than `rl.max_prompt_len` or a
demonstration longer than `rl.max_new_tokens` (the width of every sample it is compared with) is a bad row that
names itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alignjax.data import DataError, DataReport, PreferenceExample, demonstration_example, get_template, read_examples
from alignjax.data.errors import PROMPT_TOO_LONG, RESPONSE_TRUNCATED
from alignjax.data.splits import reject
from alignjax.rl.prompts import Prompts


@dataclasses.dataclass(frozen=True)
class Demonstrations:
    """Parallel lists: each demonstration's prompt (`prompts`, as the rollouts sample them), its answer's token ids
    (`answer_ids`, end of turn included), and the row it came from (`wheres`, for messages)."""

    prompts: Prompts
    answer_ids: list[np.ndarray]
    wheres: list[str]

    def __len__(self) -> int:
        return len(self.answer_ids)


def load_demonstrations(data_cfg, tokenizer, max_prompt_len: int, max_new_tokens: int) -> tuple[Demonstrations, int]:
    """The demonstrations of the `data` section's training split.

    Args:
        data_cfg: the `data` ConfigDict (a file of `prompt` and `demonstration` rows).
        tokenizer: the policy's tokenizer.
        max_prompt_len, max_new_tokens: `rl.max_prompt_len` and `rl.max_new_tokens`.

    Returns:
        (the demonstrations, rows skipped as bad under `data.on_bad_row="skip"`).

    Raises:
        DataError: naming the row and field of a bad row under `on_bad_row="error"`, or when no row is usable.
    """
    report = DataReport(source=f"{data_cfg.source}:{data_cfg.path}", format="demonstrations")
    train_rows, _ = read_examples(data_cfg, demonstration_example, report)
    template = get_template(data_cfg.template)
    wheres = [where for where, _ in train_rows]
    pairs = [PreferenceExample(e.messages, (e.demonstration,), (1.0,)) for _, e in train_rows]
    values, prompt_ids, answer_ids, kept = [], [], [], []
    for (where, example), tokens in zip(train_rows, template.preferences(pairs, tokenizer, wheres)):
        try:
            if isinstance(tokens, DataError):
                raise tokens
            _check_lengths(where, len(tokens.prompt_P), len(tokens.responses[0]), max_prompt_len, max_new_tokens)
        except DataError as e:
            reject(e, data_cfg, report)
            continue
        values.append(example.value)
        prompt_ids.append([int(i) for i in tokens.prompt_P])
        answer_ids.append(tokens.responses[0])
        kept.append(where)
    if not answer_ids:
        raise DataError(f"data.path={data_cfg.path!r}: no usable demonstrations in split {data_cfg.split!r}")
    return Demonstrations(Prompts(values, prompt_ids), answer_ids, kept), sum(report.skipped.values())


def _check_lengths(where: str, prompt_len: int, answer_len: int, max_prompt_len: int, max_new_tokens: int) -> None:
    if prompt_len > max_prompt_len:
        raise DataError(
            f"{where}: field 'prompt' is {prompt_len} tokens once rendered, more than rl.max_prompt_len="
            f"{max_prompt_len}, which leaves it no room; raise rl.max_prompt_len or shorten the prompt",
            PROMPT_TOO_LONG,
        )
    if answer_len > max_new_tokens:
        raise DataError(
            f"{where}: field 'demonstration' is {answer_len} tokens (end of turn included), more than "
            f"rl.max_new_tokens={max_new_tokens}, the length of the samples it is compared with; raise "
            "rl.max_new_tokens or shorten the demonstration",
            RESPONSE_TRUNCATED,
        )
