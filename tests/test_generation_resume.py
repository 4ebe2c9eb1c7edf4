"""A pipeline killed halfway and rerun asks the server each question once in total, as the server itself counts.

The pipeline is this file run as a script: 200 distinct questions through the cached openai client. Killed with
SIGKILL (nothing gets to clean up) after its 100th stored answer, with one request in flight at a time, it leaves
exactly 100 answers and no request unanswered; the rerun sends the other 100. Killed from outside at a moment
of the test's choosing, with 8 in flight, at most those 8 are asked twice.

    python tests/test_generation_resume.py BASE_URL WORKDIR MAX_CONCURRENCY KILL_AFTER
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from alignjax.generation import Cache, generation_config, make_generator
from alignjax.generation.config import CACHE_FILE

from conftest import save_toy_chat_model
from serving import running_server

# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

QUESTIONS = 200
SCRIPT_TIMEOUT_S = 240


def pipeline(base_url: str, workdir: str, max_concurrency: int, kill_after: int) -> dict:
    """Asks QUESTIONS questions; kills its own process right after the `kill_after`-th answer is stored (0: never).
    Returns the generator's stats."""
    section = generation_config(backend="openai", model="toy", base_url=base_url, api_key_env="", max_tokens=4,
                                max_concurrency=max_concurrency)
    stored = 0

    def on_result(i, completion) -> None:
        nonlocal stored
        stored += 1
        if stored == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    with make_generator(section, workdir) as generator:
        requests = [generator.request([{"role": "user", "content": f"question {i}"}]) for i in range(QUESTIONS)]
        generator.complete(requests, on_result=on_result)
        return generator.stats()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("served") / "toy"
    save_toy_chat_model(directory, max_positions=64, seed=3)
    with running_server(directory, tmp_path_factory.mktemp("logs")) as server:
        yield server


def _start(server, workdir, max_concurrency: int, kill_after: int = 0) -> subprocess.Popen:
    command = [sys.executable, __file__, server.base_url, str(workdir), str(max_concurrency), str(kill_after)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> dict:
    """The stats of a pipeline run to completion."""
    out, err = process.communicate(timeout=SCRIPT_TIMEOUT_S)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _answers(workdir) -> int:
    path = os.path.join(workdir, CACHE_FILE)
    if not os.path.exists(path):
        return 0
    cache = Cache(path)
    try:
        return len(cache)
    finally:
        cache.close()


def test_killed_after_half_the_answers_the_rerun_sends_exactly_the_other_half(server, tmp_path):
    before = server.stats()["requests"]
    killed = _start(server, tmp_path, max_concurrency=1, kill_after=QUESTIONS // 2)
    _, err = killed.communicate(timeout=SCRIPT_TIMEOUT_S)
    assert killed.returncode == -signal.SIGKILL, err[-3000:]
    assert _answers(tmp_path) == QUESTIONS // 2

    stats = _finish(_start(server, tmp_path, max_concurrency=1))
    assert (stats["cache_hits"], stats["generated"], stats["calls"]) == (QUESTIONS // 2,) * 3
    assert _answers(tmp_path) == QUESTIONS
    assert server.stats()["requests"] - before == QUESTIONS  # counted by the server's engine


def test_killed_at_any_moment_only_the_requests_in_flight_are_asked_twice(server, tmp_path):
    before = server.stats()["requests"]
    killed = _start(server, tmp_path, max_concurrency=8)
    deadline = time.monotonic() + SCRIPT_TIMEOUT_S
    while _answers(tmp_path) < QUESTIONS // 2 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    kept = _answers(tmp_path)
    assert QUESTIONS // 2 <= kept < QUESTIONS

    stats = _finish(_start(server, tmp_path, max_concurrency=8))
    assert (stats["cache_hits"], stats["generated"]) == (kept, QUESTIONS - kept)
    assert _answers(tmp_path) == QUESTIONS
    assert QUESTIONS <= server.stats()["requests"] - before <= QUESTIONS + 8


if __name__ == "__main__":
    base_url, workdir, max_concurrency, kill_after = sys.argv[1:]
    print(json.dumps(pipeline(base_url, workdir, int(max_concurrency), int(kill_after))))
