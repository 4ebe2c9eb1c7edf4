"""Evaluation inputs: labelled pairs, prompt sets, answers files and prompting baselines, and the errors a user
gets for bad ones (the file, the row and the field), including a judge endpoint that is down."""

import json
import os

import pytest

from alignjax.config_errors import ConfigError
from alignjax.configs import toy
from alignjax.data.errors import DataError
from alignjax.eval import check_eval_section, judge, prompt_set, system
from alignjax.eval.judges import make_judge
from alignjax.eval.labelled import load_labelled
from alignjax.eval.prompt_sets import load_prompts
from alignjax.eval.systems import Pool, _messages, final_answer, read_answers, write_answers
from alignjax.generation import GenerationError, generation_config

from conftest import write_jsonl
from serving import free_port

HH = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hh_rlhf_harmless_base_test.jsonl.gz")


def test_llmbar_rows_with_a_missing_field_or_an_unknown_label_are_named(tmp_path):
    good = {"input": "Say hi.", "output_1": "hi", "output_2": "Hello there, friend!", "label": 1}
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([good, {**good, "label": 2}]))
    pairs, _ = load_labelled(str(path))
    assert [p.label for p in pairs] == [1, 2] and pairs[0].prompt.instruction == "Say hi."
    path.write_text(json.dumps([good, {k: v for k, v in good.items() if k != "output_2"}]))
    with pytest.raises(DataError, match=r"pairs\.json row 2: field 'output_2' is missing"):
        load_labelled(str(path))
    path.write_text(json.dumps([good, good, {**good, "label": 3}]))
    with pytest.raises(DataError, match=r"pairs\.json row 3: field 'label' is 3; expected 1 .* or 2"):
        load_labelled(str(path))
    jsonl = write_jsonl(tmp_path / "pairs.jsonl", [good, {**good, "label": "b"}, good])
    with pytest.raises(DataError, match=r"pairs\.jsonl line 2: field 'label' is 'b'"):
        load_labelled(jsonl)
    pairs, skipped = load_labelled(jsonl, skip_bad=True)  # eval.on_bad_row="skip": counted, not fatal
    assert len(pairs) == 2 and len(skipped) == 1 and skipped[0].startswith(f"{jsonl} line 2: field 'label'")


@pytest.mark.skipif(not os.path.exists(HH), reason="../shared/data is absent")
def test_hh_pairs_read_as_chosen_over_rejected_with_the_dialogue_as_prompt():
    pairs, _ = load_labelled(HH, "pairs", max_pairs=5)
    assert len(pairs) == 5 and all(p.label == 1 for p in pairs)
    assert pairs[0].prompt.messages[0]["role"] == "user" and pairs[0].prompt.messages[-1]["role"] == "user"
    assert "Human:" not in pairs[0].output_1 and pairs[0].output_1 != pairs[0].output_2
    assert pairs[0].prompt.instruction.startswith("User: ")  # a multi-turn prompt keeps its speakers


def _prompts(tmp_path, rows):
    spec = prompt_set("json", write_jsonl(tmp_path / "prompts.jsonl", rows))
    return load_prompts(spec)


def test_an_answers_file_without_some_prompts_names_the_file_and_the_prompts(tmp_path):
    prompts = _prompts(tmp_path, [{"prompt": "reverse: abc"}, {"prompt": "upper: xy"}, {"prompt": "sort: cba"}])
    path = str(tmp_path / "answers.jsonl")
    write_answers(path, prompts, ["cba", "XY", "abc"])
    assert read_answers(path, prompts) == ["cba", "XY", "abc"]
    write_answers(path, prompts[:1], ["cba"])
    with pytest.raises(DataError, match=r"answers\.jsonl: no answer to 2 of the 3 prompts, the first: .*line 2"):
        read_answers(path, prompts)
    with open(path, "a") as f:
        f.write('{"prompt": "upper: xy"}\n')
    with pytest.raises(DataError, match=r"answers\.jsonl line 2: field 'answer' is missing"):
        read_answers(path, prompts)
    with pytest.raises(DataError, match="no such answers file"):
        read_answers(str(tmp_path / "absent.jsonl"), prompts)


def test_a_prompt_row_without_a_prompt_is_named(tmp_path):
    with pytest.raises(DataError, match=r"prompts\.jsonl line 2: expected an object with a 'prompt' field"):
        _prompts(tmp_path, [{"prompt": "reverse: abc"}, {"question": "upper: xy"}])


def test_few_shot_demonstrations_are_deterministic_by_seed_and_never_the_prompt_itself(tmp_path):
    prompts = _prompts(tmp_path, [{"prompt": "reverse: abc"}, {"prompt": "upper: xy"}])
    pool = Pool(
        [
            [{"role": "user", "content": f"sort: {w}"}, {"role": "assistant", "content": "".join(sorted(w))}]
            for w in ("dcb", "zyx", "qpo", "nml")
        ]
        + [[{"role": "user", "content": "reverse: abc"}, {"role": "assistant", "content": "cba"}]]
    )
    spec = system(prompting="few_shot", shots=2, pool=prompt_set("json", "pool.jsonl"))
    chats = [_messages(spec, p, i, pool) for i, p in enumerate(prompts)]
    assert [_messages(spec, p, i, pool) for i, p in enumerate(prompts)] == chats  # the same on a rerun
    assert all(len(chat) == 5 and chat[-1] == p.messages[0] for chat, p in zip(chats, prompts))
    assert {"role": "user", "content": "reverse: abc"} not in chats[0][:-1]
    spec.seed = 1
    assert [_messages(spec, p, i, pool) for i, p in enumerate(prompts)] != chats
    cot = _messages(system(prompting="cot"), prompts[0], 0, None)
    assert cot[-1]["content"].startswith("reverse: abc\n\nThink step by step")
    assert final_answer("abc reversed is...\nAnswer: cba\n") == "cba" and final_answer("cba") == "cba"


def test_config_mistakes_are_named_before_anything_runs():
    config = toy.evaluation(smoke=True)
    check_eval_section(config.eval, meta=False)
    config.eval.baseline = "gpt"
    with pytest.raises(ConfigError, match=r"eval\.baseline: 'gpt' is not a system"):
        check_eval_section(config.eval, meta=False)
    config.eval.baseline = "sft"
    config.eval.systems.sft_2shot.shots = 0
    with pytest.raises(ConfigError, match=r"eval\.systems\.sft_2shot\.shots: few_shot prompting needs shots >= 1"):
        check_eval_section(config.eval, meta=False)
    config.eval.systems.sft_2shot.shots = 2
    config.eval.judges.rule.function = "exactly"
    with pytest.raises(ConfigError, match=r"eval\.judges\.rule\.function: 'exactly' is not a registered rule"):
        check_eval_section(config.eval, meta=False)
    config.eval.judges.rule = judge("pairwise", strategy="vibes", generation=generation_config(model="runs/judge"))
    with pytest.raises(ConfigError, match=r"eval\.judges\.rule\.strategy: 'vibes' is not one of vanilla"):
        check_eval_section(config.eval, meta=False)
    config.eval.judges.rule.update(strategy="rules", reference=True)
    with pytest.raises(ConfigError, match=r"eval\.judges\.rule\.reference: .* strategy 'rules' does not write"):
        check_eval_section(config.eval, meta=False)


def test_a_pairwise_judge_with_reference_true_takes_the_prompt_sets_answers_and_asks_for_none(tmp_path):
    """DITTO's evaluation: the user's held-out demonstration is the reference. The judge's endpoint is down, so
    asking it for a reference would fail."""
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    generation = generation_config(backend="openai", model="judge", base_url=url, api_key_env="", max_retries=0)
    spec = judge("pairwise", strategy="reference", reference=True, generation=generation)
    pairwise = make_judge("gpt", spec, str(tmp_path))
    rows = [{"prompt": "reverse: abc", "demonstration": "(cba)"}, {"prompt": "upper: ab", "reference": "(AB)"}]
    metrics, references = pairwise.auxiliaries(_prompts(tmp_path, rows))
    assert references == ["(cba)", "(AB)"] and metrics == ["", ""]
    with pytest.raises(DataError, match=r"line 2: the judge takes its reference answers from the prompt set"):
        pairwise.auxiliaries(_prompts(tmp_path, [rows[0], {"prompt": "sort: ba"}]))
    pairwise.close()


def test_a_judge_endpoint_that_is_down_is_retried_then_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    generation = generation_config(backend="openai", model="judge", base_url=url, api_key_env="", max_retries=2)
    generation.update(backoff_s=0.01, max_backoff_s=0.02)
    pairwise = make_judge("gpt", judge("pairwise", strategy="vanilla", generation=generation), str(tmp_path))
    prompts = _prompts(tmp_path, [{"prompt": "reverse: abc"}])
    with pytest.raises(GenerationError, match=rf"still failing after 3 attempts .*cannot connect to {url}"):
        pairwise.compare(prompts, ["cba"], ["abc"])
    assert pairwise.generator.stats()["retries"] == 2 * 2  # both orders, each retried twice
    pairwise.close()
