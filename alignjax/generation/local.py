"""The `local` backend: an alignjax model answers in this process, through the continuous-batching engine.

It goes through the same `Engine` and the same prompt encoding (the tokenizer's chat template) and stop tokens as
`python -m alignjax.serve`, so a local teacher answers exactly as the same model served over HTTP does (greedy
answers are equal token for token), without a server or HTTP in between. A base model without a chat template
(`template="plain"`, as its training data was rendered: `data.template`) is prompted with the user message's text
alone. The whole list goes to the engine at once: its slots stay full, and each answer is reported as soon as its
samples end.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import transformers

from alignjax.data.errors import DataError
from alignjax.data.templates import get_template
from alignjax.generation.backend import GenerationError, OnResult
from alignjax.generation.chat import ChatRequest, Completion
from alignjax.models import from_pretrained
from alignjax.sampling import SamplingConfig
from alignjax.sampling import engine as engine_lib
from alignjax.sampling.stop_tokens import answer_stop_tokens


class LocalBackend:
    """Answers with a model in this process.

    Args:
      engine: the engine over the model and its tokenizer.
      model: the model's name in the cache key (its directory and the fingerprint of its files).
      stop_tokens: token ids that end an answer.
      template: how a request's messages become the prompt (`data.templates`: "chat" or "plain").
    """

    kind = "local"

    def __init__(self, engine: engine_lib.Engine, model: str, stop_tokens: Sequence[int], template: str = "chat"):
        self.engine = engine
        self.model = model
        self.stop_tokens = list(stop_tokens)
        self.render_prompt = get_template(template).prompt
        self._calls = 0

    @classmethod
    def load(cls, model_dir: str, max_slots: int = 32, dtype: str = "float32", template: str = "chat") -> LocalBackend:
        """The model and tokenizer of `model_dir` (a Hugging Face directory) behind an engine of `max_slots`; its
        name in the cache key is the directory and a fingerprint of its files (`model_fingerprint`), and the
        template when it is not the chat template (the same messages are then another prompt)."""
        model = from_pretrained(model_dir, dtype=dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
        engine = engine_lib.Engine(model, tokenizer, max_slots=max_slots)
        name = f"{model_dir}@{model_fingerprint(model_dir)}" + ("" if template == "chat" else f"+{template}")
        return cls(engine, name, answer_stop_tokens(model_dir, tokenizer), template)

    def complete(self, requests: Sequence[ChatRequest], on_result: OnResult | None = None) -> list[Completion]:
        """Answers every request in one engine run; see `Backend.complete`."""
        engine_requests = [self._engine_request(i, r) for i, r in enumerate(requests)]
        index = {id(r): i for i, r in enumerate(engine_requests)}
        reported: set[int] = set()

        def on_update(request: engine_lib.Request, _: int) -> None:  # the engine steps in this thread
            i = index[id(request)]
            if request.done.is_set() and i not in reported:
                reported.add(i)
                if on_result is not None:
                    on_result(i, _completion(request))

        for request in engine_requests:
            request.on_update = on_update
        for i, request in enumerate(engine_requests):
            try:
                self.engine.check(request)
            except ValueError as e:
                raise GenerationError(f"request {i} ({requests[i].describe()}): {e}") from e
        self._calls += len(engine_requests)
        self.engine.run(engine_requests)
        return [_completion(r) for r in engine_requests]

    def _engine_request(self, i: int, request: ChatRequest) -> engine_lib.Request:
        try:
            prompt = self.render_prompt(list(request.messages), self.engine.tokenizer, "", f"request {i}")
        except DataError as e:
            raise GenerationError(f"request {i} ({request.describe()}): {e}") from e
        return engine_lib.Request(
            prompt=prompt,
            max_tokens=request.max_tokens,
            sampling=SamplingConfig(
                temperature=request.temperature, top_k=request.top_k, top_p=request.top_p, min_p=request.min_p
            ),
            n=request.n,
            seed=request.seed,
            stop_tokens=self.stop_tokens,
            stop_strings=request.stop,
        )

    def stats(self) -> dict[str, int]:
        return {"calls": self._calls}

    def close(self) -> None:
        """Nothing to release: the model's memory goes with the backend."""


def model_fingerprint(model_dir: str) -> str:
    """12 hex digits that change when the directory's files do (names, sizes, modification times): a model
    retrained into the same directory (a rerun stage's export) is a new model to the cache, whose answers to the
    old one are not reused."""
    entries = []
    for name in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            stat = os.stat(path)
            entries.append((name, stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(repr(entries).encode()).hexdigest()[:12]


def _completion(request: engine_lib.Request) -> Completion:
    return Completion(
        texts=tuple(s.text for s in request.samples),
        finish_reasons=tuple(s.finish_reason for s in request.samples),
        prompt_tokens=len(request.prompt),
        completion_tokens=sum(len(s.token_ids) for s in request.samples),
    )
