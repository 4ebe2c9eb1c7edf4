"""The openai backend against the real server (`python -m alignjax.serve` on a loopback port): it answers as the
local backend does, names a refused request, and retries an overloaded server's 429s through to success."""

import pytest

from alignjax.generation import (
    ChatRequest,
    GenerationError,
    LocalBackend,
    OpenAIBackend,
    generation_config,
    make_generator,
)

from conftest import save_toy_chat_model
from serving import running_server

# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

SLOTS = 4


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("served") / "toy"
    save_toy_chat_model(directory, max_positions=128, seed=3)
    return str(directory)


@pytest.fixture(scope="module")
def server(toy_dir, tmp_path_factory):
    with running_server(toy_dir, tmp_path_factory.mktemp("logs"), "--max-slots", str(SLOTS)) as server:
        yield server


def _requests() -> list[ChatRequest]:
    """Greedy questions, and sampled ones with two samples each, seeded, with the filters the server extends."""
    questions = ["what is 2 + 2?", "name a colour", "the cat sat on the", "count to three", "say hello", "why?"]
    greedy = [ChatRequest([{"role": "user", "content": q}], max_tokens=10) for q in questions]
    sampled = [
        ChatRequest([{"role": "user", "content": q}], max_tokens=10, temperature=0.8, top_k=20, min_p=0.05, n=2,
                    seed=i)
        for i, q in enumerate(questions[:3])
    ]
    return greedy + sampled


def test_the_server_answers_as_the_local_backend(server, toy_dir):
    remote = OpenAIBackend("toy", api_key="unused", base_url=server.base_url, max_concurrency=4)
    local = LocalBackend.load(toy_dir, max_slots=SLOTS)
    requests = _requests()
    assert remote.complete(requests) == local.complete(requests)
    assert remote.stats() == {"calls": len(requests), "retries": 0}


def test_a_refused_request_is_named_and_not_retried(server):
    remote = OpenAIBackend("toy", api_key="unused", base_url=server.base_url, max_retries=5)
    requests = _requests()[:2] + [ChatRequest([{"role": "user", "content": "too long an answer"}], max_tokens=1000)]
    with pytest.raises(GenerationError) as caught:
        remote.complete(requests)
    message = str(caught.value)
    assert message.startswith("request 2 ('too long an answer'): HTTP 400 from http://127.0.0.1:")
    assert "max_tokens: 1000 must be in [1, " in message
    assert remote.stats()["retries"] == 0

    unknown = OpenAIBackend("not-served", api_key="unused", base_url=server.base_url)
    with pytest.raises(GenerationError, match="HTTP 404 .*'not-served' is not served here; this server serves 'toy'"):
        unknown.complete(requests[:1])


def test_an_overloaded_server_is_retried_through_to_success(toy_dir, tmp_path):
    """One slot and a queue of 4: of 32 requests sent at once, most are refused with 429 and Retry-After at first."""
    section = generation_config(backend="openai", model="toy", api_key_env="", max_concurrency=32, max_tokens=4,
                                max_retries=100, backoff_s=0.2, max_backoff_s=2.0, cache="none")
    with running_server(toy_dir, tmp_path, "--max-slots", "1", "--max-queue", "4") as server:
        section.base_url = server.base_url
        with make_generator(section, str(tmp_path)) as generator:
            answers = generator.complete(
                [generator.request([{"role": "user", "content": f"question {i}"}]) for i in range(32)]
            )
            stats = generator.stats()
        refused = server.stats()["rejected_queue_full"]
    assert all(a.finish_reasons[0] in ("stop", "length") for a in answers)
    assert stats["generated"] == 32 and stats["retries"] > 0
    assert stats["calls"] == 32 + stats["retries"]
    assert refused == stats["retries"]  # every retry was a 429, and every 429 was retried

