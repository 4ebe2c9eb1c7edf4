"""LLM judges end to end: LLMBar Natural judged through the real HTTP server with every strategy, in both orders;
what the judge sees when the outputs are swapped; and the numbers of a judge that always answers "Output (a)"."""

import json
import os

import pytest

from alignjax.configs import base_config
from alignjax.eval import eval_section, judge, run_meta_eval
from alignjax.eval.judge_prompts import PAIRWISE_STRATEGIES
from alignjax.eval.judges import PairwiseJudge, single_judge
from alignjax.eval.labelled import load_labelled
from alignjax.eval.meta import judge_rows
from alignjax.eval.prompt_sets import EvalPrompt
from alignjax.generation import Completion, Generator, generation_config

from conftest import save_toy_chat_model
from serving import free_port, running_server

LLMBAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "llmbar_natural.json")
PAIRS = 4
# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = [
    pytest.mark.skipif(not os.path.exists(LLMBAR), reason="../shared/data/llmbar_natural.json is absent"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def short_pairs(tmp_path_factory):
    """The shortest LLMBar Natural pairs (the toy judge's prompts stay short), as a file in LLMBar's format."""
    with open(LLMBAR) as f:
        rows = json.load(f)
    rows.sort(key=lambda r: len(r["input"]) + len(r["output_1"]) + len(r["output_2"]))
    path = tmp_path_factory.mktemp("llmbar") / "llmbar_short.json"
    path.write_text(json.dumps(rows[:PAIRS]))
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("judge") / "toy"
    save_toy_chat_model(directory, max_positions=2048)
    few_shapes = ("--max-slots", "4", "--max-prefill", "2")  # fewer programs to compile: this test is about the judge
    with running_server(directory, directory.parent, "--served-model-name", "judge", *few_shapes) as server:
        yield server


def _config(tmp_path, labelled, base_url):
    config = base_config()
    config.kind = "meta_eval"
    config.train.workdir = str(tmp_path)
    config.eval = eval_section(labelled=labelled)
    config.eval.resamples = 200
    for strategy in PAIRWISE_STRATEGIES:
        generation = generation_config(
            backend="openai", model="judge", base_url=base_url, api_key_env="", max_tokens=6, max_retries=0
        )
        config.eval.judges[strategy] = judge(
            "pairwise", strategy=strategy, generation=generation, auxiliary_max_tokens=(8, 8)
        )
    return config


def test_every_strategy_judges_llmbar_through_the_server_in_both_orders(tmp_path, short_pairs, server):
    config = _config(tmp_path, short_pairs, server.base_url)
    final = run_meta_eval(config)
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["judges"]) == set(PAIRWISE_STRATEGIES)
    for strategy in PAIRWISE_STRATEGIES:
        measures = report["judges"][strategy]["splits"]["all"]
        assert measures["accuracy"]["n"] == PAIRS
        assert 0 <= measures["unparsable_rate"]["value"] <= 1
        assert f"{strategy}/accuracy" in final
        appendix = report["appendix"][f"pairwise/{strategy}"]
        assert "{output_a}" in appendix and "{output_b}" in appendix
        rows = [json.loads(line) for line in (tmp_path / "judgements" / f"{strategy}.jsonl").read_text().splitlines()]
        assert len(rows) == PAIRS and all(len(r["evidence"]) == 2 for r in rows)  # two replies: both orders
    assert "{metrics}" in report["appendix"]["pairwise/metrics_reference"]
    assert "{reference}" in report["appendix"]["pairwise/metrics_reference"]
    assert "# Meta-evaluation" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "meta_accuracy.png").stat().st_size > 0
    # every reply is in the run's cache: a rerun with the endpoint gone still reports the same, asking nothing
    again = run_meta_eval(_config(tmp_path, short_pairs, f"http://127.0.0.1:{free_port()}/v1"))
    assert again == final


class _Recorder:
    """A judge model that answers the given replies in turn (cycling) and keeps what it was asked."""

    kind, model = "fixed", "replies"

    def __init__(self, *replies: str):
        self.replies, self.asked, self.closed = replies, [], False

    def complete(self, requests, on_result=None):
        completions = []
        for i, request in enumerate(requests):
            reply = self.replies[len(self.asked) % len(self.replies)]
            self.asked.append(request.messages)
            completions.append(Completion((reply,), ("stop",), 1, 1))
            if on_result is not None:
                on_result(i, completions[-1])
        return completions

    def stats(self):
        return {"calls": len(self.asked)}

    def close(self):
        self.closed = True


def _judge_answering(reply: str, strategy: str = "vanilla") -> tuple[PairwiseJudge, _Recorder]:
    recorder = _Recorder(reply)
    return PairwiseJudge(judge("pairwise", strategy=strategy), "", "fixed", Generator(recorder)), recorder


def test_swapping_the_outputs_swaps_what_the_judge_sees(short_pairs):
    pairs, _ = load_labelled(short_pairs)
    pairwise, recorder = _judge_answering("Output (a)")
    pairwise.compare([p.prompt for p in pairs], [p.output_1 for p in pairs], [p.output_2 for p in pairs])
    for pair, first, second in zip(pairs, recorder.asked[0::2], recorder.asked[1::2]):
        assert _shown(first) == (pair.output_1, pair.output_2)  # x as Output (a)
        assert _shown(second) == (pair.output_2, pair.output_1)  # then y as Output (a)
        assert first[0] == second[0]  # the same system message
        body_first, body_second = first[-1]["content"], second[-1]["content"]
        assert body_first.split("# Output (a):")[0] == body_second.split("# Output (a):")[0]  # the same instruction


def _shown(chat) -> tuple[str, str]:
    """The outputs a pairwise prompt shows as Output (a) and Output (b)."""
    after_a = chat[-1]["content"].split("# Output (a):\n")[1]
    output_a, after_b = after_a.split("\n\n# Output (b):\n")
    return output_a, after_b.split("\n\n# ")[0]


def test_a_judge_that_always_answers_a_agrees_with_itself_never_and_is_right_half_the_time():
    pairs, _ = load_labelled(LLMBAR)
    pairwise, _ = _judge_answering("Output (a)")
    verdicts = pairwise.compare([p.prompt for p in pairs], [p.output_1 for p in pairs], [p.output_2 for p in pairs])
    rows = judge_rows(pairs, verdicts)
    assert rows["positional_agreement"].mean() == 0
    assert rows["accuracy"].mean() == 0.5  # right in exactly one order of every pair
    assert rows["tie_rate"].mean() == 1 and rows["unparsable_rate"].mean() == 0


def test_replies_that_cannot_be_read_are_counted_not_guessed(short_pairs):
    pairs, _ = load_labelled(short_pairs)
    pairwise, _ = _judge_answering("Both outputs have merits; it depends on the reader.")
    verdicts = pairwise.compare([p.prompt for p in pairs], [p.output_1 for p in pairs], [p.output_2 for p in pairs])
    rows = judge_rows(pairs, verdicts)
    assert rows["unparsable_rate"].mean() == 1 and rows["accuracy"].mean() == 0
    assert all(v.outcome is None for v in verdicts)


def test_single_grading_reads_each_rating_and_shows_the_reference_only_when_asked():
    prompts = [EvalPrompt("reverse: abc", [{"role": "user", "content": "reverse: abc"}], "cba", "row 1")]
    for reference, ratings in ((False, ("Rating: [[8]]", "I would say [[3]]")), (True, ("[[9]]", "no idea"))):
        recorder = _Recorder(*ratings)
        single = single_judge(judge("single", reference=reference), "", "fixed", Generator(recorder))
        verdict = single.compare(prompts, ["cba"], ["abc"])[0]
        assert ("A reference answer" in recorder.asked[0][-1]["content"]) == reference
        if reference:
            assert verdict.first is None and verdict.outcome is None  # "no idea" has no rating: not guessed
        else:
            assert (verdict.first, verdict.second, verdict.outcome) == ("x", "x", 1.0)
            assert verdict.evidence == (8.0, 3.0)
        single.close()
        assert recorder.closed  # the judge releases its model's client
