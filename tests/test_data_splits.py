"""One held-out split for every kind of run: an on-policy run's prompts and an offline run's examples."""

import numpy as np
import pytest

from alignjax.config_errors import ConfigError
from alignjax.data import DataError, build_data, hold_out, sft_data_config
from alignjax.rl.prompts import load_prompts

from conftest import write_jsonl

WORDS = [f"{a}{b}" for a in "abcde" for b in "fghi"]  # 20 distinct prompts


def _rows(format):
    rows = []
    for i, word in enumerate(WORDS):
        if format == "sft":
            rows.append({"prompt": f"upper: {word}", "completion": word.upper()})
        else:  # every other prompt as chat messages
            prompt = f"upper: {word}" if i % 2 else [{"role": "user", "content": f"upper: {word}"}]
            rows.append({"prompt": prompt, "chosen": word.upper(), "rejected": word})
    bad = {"prompt": 3, "completion": "X"} if format == "sft" else {"prompt": 3, "chosen": "X", "rejected": "x"}
    return rows[:7] + [bad] + rows[7:]  # a bad row, skipped before the split by both


def _eval_prompt_ids(eval_batches):
    """The prompt's ids of each real eval row, in order: the tokens before the first target with loss."""
    prompts = []
    for batch in eval_batches:
        tokens, loss_mask = batch["tokens"], batch["loss_mask"]
        if tokens.ndim == 3:  # [B, K, L]: response 0 of each row
            tokens, loss_mask = tokens[:, 0], loss_mask[:, 0]
        for b in np.flatnonzero(batch["example_index"] >= 0):
            prompts.append(tokens[b, : int(np.argmax(loss_mask[b])) + 1].tolist())
    return prompts


@pytest.mark.parametrize("format", ["sft", "pairs"])
def test_prompts_are_held_out_as_the_offline_run_holds_out_its_rows(tmp_path, tokenizer, format):
    path = write_jsonl(tmp_path / "rows.jsonl", _rows(format))
    cfg = sft_data_config(
        source="json", path=path, format=format, eval_fraction=0.3, seed=3, seq_len=32, batch_size=4, on_bad_row="skip"
    )
    _, eval_batches, _, report = build_data(cfg, tokenizer)
    train, held_out, skipped = load_prompts(cfg, tokenizer, max_prompt_len=32)

    offline = _eval_prompt_ids(eval_batches)
    assert len(offline) == report.eval_examples == round(0.3 * len(WORDS)) == len(held_out)
    assert held_out.token_ids == offline
    assert len(train) == report.train_examples == len(WORDS) - len(held_out)
    assert skipped == sum(report.skipped.values()) == 1
    assert not set(map(str, train.values)) & set(map(str, held_out.values))


def test_hold_out_is_seeded_and_keeps_reading_order():
    examples = list(range(10))
    train, held_out = hold_out(examples, 0.25, seed=0)
    assert len(held_out) == 2 and sorted(train + held_out) == examples
    assert train == sorted(train) and held_out == sorted(held_out)
    assert (train, held_out) == hold_out(examples, 0.25, seed=0)
    assert hold_out(examples, 0.0, seed=0) == (examples, [])
    assert len(hold_out(examples[:3], 0.01, seed=0)[1]) == 1  # at least one row when the fraction is above 0
    with pytest.raises(DataError, match="holds out all 2 examples"):
        hold_out(examples[:2], 0.75, seed=0)


def test_invalid_config_values_are_config_errors_not_data_errors():
    with pytest.raises(ConfigError, match=r"data.format='chat' is invalid; expected one of \['sft', 'pairs'"):
        build_data(sft_data_config(format="chat"))
    with pytest.raises(ConfigError, match="data.control_good and data.control_bad are both '<t>'"):
        build_data(sft_data_config(format="conditional", control_good="<t>", control_bad="<t>"))
    assert not issubclass(ConfigError, DataError)
