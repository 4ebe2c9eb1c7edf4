"""`Generator`: the one object pipelines and judges call: chat requests in, completions out, through the cache.

It looks every request up in the cache first, sends only the missing ones to the backend (each distinct request
once, however often it appears in the list), stores each answer the moment the backend reports it, and counts
what it did: requests asked, cache hits, answers generated, their tokens, and the backend's calls and retries.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence

import tqdm

from alignjax.generation.backend import Backend, OnResult
from alignjax.generation.cache import Cache, cache_key
from alignjax.generation.chat import ChatRequest, Completion

log = logging.getLogger("alignjax.generation")


class Generator:
    """A backend with a cache in front. One `complete` call at a time: concurrency is the backend's business.

    Args:
      backend: what answers (`LocalBackend`, `OpenAIBackend`).
      cache: the persistent cache; None to ask the backend every time.
      defaults: `ChatRequest` fields that `request` fills in when not given (the config's sampling fields).
    """

    def __init__(self, backend: Backend, cache: Cache | None = None, defaults: Mapping | None = None):
        self.backend = backend
        self.cache = cache
        self.defaults = dict(defaults or {})
        self._counters = {"requests": 0, "cache_hits": 0, "generated": 0, "prompt_tokens": 0, "completion_tokens": 0}

    @property
    def name(self) -> str:
        """The backend and model, e.g. "openai:gpt-4o" or "local:runs/sft/export"."""
        return f"{self.backend.kind}:{self.backend.model}"

    def request(self, messages: Sequence[Mapping[str, str]], **fields) -> ChatRequest:
        """A request for `messages` with the configured sampling, `fields` (e.g. `seed=3`) taking precedence."""
        return ChatRequest(messages=messages, **{**self.defaults, **fields})

    def texts(self, chats: Sequence[Sequence[Mapping[str, str]]], **fields) -> list[str]:
        """The answer to each chat (its first sample's text), asked with the configured sampling and `fields`."""
        return [c.text for c in self.complete([self.request(messages, **fields) for messages in chats])]

    def complete(self, requests: Sequence[ChatRequest], on_result: OnResult | None = None) -> list[Completion]:
        """The completions of `requests`, in order; cached ones have `cached=True`.

        Args:
          requests: the questions; equal requests get the same answer, generated once.
          on_result: called as `on_result(i, completion)` right after each newly generated answer is stored, for
            every position i that asked it (answers found in the cache are not reported).

        Raises:
          GenerationError: a request failed; the answers stored before it stay in the cache.
        """
        kind, model = self.backend.kind, self.backend.model
        keys = [cache_key(kind, model, r) for r in requests]
        found = self.cache.get(keys) if self.cache is not None else {}
        results: list[Completion | None] = [found.get(key) for key in keys]
        positions: dict[str, list[int]] = {}  # each missing key -> where it was asked
        for i, key in enumerate(keys):
            if key not in found:
                positions.setdefault(key, []).append(i)
        missing = list(positions)
        self._counters["requests"] += len(requests)
        self._counters["cache_hits"] += len(requests) - sum(map(len, positions.values()))
        bar = tqdm.tqdm(total=len(missing), desc=self.name, unit="req", disable=not missing or not sys.stderr.isatty())

        def store(j: int, completion: Completion) -> None:
            key = missing[j]
            if self.cache is not None:
                self.cache.put(kind, model, requests[positions[key][0]], completion)
            self._counters["generated"] += 1
            self._counters["prompt_tokens"] += completion.prompt_tokens
            self._counters["completion_tokens"] += completion.completion_tokens
            bar.update()
            for i in positions[key]:
                results[i] = completion
                if on_result is not None:
                    on_result(i, completion)

        try:
            if missing:
                self.backend.complete([requests[positions[key][0]] for key in missing], on_result=store)
        finally:
            bar.close()
            log.info("%s", self.summary())
        return results

    def stats(self) -> dict[str, int]:
        """Requests asked, cache hits, answers generated and their prompt and completion tokens, in this process,
        and the backend's counters (`calls`: requests sent to the model, retries included; `retries`)."""
        return {**self._counters, **self.backend.stats()}

    def summary(self) -> str:
        """The stats in one line, for a log."""
        s = self.stats()
        calls = f"{s['calls']} calls" + (f", {s['retries']} retries" if "retries" in s else "")
        return (
            f"{self.name}: {s['requests']} requests, {s['cache_hits']} from the cache, {s['generated']} generated "
            f"({calls}); {s['prompt_tokens']} prompt + {s['completion_tokens']} completion tokens generated"
        )

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *_) -> None:
        self.close()
