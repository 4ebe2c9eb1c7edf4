"""When to retry a request to an endpoint, and how long to wait first.

Retried: rate limits (429), server errors (5xx), the conflicts and timeouts an endpoint reports (408, 409), and
connection failures and timeouts on our side; these pass. Anything else (400, 401, 404, ...) would fail again, so
it is not retried. The wait is exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"): a
uniform draw in [0, min(cap, base * 2^attempt)], so that clients refused together do not return together. When the
server says how long to wait (`Retry-After`, or OpenAI's `retry-after-ms`), the wait is that long plus the jitter.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time

import openai

RETRIED_STATUSES = (408, 409, 429)  # and every 5xx


def retryable(error: Exception) -> bool:
    """Whether `error` (raised by the `openai` client) may pass if the request is sent again."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRIED_STATUSES or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)  # APITimeoutError is one


def retry_after_s(error: Exception) -> float | None:
    """The wait the server asked for in its response headers, in seconds; None when it asked for none."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:  # an HTTP date
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):  # a header we cannot read: fall back on our own backoff
        return None


@dataclasses.dataclass(frozen=True)
class Backoff:
    """The waits between attempts.

    Attributes:
      base_s: the first retry's jitter window; it doubles with each attempt.
      max_s: the cap on the window, and on a server's `Retry-After`.
    """

    base_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` + 1 (attempt 0 is the first retry)."""
        window = min(self.max_s, self.base_s * 2**attempt)
        jitter = (rng or random).uniform(0, window)
        if retry_after is None:
            return jitter
        return min(retry_after, self.max_s) + jitter
