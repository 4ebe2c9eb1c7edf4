"""What a teacher or judge is asked (`ChatRequest`) and what it answers (`Completion`), whatever the backend.

A request is frozen and has one canonical JSON form, so that the same question asked again (by a rerun of a killed
pipeline, or by another stage) has the same cache key, however its fields were written (`temperature=0` and
`0.0`, a list or a tuple of stop strings). Only fields that change the answer are in it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

ROLES = ("system", "developer", "user", "assistant")


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """A chat conversation to answer, and how to sample the answer.

    Two requests with equal fields are the same question: they get one answer (one cache row). For independent
    draws of one conversation, vary `seed` (or ask for `n` samples).

    Attributes:
      messages: the conversation, `{"role", "content"}` dicts (roles: system, developer, user, assistant).
      max_tokens: the budget of each sample.
      temperature: 0 for greedy decoding.
      top_p: nucleus sampling's mass (1.0: off).
      top_k: keep the k most likely tokens (0: off); an extension that only some endpoints accept.
      min_p: keep tokens at least min_p times as likely as the most likely one (0.0: off); same caveat.
      n: samples of the conversation.
      seed: the sampling seed; None lets the backend choose (then a rerun without the cache answers differently).
      stop: texts that end a sample (the text ends before them).
    """

    messages: Sequence[Mapping[str, str]]
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    n: int = 1
    seed: int | None = None
    stop: Sequence[str] = ()

    def __post_init__(self):
        if isinstance(self.messages, Mapping) or not self.messages:
            raise ValueError(f"messages: expected a non-empty list of role/content dicts, got {self.messages!r}")
        messages = []
        for i, message in enumerate(self.messages):
            if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                raise ValueError(f"messages[{i}]: expected a dict with exactly 'role' and 'content', got {message!r}")
            if message["role"] not in ROLES:
                raise ValueError(f"messages[{i}].role: {message['role']!r} is not one of {', '.join(ROLES)}")
            if not isinstance(message["content"], str):
                raise ValueError(f"messages[{i}].content: expected a string, got {type(message['content']).__name__}")
            messages.append({"role": message["role"], "content": message["content"]})
        if isinstance(self.stop, str):
            raise ValueError(f"stop: expected a list of strings, got the string {self.stop!r}; write [{self.stop!r}]")
        for field, ok, valid in (
            ("max_tokens", self.max_tokens >= 1, ">= 1"),
            ("temperature", self.temperature >= 0, ">= 0 (0: greedy)"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("top_k", self.top_k >= 0, ">= 0 (0: off)"),
            ("min_p", 0 <= self.min_p <= 1, "in [0, 1]"),
            ("n", self.n >= 1, ">= 1"),
        ):
            if not ok:
                raise ValueError(f"{field}: must be {valid}, got {getattr(self, field)!r}")
        # normalised, so that equal questions have equal canonical forms
        normal = {
            "messages": tuple(messages),
            "stop": tuple(str(s) for s in self.stop),
            **{name: float(getattr(self, name)) for name in ("temperature", "top_p", "min_p")},
            **{name: int(getattr(self, name)) for name in ("max_tokens", "top_k", "n")},
            "seed": None if self.seed is None else int(self.seed),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def canonical(self) -> str:
        """The request as JSON with sorted keys and no spaces: equal requests give equal strings."""
        return json.dumps(
            {**dataclasses.asdict(self), "messages": [dict(m) for m in self.messages], "stop": list(self.stop)},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def __hash__(self) -> int:  # the messages are dicts, which the generated hash cannot take
        return hash(self.canonical())

    def describe(self, width: int = 60) -> str:
        """The last message's start, to say in an error which request failed."""
        text = " ".join(self.messages[-1]["content"].split())
        return repr(text if len(text) <= width else text[: width - 3] + "...")


@dataclasses.dataclass(frozen=True)
class Completion:
    """The answer to one `ChatRequest`.

    Attributes:
      texts: one text per sample (n of them); `text` is the first.
      finish_reasons: per sample, "stop" (a stop token or string) or "length" (the budget), or what the endpoint
        said.
      prompt_tokens: the prompt's tokens, counted once for all samples (as the endpoint reports them).
      completion_tokens: tokens generated over all samples.
      cached: True when the answer came from the cache rather than from the model in this call.
    """

    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0]

    def to_json(self) -> str:
        """The answer for the cache (without `cached`, which says where a copy came from)."""
        fields = dataclasses.asdict(self)
        del fields["cached"]
        return json.dumps(fields, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, cached: bool) -> Completion:
        fields = json.loads(text)
        return cls(
            texts=tuple(fields["texts"]),
            finish_reasons=tuple(fields["finish_reasons"]),
            prompt_tokens=fields["prompt_tokens"],
            completion_tokens=fields["completion_tokens"],
            cached=cached,
        )
