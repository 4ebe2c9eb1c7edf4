"""The continuous-batching engine: requests come and go while a fixed set of decode slots keeps decoding.

A request waits in a bounded queue until a slot frees up; then its prompt is prefilled, its cache row inserted
into the free slot, and it decodes alongside the rows already there, each with its own strategy, budget and stop
tokens. Between chunks of `decode_steps` steps the host reads the new tokens, detokenises them, ends samples at
their stop strings, hands text to whoever waits, and admits waiting requests into the slots that finished. This is
how JetStream and vLLM batch: no request waits for the longest one of a batch.

The compiled programs (see `slots`) have static shapes whatever the requests: one decode program per power of two
of active slots and cache window, one admission (prefill and insert) per prompt batch and bucket. `warm_up`
compiles them all before the first request, so that no client waits for XLA.

Used in-process (`Engine.run`: submit, decode until done) and by the HTTP server (`Engine.start`: a background
thread that decodes while requests arrive).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
from flax import nnx

from alignjax import sharding
from alignjax.sampling import slots as slot_programs
from alignjax.sampling.slots import MAX_TOP_LOGPROBS
from alignjax.sampling.strategies import RowSampling, SamplingConfig
from alignjax.sampling.text_stream import TextStream

log = logging.getLogger("alignjax.engine")

# what `stats` counts: requests submitted, prefill calls, samples started in a slot, of those the ones that took a
# freed slot while others decoded, decode calls, tokens emitted, samples finished and cancelled, requests refused
COUNTERS = (
    "requests", "prefills", "admitted", "reused_while_decoding", "decode_calls", "tokens", "samples_finished",
    "cancelled", "rejected_queue_full",
)
MAX_STOP_TOKENS = 8
_MIN_BUCKET = 16
# the smallest cache window a decode step reads: below it the weights, not the cache, bound a step's cost
_MIN_WINDOW = 128


class QueueFull(Exception):
    """The engine already holds as many waiting requests as it may: try again later."""


class EngineStopped(Exception):
    """The engine is shutting down and admits no new request."""


@dataclasses.dataclass
class Request:
    """What to generate.

    Attributes:
      prompt: the prompt's token ids.
      max_tokens: the budget of each sample, its stop token included.
      sampling: the decoding strategy.
      n: samples of the prompt.
      seed: sample j draws from fold_in(key(seed), j), as `generate(..., rng=seed, num_samples=n)` does; None
        draws a fresh seed.
      stop_tokens: token ids that end a sample (kept out of its text).
      stop_strings: texts that end a sample; the text ends before the first one.
      logprobs: None for no log-probabilities; k >= 0 for each token's and the k most likely ones (k <= 20).
      on_update: called from the engine's thread with (request, sample index) whenever a sample has new tokens
        or ends; read `samples[index]`.
    """

    prompt: list[int]
    max_tokens: int
    sampling: SamplingConfig = SamplingConfig(temperature=0.0)
    n: int = 1
    seed: int | None = None
    stop_tokens: Sequence[int] = ()
    stop_strings: Sequence[str] = ()
    logprobs: int | None = None
    on_update: Callable[[Request, int], None] | None = None
    samples: list[Sample] = dataclasses.field(default_factory=list, init=False)
    id: int = dataclasses.field(default=0, init=False)
    submitted_at: float = dataclasses.field(default=0.0, init=False)
    cancelled: bool = dataclasses.field(default=False, init=False)
    admitted: int = dataclasses.field(default=0, init=False)  # samples that have reached a slot
    done: threading.Event = dataclasses.field(default_factory=threading.Event, init=False, repr=False)

    @property
    def finished(self) -> bool:
        return all(s.finish_reason is not None for s in self.samples)

    def cancel(self) -> None:
        """Ends the request's samples at the next chunk (a client went away); their slots are freed."""
        self.cancelled = True


@dataclasses.dataclass
class Sample:
    """One sample of a request, as it grows.

    token_ids include the stop token, if one ended the sample; `text` excludes it and anything from a stop string
    on. logprobs[i] is token i's log-probability under the model's own softmax; top_logprobs[i] the most likely
    (token id, log-probability) pairs at that step, when asked for.
    """

    index: int
    stream: TextStream
    token_ids: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = dataclasses.field(default_factory=list)
    finish_reason: str | None = None  # "stop", "length", or "cancelled"

    @property
    def text(self) -> str:
        return self.stream.text


@dataclasses.dataclass
class _Row:
    """A sample occupying a slot."""

    request: Request
    sample: Sample


class Engine:
    """Continuous batching of generation requests over a model's decode slots.

    Args:
      model: the model (its params are used in place).
      tokenizer: a transformers tokenizer, for texts and stop strings.
      max_slots: rows decoding at once (S).
      context: cache slots per row (C): a prompt and its budget must fit. Default: the model's
        max_position_embeddings.
      decode_steps: steps per compiled decode call: more amortise the host's work, fewer admit sooner.
      max_prefill: prompts prefilled together when several wait (one call, a better use of the matmuls).
      max_queue: requests waiting for a slot before `submit` raises QueueFull; None for no limit.
      pad_id: fills idle slots' tokens; default the tokenizer's pad or EOS token, or 0.
      mesh: the mesh the params live on; slots are split over its data-parallel axes.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_slots: int = 32,
        context: int | None = None,
        decode_steps: int = 4,
        max_prefill: int = 8,
        max_queue: int | None = None,
        pad_id: int | None = None,
        mesh=None,
    ):
        if min(max_slots, decode_steps, max_prefill) < 1:
            raise ValueError(f"max_slots, decode_steps and max_prefill must be >= 1, got {max_slots}, "
                             f"{decode_steps} and {max_prefill}")
        self.graphdef, self.params = nnx.split(model)
        self.tokenizer = tokenizer
        self.vocab_size = model.config.vocab_size
        self.context = context or model.config.max_position_embeddings
        self.decode_steps = decode_steps
        self.max_prefill = max_prefill
        self.max_queue = max_queue
        self.mesh = mesh
        if pad_id is None:
            candidates = (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None))
            pad_id = next((c for c in candidates if c is not None), 0)
        self.pad_id = pad_id
        self._data_parallel = 1 if mesh is None else sharding.data_parallel_size(mesh)
        if max_slots % self._data_parallel:
            raise ValueError(f"max_slots={max_slots} must be a multiple of the mesh's data-parallel size "
                             f"{self._data_parallel}")
        self._slots = slot_programs.empty_slots(model, max_slots, self.context, MAX_STOP_TOKENS, mesh)
        self._rows: list[_Row | None] = [None] * max_slots
        self._release = np.zeros(max_slots, bool)
        self._used_slots: set[int] = set()
        self._queue: collections.deque[Request] = collections.deque()
        self._shapes: set[tuple] = set()  # (program, shape) pairs run so far: what should have compiled
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._pending: tuple[dict, list[_Row | None]] | None = None  # a chunk started, its tokens not handed out
        self._stopping = False
        self.counters = collections.Counter()

    @property
    def max_slots(self) -> int:
        return len(self._rows)

    # -- requests -------------------------------------------------------------------------------------------------

    def check(self, request: Request) -> None:
        """Raises ValueError, naming the field, for a request that cannot run; else returns."""
        if not request.prompt:
            raise ValueError("prompt: empty; a prompt needs at least one token")
        bad = [t for t in request.prompt if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"prompt: token ids {bad[:5]} outside the model's vocabulary [0, {self.vocab_size})")
        if len(request.prompt) >= self.context:
            raise ValueError(
                f"prompt: {len(request.prompt)} tokens leave no room to answer in the context of {self.context}"
            )
        room = self.context - len(request.prompt)
        if not 1 <= request.max_tokens <= room:
            raise ValueError(
                f"max_tokens: {request.max_tokens} must be in [1, {room}]: the context holds {self.context} "
                f"tokens and the prompt takes {len(request.prompt)}"
            )
        if request.n < 1:
            raise ValueError(f"n: must be >= 1, got {request.n}")
        if len(request.stop_tokens) > MAX_STOP_TOKENS:
            raise ValueError(f"stop tokens: at most {MAX_STOP_TOKENS}, got {len(request.stop_tokens)}")
        if request.logprobs is not None and not 0 <= request.logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(f"top_logprobs: must be in [0, {MAX_TOP_LOGPROBS}], got {request.logprobs}")

    def submit(self, request: Request, *, limited: bool = True) -> Request:
        """Queues a request (checked first); raises QueueFull when `limited` and the queue is at its limit."""
        self.check(request)
        if request.seed is None:
            request.seed = int(np.random.default_rng().integers(2**31))
        request.samples = [
            Sample(index=j, stream=TextStream(self.tokenizer, request.prompt, request.stop_strings))
            for j in range(request.n)
        ]
        with self._lock:
            if self._stopping:
                raise EngineStopped("the server is shutting down")
            if limited and self.max_queue is not None and len(self._queue) >= self.max_queue:
                self.counters["rejected_queue_full"] += 1
                raise QueueFull(f"{len(self._queue)} requests are waiting for a slot (the limit)")
            request.id = next(self._ids)
            request.submitted_at = time.perf_counter()
            self._queue.append(request)
            self.counters["requests"] += 1
            self._lock.notify()
        return request

    def run(self, requests: Sequence[Request], progress: Callable[[int], None] | None = None) -> list[Request]:
        """Generates every request in this thread (no queue limit); returns them, finished.

        Args:
          progress: called with the number of requests finished by each chunk, for a progress bar.
        """
        for request in requests:
            self.check(request)
        for request in requests:
            self.submit(request, limited=False)
        pending = list(requests)
        while pending:
            self.step()
            left = [r for r in pending if not r.done.is_set()]
            if progress is not None and len(left) < len(pending):
                progress(len(pending) - len(left))
            pending = left
        return list(requests)

    # -- the background thread (serving) ------------------------------------------------------------------------

    def start(self) -> None:
        """Decodes in a background thread until `stop`."""
        self._thread = threading.Thread(target=self._serve, name="alignjax-engine", daemon=True)
        self._thread.start()

    def stop(self, deadline_s: float = 30.0) -> None:
        """Admits nothing new; lets running requests finish for up to `deadline_s` seconds, then cancels the rest."""
        with self._lock:
            self._stopping = True
            for request in self._queue:
                request.cancel()
            self._lock.notify()
        if self._thread is None:
            return
        self._thread.join(deadline_s)
        if self._thread.is_alive():
            for row in self._rows:
                if row is not None:
                    row.request.cancel()
            self._thread.join(10.0)

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._busy():
                    if self._stopping:
                        return
                    self._lock.wait()
            try:
                self.step()
            except Exception:  # keep serving: fail the requests in flight, not the server
                log.exception("decoding failed; ending the requests in flight")
                self._fail_all()

    def _busy(self) -> bool:
        return bool(self._queue or any(self._rows))

    # -- one iteration ------------------------------------------------------------------------------------------

    def step(self) -> None:
        """Admits waiting requests into free slots, starts the next chunk of decode steps, and hands out the
        tokens of the chunk before it while this one computes.

        The device runs one chunk ahead of the host: it ends rows at stop tokens and budgets by itself, so the
        next chunk needs nothing from the last one's tokens. What the host learns late costs a chunk: a row ended
        by a stop string or a cancel decodes one more chunk (its tokens dropped), and its slot is refilled a
        chunk later.
        """
        self._admit()
        chunk = None
        if self._decoding_after_pending():
            rows = list(self._rows)
            last_live = max(s for s, row in enumerate(rows) if row is not None)
            # a live row writes at cache slots below prompt + tokens seen + the steps of the chunks not yet seen
            unseen = self.decode_steps * (1 + (self._pending is not None))
            reach = max(len(row.request.prompt) + len(row.sample.token_ids) for row in rows if row) + unseen
            want_top = any(row.request.logprobs for row in rows if row)
            chunk = (self._decode(self._active(last_live + 1), self.window(reach), want_top), rows)
            self.counters["decode_calls"] += 1
        if self._pending is not None:
            self._hand_out(*self._pending)
        self._pending = chunk

    def _decoding_after_pending(self) -> bool:
        """Whether a row may still be decoding once the pending chunk is done: one that has not used its budget
        by then (a chunk started for rows that the pending chunk ends would be wasted)."""
        unseen = self.decode_steps if self._pending is not None else 0
        return any(row and len(row.sample.token_ids) + unseen < row.request.max_tokens for row in self._rows)

    def _hand_out(self, out: dict[str, jax.Array], rows: list[_Row | None]) -> None:
        """A chunk's tokens to the rows that were in the slots when it started (those still going)."""
        out = jax.device_get(out)
        now = time.perf_counter()
        for s, row in enumerate(rows):
            if row is not None and row.sample.finish_reason is None:
                self._take(s, row, out, now)

    def _decode(self, active: int, window: int, want_top: bool) -> dict[str, jax.Array]:
        """Starts one chunk of decode steps (the slots in `_release` end first); returns its outputs, on device."""
        self._compiled("decode_steps", active, window)
        self._slots, out = slot_programs.decode_steps(
            self.graphdef,
            self.params,
            self._slots,
            self._release,
            np.bool_(want_top),
            steps=self.decode_steps,
            active=active,
            window=window,
            pad_id=self.pad_id,
            mesh=self.mesh,
        )
        self._release = np.zeros(self.max_slots, bool)
        return out

    def _active(self, rows: int) -> int:
        """The slots a decode call computes when the last live row is row `rows` - 1: a power of two (at least
        the data-parallel size, so every device holds rows), at most S."""
        return min(self.max_slots, max(_power_of_two(rows), self._data_parallel))

    def _take(self, s: int, row: _Row, out: dict, now: float) -> None:
        """Row `s`'s tokens of the chunk: appended, checked for stop strings, the row ended if it is done."""
        request, sample = row.request, row.sample
        fresh = 0
        for k in range(self.decode_steps):
            if not out["emitted_KS"][k, s] or sample.finish_reason is not None:
                break
            token = int(out["tokens_KS"][k, s])
            sample.token_ids.append(token)
            sample.logprobs.append(float(out["logprobs_KS"][k, s]))
            if request.logprobs:
                ids, values = out["top_ids_KSW"][k, s], out["top_logprobs_KSW"][k, s]
                sample.top_logprobs.append([(int(i), float(v)) for i, v in zip(ids[: request.logprobs], values)])
            elif request.logprobs == 0:
                sample.top_logprobs.append([])
            fresh += 1
            if out["stopped_KS"][k, s]:
                sample.finish_reason = "stop"
            elif sample.stream.add(token):
                sample.finish_reason = "stop"
            elif len(sample.token_ids) >= request.max_tokens:
                sample.finish_reason = "length"
        self.counters["tokens"] += fresh
        if sample.finish_reason is None and request.cancelled:
            sample.finish_reason = "cancelled"
        if sample.finish_reason is not None:
            self._end(s, row, now)
        elif fresh and request.on_update is not None:
            request.on_update(request, sample.index)

    def _end(self, s: int, row: _Row, now: float) -> None:
        request, sample = row.request, row.sample
        self._rows[s] = None
        self._release[s] = True  # a row ended on the host (stop string, cancel) is still live on device
        self.counters["samples_finished"] += 1
        self.counters["cancelled"] += sample.finish_reason == "cancelled"
        if request.finished:
            request.done.set()
            log.info(
                "request %d done: %d prompt + %d completion tokens in %.2f s (%s)",
                request.id,
                len(request.prompt),
                sum(len(x.token_ids) for x in request.samples),
                now - request.submitted_at,
                ", ".join(x.finish_reason for x in request.samples),
            )
        if request.on_update is not None:
            request.on_update(request, sample.index)

    def _admit(self) -> None:
        """Fills free slots with waiting samples, first come first served; up to `max_prefill` prompts are
        prefilled together, each once for the samples admitted with it (a request whose n samples do not all fit
        starts those that do, and its prompt is prefilled again for the rest)."""
        free = [s for s, row in enumerate(self._rows) if row is None]  # the lowest first: live rows stay packed
        group: list[tuple[Request, int, int]] = []  # (request, its first sample admitted now, how many)
        left = len(free)
        with self._lock:
            while self._queue and len(group) < self.max_prefill and left:
                request = self._queue[0]
                if request.cancelled:
                    self._queue.popleft()
                    self._cancel_waiting_samples(request, request.admitted)
                    continue
                count = min(request.n - request.admitted, left)
                group.append((request, request.admitted, count))
                request.admitted += count
                left -= count
                if request.admitted < request.n:
                    break
                self._queue.popleft()
        if group:
            self._start(group, free)

    def _cancel_waiting_samples(self, request: Request, first: int) -> None:
        """Ends the samples from `first` on of a request cancelled before they reached a slot."""
        for sample in request.samples[first:]:
            sample.finish_reason = "cancelled"
            self.counters["cancelled"] += 1
        if request.finished:
            request.done.set()
        if request.on_update is not None:
            for sample in request.samples[first:]:
                request.on_update(request, sample.index)

    def _start(self, group: list[tuple[Request, int, int]], free: list[int]) -> None:
        """Prefills the group's prompts in one call and starts their samples in free slots."""
        B = _power_of_two(len(group))
        P = self.bucket(max(len(r.prompt) for r, _, _ in group))
        tokens_BP = np.full((B, P), self.pad_id, np.int32)
        real_BP = np.zeros((B, P), bool)
        real_BP[len(group) :, 0] = True  # filler rows: one real (pad) token
        for b, (request, _, _) in enumerate(group):
            tokens_BP[b, : len(request.prompt)] = request.prompt
            real_BP[b, : len(request.prompt)] = True
        starts = [(b, r, j) for b, (r, first, count) in enumerate(group) for j in range(first, first + count)]
        taken = {(b, j): free[i] for i, (b, _, j) in enumerate(starts)}  # (prompt row, sample) -> its slot
        others_decoding = sum(row is not None for row in self._rows)
        self._admit_rows(tokens_BP, real_BP, starts, list(taken.values()))
        for (b, j), s in taken.items():
            request = group[b][0]
            self._rows[s] = _Row(request, request.samples[j])
            self._release[s] = False
            if s in self._used_slots and others_decoding:  # continuous batching: a freed slot refilled mid-decode
                self.counters["reused_while_decoding"] += 1
            self._used_slots.add(s)
        self.counters["admitted"] += len(taken)
        self.counters["prefills"] += 1
        log.debug("slots %s <- requests %s (%d other rows decoding)", sorted(taken.values()),
                  [r.id for r, _, _ in group], others_decoding)

    def _admit_rows(self, tokens_BP: np.ndarray, real_BP: np.ndarray, starts: list, slots: list[int]) -> None:
        """Prefills the prompts and starts sample j of prompt row b's request in slots[i] for each
        starts[i] = (b, request, j); the row lists are padded to S entries."""
        S = self.max_slots
        pad = [starts[-1] if starts else (0, Request([self.pad_id], max_tokens=1, seed=0), 0)] * (S - len(starts))
        rows = starts + pad
        new = slot_programs.NewRows(
            count=np.int32(len(starts)),
            rows_S=np.array([b for b, _, _ in rows], np.int32),
            slots_S=np.array(slots + [0] * (S - len(slots)), np.int32),
            prompt_lengths_S=np.array([len(r.prompt) for _, r, _ in rows], np.int32),
            budgets_S=np.array([r.max_tokens for _, r, _ in rows], np.int32),
            seeds_S=np.array([r.seed % 2**32 for _, r, _ in rows], np.uint32),
            samples_S=np.array([j for _, _, j in rows], np.uint32),
            sampling=RowSampling.of([r.sampling for _, r, _ in rows]),
            stop_tokens_SM=np.stack([_stop_row(r.stop_tokens) for _, r, _ in rows]),
        )
        self._compiled("admit", *tokens_BP.shape)
        self._slots = slot_programs.admit(self.graphdef, self.params, self._slots, tokens_BP, real_BP, new,
                                          mesh=self.mesh)

    def warm_up(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Compiles every program this engine can run: admission for each prompt batch (powers of two up to
        `max_prefill`) and bucket, decoding for each active slot count and window. Call it with no request in
        flight; it changes no slot.

        Args:
          progress: called with (programs compiled, all programs) after each.
        """
        if self._busy():
            raise RuntimeError("warm_up needs an idle engine: requests are in flight")
        batches = _powers_of_two(1, _power_of_two(self.max_prefill))
        buckets = sorted({self.bucket(n) for n in _powers_of_two(1, self.context - 1)})
        actives = sorted({self._active(n) for n in _powers_of_two(1, self.max_slots)})
        windows = sorted({self.window(n) for n in _powers_of_two(1, self.context)})
        programs = [("admit", B, P) for B in batches for P in buckets]
        programs += [("decode_steps", a, w) for a in actives for w in windows]
        for done, (program, *shape) in enumerate(programs, 1):
            if program == "admit":
                B, P = shape
                real_BP = np.zeros((B, P), bool)
                real_BP[:, 0] = True
                self._admit_rows(np.full((B, P), self.pad_id, np.int32), real_BP, [], [])
            else:
                self._decode(*shape, want_top=False)
            if progress is not None:
                progress(done, len(programs))
        jax.block_until_ready(self._slots)

    def window(self, reach: int) -> int:
        """The cache slots a decode call attends over when its rows write below slot `reach`: the next power of
        two from 128, at most the context."""
        return min(self.context, max(_MIN_WINDOW, _power_of_two(reach)))

    def bucket(self, length: int) -> int:
        """The padded length of a prompt: the next power of two from 16, at most the context."""
        return min(self.context, max(_MIN_BUCKET, _power_of_two(length)))

    def _compiled(self, program: str, *shape) -> None:
        self._shapes.add((program, *shape))

    def _fail_all(self) -> None:
        self._pending = None
        for s, row in enumerate(self._rows):
            if row is not None:
                row.request.cancel()
                row.sample.finish_reason = "cancelled"
                self._end(s, row, time.perf_counter())

    def stats(self) -> dict:
        """Counters (requests, prefills, admissions, slots refilled while other rows decoded, decode calls, tokens,
        samples finished and cancelled, queue rejections), the queue and slots now, and compilations."""
        with self._lock:
            waiting = len(self._queue)
        return {
            **{name: self.counters[name] for name in COUNTERS},
            "waiting": waiting,
            "decoding": sum(row is not None for row in self._rows),
            "max_slots": self.max_slots,
            "context": self.context,
            "compilations": dict(slot_programs.TRACES),
            "shapes": {p: sum(shape[0] == p for shape in self._shapes) for p in slot_programs.TRACES},
        }


def _power_of_two(n: int) -> int:
    """The smallest power of two >= n."""
    return 1 << (n - 1).bit_length()


def _powers_of_two(low: int, high: int) -> list[int]:
    """The powers of two in [low, high], and `high` itself."""
    return sorted({1 << k for k in range(high.bit_length()) if low <= 1 << k <= high} | {high})


def _stop_row(stop_tokens) -> np.ndarray:
    row = np.full(MAX_STOP_TOKENS, -1, np.int32)
    row[: len(stop_tokens)] = stop_tokens
    return row
