"""Chat requests and their cache keys: equal questions, however written, have one key; any change that can change
the answer gives another. And the cache file keeps answers across connections (a rerun's)."""

import dataclasses

import pytest

from alignjax.generation import Cache, ChatRequest, Completion, cache_key

HELLO = [{"role": "user", "content": "hello"}]


def test_equal_questions_have_one_key_however_written():
    a = ChatRequest(HELLO, max_tokens=8, temperature=0, stop=["\n"], seed=1)
    b = ChatRequest(tuple(dict(m) for m in HELLO), max_tokens=8, temperature=0.0, stop=("\n",), seed=1)
    assert a == b and hash(a) == hash(b)
    assert a.canonical() == b.canonical()
    assert cache_key("openai", "m", a) == cache_key("openai", "m", b)


@pytest.mark.parametrize(
    "change",
    [dict(seed=2), dict(temperature=0.7), dict(top_p=0.9), dict(top_k=5), dict(min_p=0.1), dict(n=2),
     dict(max_tokens=9), dict(stop=["."]), dict(messages=[{"role": "user", "content": "hello!"}]),
     dict(messages=[{"role": "system", "content": "hello"}])],
)
def test_anything_that_changes_the_answer_changes_the_key(change):
    base = ChatRequest(HELLO, max_tokens=8, seed=1)
    assert cache_key("openai", "m", dataclasses.replace(base, **change)) != cache_key("openai", "m", base)


def test_the_backend_and_model_are_part_of_the_key():
    request = ChatRequest(HELLO)
    keys = {cache_key(kind, model, request) for kind in ("local", "openai") for model in ("a", "b")}
    assert len(keys) == 4


def test_the_caller_cannot_change_a_request_after_it_is_made():
    messages = [{"role": "user", "content": "hello"}]
    request = ChatRequest(messages)
    messages[0]["content"] = "changed"
    assert request.messages[0]["content"] == "hello"


@pytest.mark.parametrize(
    "fields, expected",
    [
        (dict(messages=[]), "messages: expected a non-empty list"),
        (dict(messages=[{"role": "user"}]), "messages[0]: expected a dict with exactly 'role' and 'content'"),
        (dict(messages=[{"role": "bot", "content": "x"}]), "messages[0].role: 'bot' is not one of system"),
        (dict(messages=HELLO, stop="\n"), "stop: expected a list of strings"),
        (dict(messages=HELLO, max_tokens=0), "max_tokens: must be >= 1, got 0"),
        (dict(messages=HELLO, n=0), "n: must be >= 1, got 0"),
    ],
)
def test_a_bad_request_names_its_field(fields, expected):
    with pytest.raises(ValueError) as caught:
        ChatRequest(**fields)
    assert str(caught.value).startswith(expected)


def test_answers_persist_across_connections_and_are_marked_cached(tmp_path):
    path = str(tmp_path / "sub" / "cache.sqlite")
    request = ChatRequest(HELLO, n=2, seed=0)
    answer = Completion(texts=("hi", "hey"), finish_reasons=("stop", "length"), prompt_tokens=5, completion_tokens=7)
    first = Cache(path)
    key = first.put("openai", "m", request, answer)
    first.close()
    again = Cache(path)
    assert len(again) == 1
    assert again.get([key, "absent"]) == {key: dataclasses.replace(answer, cached=True)}
