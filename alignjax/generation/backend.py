"""The interface every answering backend offers: a list of chat requests in, one completion per request out.

A backend reports each answer through `on_result` as soon as it has it, before the whole list is done, so that
the cache in front of it (`Generator`) can store answers one by one and a killed run loses only those in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from alignjax.generation.chat import ChatRequest, Completion

OnResult = Callable[[int, Completion], None]  # (index in the list, its completion), in the caller's thread


class GenerationError(RuntimeError):
    """A request could not be answered: it was invalid, the endpoint refused it, or retries ran out. The message
    says which request (its index and its last message's start) and why."""


class Backend(Protocol):
    """Answers chat requests.

    Attributes:
      kind: the backend's kind ("local", "openai"), part of the cache key.
      model: the model that answers (a local directory, or the endpoint's model name), part of the cache key.
    """

    kind: str
    model: str

    def complete(self, requests: Sequence[ChatRequest], on_result: OnResult | None = None) -> list[Completion]:
        """Answers `requests`, in order; calls `on_result(i, completion)` in the caller's thread as each is done.

        Raises:
          GenerationError: naming the request that failed.
        """
        ...

    def stats(self) -> dict[str, int]:
        """Counters since the backend was made: `calls` (requests sent to the model, retries included) and any
        the backend adds (`retries`)."""
        ...

    def close(self) -> None:
        """Releases connections or device memory."""
        ...
