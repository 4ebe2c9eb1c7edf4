"""The HTTP API: OpenAI's chat and text completions over the continuous-batching engine, with FastAPI.

Each HTTP request becomes one engine request per prompt. The engine decodes in its own thread and reports each
sample's progress through `on_update`; `_Watch` turns that into deltas (new text, new tokens, the finish reason)
on the event loop, from which a handler streams server-sent events or, at the end, builds the whole response.
A client that goes away cancels its engine requests, which frees their slots at the next decode chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import time
import uuid

from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse

from alignjax.data import DataError
from alignjax.data.tokenization import encode_chat_prompt
from alignjax.sampling import SamplingConfig
from alignjax.sampling import engine as engine_lib
from alignjax.serve import errors, responses
from alignjax.serve.errors import APIError
from alignjax.serve.schemas import ChatCompletionRequest, CompletionRequest

RETRY_AFTER_S = 1


@dataclasses.dataclass
class Served:
    """What the app serves: the engine, the tokenizer, the model's public name and the end-of-answer tokens."""

    engine: engine_lib.Engine
    tokenizer: object
    model_name: str
    stop_tokens: list[int]
    api_key: str | None = None
    shutdown_timeout_s: float = 30.0
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))


@dataclasses.dataclass
class Delta:
    """What one sample added since the last delta: choice `index`, text, tokens (with log-probabilities), and
    its finish reason once it ended."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]]
    finish_reason: str | None


class _Watch:
    """Collects the engine's progress on one HTTP request's engine requests, as deltas on the event loop."""

    def __init__(self, n: int):
        self.loop = asyncio.get_running_loop()
        self.deltas: asyncio.Queue[Delta] = asyncio.Queue()
        self.n = n
        self.requests: list[engine_lib.Request] = []
        self._sent: dict[tuple[int, int], int] = {}  # engine-thread only: tokens already in a delta

    def on_update(self, request: engine_lib.Request, j: int) -> None:
        """Runs in the engine's thread: the sample's news as a delta, handed to the event loop."""
        sample = request.samples[j]
        prompt_index = self.requests.index(request)
        key = (prompt_index, j)
        sent = self._sent.get(key, 0)
        final = sample.finish_reason is not None
        delta = Delta(
            index=prompt_index * self.n + j,
            text=sample.stream.release(final=final),
            token_ids=sample.token_ids[sent:],
            logprobs=sample.logprobs[sent:],
            top_logprobs=sample.top_logprobs[sent:],
            finish_reason=sample.finish_reason,
        )
        self._sent[key] = len(sample.token_ids)
        self.loop.call_soon_threadsafe(self.deltas.put_nowait, delta)

    def cancel(self) -> None:
        for request in self.requests:
            if not request.done.is_set():
                request.cancel()


def create_app(served: Served) -> FastAPI:
    """The FastAPI application; the engine's thread runs for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def lifespan(_):
        served.engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(served.engine.stop, served.shutdown_timeout_s)

    app = FastAPI(title="alignjax.serve", lifespan=lifespan)
    errors.install(app)
    authorized = Depends(_authorization(served.api_key))

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/stats")
    async def stats():
        return served.engine.stats()

    @app.get("/v1/models", dependencies=[authorized])
    async def models():
        return {"object": "list", "data": [responses.model_card(served)]}

    @app.post("/v1/chat/completions", dependencies=[authorized])
    async def chat_completions(body: ChatCompletionRequest, http: Request):
        _check_model(body.model, served)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            prompt = encode_chat_prompt(messages, served.tokenizer, where="messages")
        except DataError as e:
            raise APIError(400, f"messages: {e}", param="messages") from e
        return await _complete(served, body, [prompt], http, chat=True)

    @app.post("/v1/completions", dependencies=[authorized])
    async def completions(body: CompletionRequest, http: Request):
        _check_model(body.model, served)
        prompts = [served.tokenizer(p)["input_ids"] if isinstance(p, str) else p for p in body.prompts()]
        return await _complete(served, body, prompts, http, chat=False)

    return app


def _authorization(api_key: str | None):
    """A dependency that answers 401 unless the request carries `Authorization: Bearer <api_key>`."""

    async def check(http: Request) -> None:
        if api_key is None:
            return
        given = http.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            message = "Incorrect or missing API key: send 'Authorization: Bearer <key>'"
            raise APIError(401, message, code="invalid_api_key")

    return check


def _check_model(name: str, served: Served) -> None:
    if name != served.model_name:
        raise APIError(
            404,
            f"model: '{name}' is not served here; this server serves '{served.model_name}'",
            param="model",
            code="model_not_found",
        )


async def _complete(served: Served, body, prompts: list[list[int]], http: Request, chat: bool):
    """Submits one engine request per prompt and answers as a stream or as one response."""
    watch = _Watch(body.n)
    prompt_field = "messages" if chat else "prompt"
    budget_field = "max_completion_tokens" if chat and body.max_completion_tokens else "max_tokens"
    try:
        sampling = SamplingConfig(
            temperature=body.temperature, top_k=max(body.top_k, 0), top_p=body.top_p, min_p=body.min_p
        )
        for prompt in prompts:
            budget = body.budget or served.engine.context - len(prompt)
            request = engine_lib.Request(
                prompt=list(prompt),
                max_tokens=budget,
                sampling=sampling,
                n=body.n,
                seed=body.seed,
                stop_tokens=served.stop_tokens,
                stop_strings=body.stop_strings,
                logprobs=_top_logprobs(body, chat),
                on_update=watch.on_update,
            )
            watch.requests.append(request)
            served.engine.submit(request)
    except ValueError as e:
        watch.cancel()
        field, _, message = str(e).partition(": ")
        param = {"prompt": prompt_field, "max_tokens": budget_field}.get(field, field)
        raise APIError(400, f"{param}: {message}", param=param) from e
    except engine_lib.QueueFull as e:
        watch.cancel()
        raise APIError(
            429, f"the server is busy: {e}", code="rate_limit_exceeded", kind="rate_limit_error",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from e
    except engine_lib.EngineStopped as e:
        watch.cancel()
        raise APIError(503, str(e), kind="server_error") from e
    completion_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    format_ = responses.Format(served, completion_id, chat, body, watch.requests)
    if body.stream:
        return StreamingResponse(_events(watch, format_), media_type="text/event-stream")
    await _wait(watch, http)
    return format_.response()


def _top_logprobs(body, chat: bool) -> int | None:
    if chat:
        return (body.top_logprobs or 0) if body.logprobs else None
    return body.logprobs


async def _wait(watch: _Watch, http: Request) -> None:
    """Waits for every sample to end; a client that disconnects meanwhile cancels them."""
    left = len(watch.requests) * watch.n
    while left:
        try:
            delta = await asyncio.wait_for(watch.deltas.get(), timeout=1.0)
        except TimeoutError:
            if await http.is_disconnected():
                watch.cancel()
                return
            continue
        left -= delta.finish_reason is not None


async def _events(watch: _Watch, format_: responses.Format):
    """Server-sent events: the deltas as chunks, the usage when asked for, then `[DONE]`."""
    left = len(watch.requests) * watch.n
    try:
        for event in format_.opening_chunks():
            yield event
        while left:
            delta = await watch.deltas.get()
            left -= delta.finish_reason is not None
            if delta.text or delta.token_ids or delta.finish_reason:
                yield format_.chunk(delta)
        if format_.include_usage:
            yield format_.usage_chunk()
        yield "data: [DONE]\n\n"
    finally:
        watch.cancel()  # a no-op when all ended; else the client went away
