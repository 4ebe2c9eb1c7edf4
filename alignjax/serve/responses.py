"""Responses and stream chunks in OpenAI's shapes, for chat completions and text completions.

Choice i * n + j is sample j of prompt i. `usage` counts each prompt once and every generated token (a stop token
included, as it was generated). `finish_reason` is "stop" (a stop token or string), "length" (the budget) or, as
vLLM says, "abort" (the server stopped before the end). Log-probabilities are under the model's own softmax
(temperature 1, no filters), as OpenAI reports them.
"""

from __future__ import annotations

import json
import time


def model_card(served) -> dict:
    return {
        "id": served.model_name,
        "object": "model",
        "created": served.created,
        "owned_by": "alignjax",
        "max_model_len": served.engine.context,
    }


class Format:
    """Builds one HTTP request's response, or its stream's chunks."""

    def __init__(self, served, completion_id: str, chat: bool, body, requests):
        self.served, self.id, self.chat, self.body, self.requests = served, completion_id, chat, body, requests
        self.created = int(time.time())
        self.include_usage = body.include_usage

    def _head(self) -> dict:
        kind = ("chat.completion" if self.chat else "text_completion") + (".chunk" if self.body.stream else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.served.model_name}

    def usage(self) -> dict:
        prompt = sum(len(r.prompt) for r in self.requests)
        completion = sum(len(s.token_ids) for r in self.requests for s in r.samples)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    # -- whole responses -----------------------------------------------------------------------------------------

    def response(self) -> dict:
        choices = []
        for i, request in enumerate(self.requests):
            for sample in request.samples:
                choice = {"index": i * self.body.n + sample.index, "finish_reason": _reason(sample.finish_reason)}
                logprobs = self._logprobs(sample.token_ids, sample.logprobs, sample.top_logprobs, request.logprobs)
                if self.chat:
                    choice["message"] = {"role": "assistant", "content": sample.text}
                else:
                    choice["text"] = sample.text
                choice["logprobs"] = logprobs
                choices.append(choice)
        return {**self._head(), "choices": choices, "usage": self.usage()}

    # -- streams -------------------------------------------------------------------------------------------------

    def opening_chunks(self) -> list[str]:
        """Chat streams open each choice with the assistant's role, as OpenAI does."""
        if not self.chat:
            return []
        return [
            _event({**self._head(), "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}}]})
            for i in range(len(self.requests) * self.body.n)
        ]

    def chunk(self, delta) -> str:
        request = self.requests[delta.index // self.body.n]
        choice = {
            "index": delta.index,
            "logprobs": self._logprobs(delta.token_ids, delta.logprobs, delta.top_logprobs, request.logprobs),
            "finish_reason": _reason(delta.finish_reason),
        }
        if self.chat:
            choice["delta"] = {"content": delta.text} if delta.text else {}
        else:
            choice["text"] = delta.text
        chunk = {**self._head(), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return _event(chunk)

    def usage_chunk(self) -> str:
        return _event({**self._head(), "choices": [], "usage": self.usage()})

    # -- log-probabilities ---------------------------------------------------------------------------------------

    def _logprobs(self, token_ids, logprobs, top_logprobs, width: int | None):
        if width is None:
            return None
        if self.chat:
            return {
                "content": [
                    {**self._token(t, lp), "top_logprobs": [self._token(i, v) for i, v in top]}
                    for t, lp, top in zip(token_ids, logprobs, top_logprobs)
                ]
            }
        return {
            "tokens": [self._text(t) for t in token_ids],
            "token_logprobs": logprobs,
            "top_logprobs": [{self._text(i): v for i, v in top} for top in top_logprobs],
        }

    def _text(self, token_id: int) -> str:
        return self.served.tokenizer.decode([token_id])

    def _token(self, token_id: int, logprob: float) -> dict:
        text = self._text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def _reason(finish_reason: str | None) -> str | None:
    """OpenAI's finish reasons, and vLLM's "abort" for a sample cut short by the server stopping."""
    return "abort" if finish_reason == "cancelled" else finish_reason


def _event(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"
