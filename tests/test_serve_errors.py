"""Bad requests get OpenAI-shaped 4xx errors naming the field, and the server keeps serving; clients that leave free
their slots; SIGTERM lets requests in flight finish and exits 0."""

import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import save_toy_chat_model
from serving import running_server

# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

KEY = "sesame"
CONTEXT = 96
VALID = {"model": "toy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_errors") / "toy"
    save_toy_chat_model(directory, max_positions=CONTEXT)
    return directory


@pytest.fixture(scope="module")
def server(model_dir):
    with running_server(model_dir, model_dir.parent, "--max-slots", "2", "--api-key", KEY) as server:
        yield server


def _post(server, body, path="/v1/chat/completions", key=KEY, content: bytes | None = None) -> tuple[int, dict]:
    """POSTs `body` as JSON (or `content` as it is); returns the status and the JSON answer."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = content if content is not None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


BAD_REQUESTS = {
    "malformed body": (dict(content=b'{"model": "toy", "messages": [', body=None), 400, None),
    "missing field": ({"model": "toy", "max_tokens": 4}, 400, "messages"),
    "wrong type": ({**VALID, "max_tokens": "ten"}, 400, "max_tokens"),
    "negative temperature": ({**VALID, "temperature": -0.5}, 400, "temperature"),
    "n below one": ({**VALID, "n": 0}, 400, "n"),
    "budget beyond the context": ({**VALID, "max_tokens": CONTEXT}, 400, "max_tokens"),
    "prompt beyond the context": ({**VALID, "messages": [{"role": "user", "content": "x" * CONTEXT}]}, 400, "messages"),
    "unknown model": ({**VALID, "model": "gpt-9"}, 404, "model"),
    "unknown field": ({**VALID, "max_token": 4}, 400, "max_token"),
    "unsupported penalty": ({**VALID, "presence_penalty": 1.0}, 400, "presence_penalty"),
    "text prompt beyond the context": ({"model": "toy", "prompt": "y" * CONTEXT}, 400, "prompt"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_names_its_field_and_the_server_keeps_serving(server, case):
    body, status, param = BAD_REQUESTS[case]
    path = "/v1/completions" if "prompt" in (body or {}) else "/v1/chat/completions"
    code, answer = _post(server, **body) if "body" in body else _post(server, body, path=path)
    assert code == status, answer
    error = answer["error"]
    assert error["param"] == param
    if param:
        assert error["message"].startswith(f"{param}: ")
    assert _post(server, VALID)[0] == 200


def test_api_key_is_required_on_v1_but_not_for_health(server):
    for key in (None, "wrong"):
        code, answer = _post(server, VALID, key=key)
        assert code == 401
        assert answer["error"]["code"] == "invalid_api_key"
    with urllib.request.urlopen(server.url + "/health") as response:
        assert response.status == 200
    assert _post(server, VALID)[0] == 200


def test_a_client_that_disconnects_mid_stream_frees_its_slot(server):
    # 32 samples through 2 slots take seconds, far longer than noticing the disconnect: whatever the machine's
    # speed, the client leaves while samples are decoding (one sample of a tiny model can end within milliseconds)
    body = {**VALID, "max_tokens": CONTEXT - 8, "stream": True, "temperature": 1.0, "stop": None, "n": 32}
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    cancelled_before = server.stats()["cancelled"]
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=60)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")  # the first event: the request is decoding
    connection.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = server.stats()
        if stats["decoding"] == 0 and stats["waiting"] == 0:
            break
        time.sleep(0.05)
    assert stats["decoding"] == 0 and stats["waiting"] == 0
    assert stats["cancelled"] > cancelled_before


def test_sigterm_finishes_requests_in_flight_and_exits_zero(model_dir, tmp_path):
    with running_server(model_dir, tmp_path, "--max-slots", "2", "--shutdown-timeout", "60") as server:
        bodies = [{**VALID, "max_tokens": 64, "temperature": 1.0, "seed": seed} for seed in range(6)]
        replies = []
        workers = [threading.Thread(target=lambda b=b: replies.append(_post(server, b, key=None))) for b in bodies]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while server.stats()["decoding"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.join(60)
        assert server.process.wait(60) == 0
        after_signal = server.log().split("Shutting down", 1)[1]
        assert '"POST /v1/chat/completions HTTP/1.1" 200' in after_signal  # answered after the signal
    assert [code for code, _ in replies] == [200] * len(bodies)
    assert all(answer["choices"][0]["finish_reason"] in ("stop", "length") for _, answer in replies)
