"""The local backend answers as `alignjax.sampling.generate` does, and the cache in front of it asks each question
once: a repeated list sends nothing, and any change of sampling is a new question."""

import dataclasses

import pytest
import transformers

from alignjax.data.tokenization import encode_chat_prompt
from alignjax.generation import GenerationError, generation_config, make_generator
from alignjax.generation.config import CACHE_FILE
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, generate

from conftest import save_toy_chat_model

QUESTIONS = ["what is 2 + 2?", "name a colour", "the cat sat on the", "count to three", "say hello", "why?"]
BUDGET = 12


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_teacher")
    save_toy_chat_model(directory, max_positions=128, seed=3)
    return str(directory)


def _messages(question: str) -> list[dict]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": question}]


def test_greedy_answers_equal_generate(toy_dir, tmp_path):
    section = generation_config(model=toy_dir, max_tokens=BUDGET, max_slots=4, cache="none")
    with make_generator(section, str(tmp_path)) as generator:
        answers = generator.complete([generator.request(_messages(q)) for q in QUESTIONS])
    tokenizer = transformers.AutoTokenizer.from_pretrained(toy_dir)
    prompts = [encode_chat_prompt(_messages(q), tokenizer, where="test") for q in QUESTIONS]
    out = generate(from_pretrained(toy_dir), prompts, config=GREEDY, max_new_tokens=BUDGET, tokenizer=tokenizer)
    assert [a.text for a in answers] == out.texts
    assert [a.completion_tokens for a in answers] == [int(n) for n in out.lengths]
    assert [a.prompt_tokens for a in answers] == [len(p) for p in prompts]
    assert [a.finish_reasons[0] for a in answers] == ["stop" if s else "length" for s in out.stopped]
    assert not any(a.cached for a in answers)


def test_the_cache_asks_each_question_once(toy_dir, tmp_path):
    section = generation_config(model=toy_dir, max_tokens=6, temperature=1.0, n=2, max_slots=4)
    with make_generator(section, str(tmp_path)) as generator:
        requests = [generator.request(_messages(q), seed=i) for i, q in enumerate(QUESTIONS)]
        reported = []
        first = generator.complete(requests + requests[:1], on_result=lambda i, c: reported.append(i))
        assert sorted(reported) == list(range(len(requests) + 1))  # the repeated question reported twice...
        assert generator.stats()["calls"] == len(requests)  # ...but asked once
        assert first[-1] == first[0] and all(len(a.texts) == 2 for a in first)
        assert not any(a.cached for a in first)

        second = generator.complete(requests)
        assert generator.stats()["calls"] == len(requests)  # nothing sent
        assert all(a.cached for a in second)
        assert [a.texts for a in second] == [a.texts for a in first[:-1]]

        changed = [dataclasses.replace(requests[0], seed=100), dataclasses.replace(requests[1], temperature=0.5)]
        assert not any(a.cached for a in generator.complete(changed))
        assert generator.stats()["calls"] == len(requests) + 2
        stats = generator.stats()  # 7 + 6 + 2 asked; the repeat in the first list was neither a hit nor generated
        assert (stats["requests"], stats["cache_hits"], stats["generated"]) == (15, 6, 8)
        assert "15 requests, 6 from the cache, 8 generated (8 calls)" in generator.summary()

    # a rerun (a new generator on the same workdir) finds every answer
    with make_generator(section, str(tmp_path)) as rerun:
        assert rerun.cache.path == str(tmp_path / CACHE_FILE)
        assert [a.texts for a in rerun.complete(requests)] == [a.texts for a in second]
        assert rerun.stats()["calls"] == 0


def test_a_request_the_model_cannot_answer_is_named(toy_dir, tmp_path):
    section = generation_config(model=toy_dir, max_tokens=500, cache="none")
    with make_generator(section, str(tmp_path)) as generator, pytest.raises(GenerationError) as caught:
        generator.complete([generator.request(_messages(q)) for q in QUESTIONS[:2]])
    assert str(caught.value).startswith("request 0 ('what is 2 + 2?'): max_tokens: 500 must be in [1, ")


@pytest.mark.slow
def test_a_base_model_is_prompted_with_the_plain_text(stories260k_dir, tmp_path):
    """template='plain': stories260K (no chat template) continues the user message's text, as `generate` does from
    the plain template's prompt ids; the chat template would have been an error."""
    from alignjax.data.plain import plain_prompt

    openings = ["Once upon a time, there was a little girl named Lily.", "One day, Tom went to the park."]
    section = generation_config(model=str(stories260k_dir), max_tokens=BUDGET, template="plain", cache="none")
    with make_generator(section, str(tmp_path)) as generator:
        answers = generator.complete([generator.request([{"role": "user", "content": o}]) for o in openings])
    tokenizer = transformers.AutoTokenizer.from_pretrained(stories260k_dir)
    prompts = [plain_prompt([{"role": "user", "content": o}], tokenizer, "") for o in openings]
    model = from_pretrained(str(stories260k_dir))
    out = generate(model, prompts, config=GREEDY, max_new_tokens=BUDGET, tokenizer=tokenizer)
    assert [a.text for a in answers] == out.texts and all(out.texts)
    with make_generator(generation_config(model=str(stories260k_dir), cache="none"), str(tmp_path)) as chat:
        with pytest.raises(GenerationError, match="chat template"):
            chat.complete([chat.request([{"role": "user", "content": openings[0]}])])
