"""What is retried and how long the client waits: backoff with full jitter, at least what the server asks."""

import random

import httpx2
import openai
import pytest

from alignjax.generation.retry import Backoff, retry_after_s, retryable

URL = "http://127.0.0.1:9/v1/chat/completions"


def _status_error(status: int, headers: dict | None = None) -> openai.APIStatusError:
    """An error as the `openai` client raises it for an HTTP `status` response (its subclasses add no fields)."""
    response = httpx2.Response(status, headers=headers or {}, json={"error": {"message": "no"}},
                               request=httpx2.Request("POST", URL))
    return openai.APIStatusError("no", response=response, body={"message": "no"})


@pytest.mark.parametrize("status, expected", [(429, True), (500, True), (503, True), (408, True), (409, True),
                                               (400, False), (401, False), (404, False), (422, False)])
def test_only_errors_that_may_pass_are_retried(status, expected):
    assert retryable(_status_error(status)) is expected


def test_lost_connections_and_timeouts_are_retried():
    request = httpx2.Request("POST", URL)
    assert retryable(openai.APIConnectionError(request=request))
    assert retryable(openai.APITimeoutError(request=request))


@pytest.mark.parametrize(
    "headers, expected", [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "250"}, 0.25), ({}, None),
                          ({"retry-after": "soon"}, None)]
)
def test_the_servers_wait_is_read_from_its_headers(headers, expected):
    assert retry_after_s(_status_error(429, headers)) == expected


def test_waits_are_jittered_within_a_doubling_window_under_the_cap():
    backoff = Backoff(base_s=0.5, max_s=3.0)
    rng = random.Random(0)
    for attempt, window in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        waits = [backoff.delay_s(attempt, rng=rng) for _ in range(2000)]
        assert 0 <= min(waits) < 0.05 * window and 0.95 * window < max(waits) <= window
        asked = [backoff.delay_s(attempt, retry_after=1.0, rng=rng) for _ in range(2000)]
        assert 1.0 <= min(asked) and max(asked) <= 1.0 + window
    assert backoff.delay_s(0, retry_after=3600.0, rng=rng) <= 3.0 + 0.5  # the cap bounds a server's wait too
