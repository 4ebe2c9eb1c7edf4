"""The `openai` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, `alignjax.serve`, ...), through the
official `openai` client.

Requests go out from a pool of `max_concurrency` threads sharing one client, a new one each time an answer has
been reported, so that a killed process has at most `max_concurrency` answers it paid for and did not store. The
client's own retries are off (`max_retries=0`) and this module retries instead (see `retry`), so that every
retry is counted and its wait honours `Retry-After` with jitter. Fields that only some endpoints know (`top_k`,
`min_p`) are sent in `extra_body` and only when set, since hosted APIs reject unknown fields.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Sequence

import openai

from alignjax.generation.backend import GenerationError, OnResult
from alignjax.generation.chat import ChatRequest, Completion
from alignjax.generation.retry import Backoff, retry_after_s, retryable

DEFAULT_BACKOFF = Backoff()


class OpenAIBackend:
    """Answers through an OpenAI-compatible endpoint.

    Args:
      model: the model's name at the endpoint (`model` in each request).
      api_key: the key sent as `Authorization: Bearer`; any placeholder for an endpoint that needs none.
      base_url: the endpoint, e.g. "http://localhost:8000/v1"; None for the client's default (OpenAI's, or
        $OPENAI_BASE_URL).
      max_concurrency: requests sent and not yet reported, at most.
      timeout_s: the limit on each attempt of a request.
      max_retries: retries of one request before it fails.
      backoff: the waits between attempts.
    """

    kind = "openai"

    def __init__(
        self,
        model: str,
        api_key: str,
        base_url: str | None = None,
        *,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 8,
        backoff: Backoff = DEFAULT_BACKOFF,
    ):
        self.model = model
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s)
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._lock = threading.Lock()
        self._counters = {"calls": 0, "retries": 0}

    def complete(self, requests: Sequence[ChatRequest], on_result: OnResult | None = None) -> list[Completion]:
        """Answers `requests` concurrently; see `Backend.complete`.

        A request is sent only when fewer than `max_concurrency` are sent and not yet reported, so a process
        killed inside `on_result` loses at most `max_concurrency - 1` answers (none with `max_concurrency=1`). On the
        first request that fails, no more are sent, those in flight are awaited (and reported), and its error is
        raised.
        """
        results: list[Completion | None] = [None] * len(requests)
        failure: Exception | None = None
        waiting = iter(enumerate(requests))
        in_flight: dict[concurrent.futures.Future, int] = {}
        pool = concurrent.futures.ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="openai")

        def send_next() -> None:
            i, request = next(waiting, (None, None))
            if request is not None:
                in_flight[pool.submit(self._ask, i, request)] = i

        try:
            for _ in range(self.max_concurrency):
                send_next()
            while in_flight:
                done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    i = in_flight.pop(future)
                    try:
                        results[i] = future.result()
                    except Exception as e:  # raised below, once the requests in flight have ended
                        failure = failure or e
                        continue
                    if on_result is not None:
                        on_result(i, results[i])
                    if failure is None:
                        send_next()
        finally:  # also on Ctrl-C or an error in `on_result`: wait for the requests in flight
            pool.shutdown(wait=True)
        if failure is not None:
            raise failure
        return results

    def _ask(self, i: int, request: ChatRequest) -> Completion:
        """One request, retried while its errors are retryable and retries are left."""
        attempt = 0
        while True:
            self._count("calls")
            try:
                return _completion(self.client.chat.completions.create(**self._body(request)))
            except openai.OpenAIError as e:
                if not retryable(e):
                    raise GenerationError(f"request {i} ({request.describe()}): {self._describe(e)}") from e
                if attempt == self.max_retries:
                    raise GenerationError(
                        f"request {i} ({request.describe()}): still failing after {attempt + 1} attempts "
                        f"(max_retries={self.max_retries}): {self._describe(e)}"
                    ) from e
                self._count("retries")
                time.sleep(self.backoff.delay_s(attempt, retry_after_s(e)))
                attempt += 1

    def _body(self, request: ChatRequest) -> dict:
        body = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": request.n,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        extra = {"top_k": request.top_k, "min_p": request.min_p}
        extra = {k: v for k, v in extra.items() if v}
        if extra:
            body["extra_body"] = extra
        return body

    def _describe(self, error: openai.OpenAIError) -> str:
        """The endpoint's own message, with the HTTP status when there is one."""
        if isinstance(error, openai.APIStatusError):
            body = error.body
            message = body.get("message", body) if isinstance(body, dict) else (body or error.message)
            return f"HTTP {error.status_code} from {error.request.url}: {message}"
        if isinstance(error, openai.APITimeoutError):
            return f"no answer from {error.request.url} within timeout_s={self.timeout_s}"
        if isinstance(error, openai.APIConnectionError):
            return f"cannot connect to {error.request.url}: {error.__cause__ or error}"
        return str(error)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def close(self) -> None:
        self.client.close()


def _completion(response) -> Completion:
    choices = sorted(response.choices, key=lambda c: c.index)
    usage = response.usage
    return Completion(
        texts=tuple(c.message.content or "" for c in choices),
        finish_reasons=tuple(c.finish_reason or "" for c in choices),
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )
