"""One sample's text as its tokens arrive: decoded in context, cut at a stop string, released only when safe.

A server streams text while it is generated, and OpenAI's `stop` strings end a sample at text level: the answer
ends just before the first stop string, which may span several tokens. So the text is re-decoded as tokens
arrive (after the prompt's last few tokens, as `continuation_text` explains), and a piece is released to the
client only once no stop string can still begin inside it and it does not end in half a character.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignjax.sampling.generate import continuation_text

# Prompt tokens decoded before the answer: enough for the tokenizer's treatment of a word's first piece.
_CONTEXT_TOKENS = 8


class TextStream:
    """The text of one sample.

    Args:
      tokenizer: a transformers tokenizer.
      prompt: the prompt's token ids.
      stop_strings: the answer ends before the first of these; empty for none.
    """

    def __init__(self, tokenizer, prompt: Sequence[int], stop_strings: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.context = list(prompt[-_CONTEXT_TOKENS:])
        self.stop_strings = [s for s in stop_strings if s]
        self.tokens: list[int] = []
        self.stopped = False  # a stop string was found: `text` ends before it
        self._text = ""
        self._decoded = 0  # tokens behind `_text`
        self._released = 0  # characters of `text` handed out by `release`

    @property
    def text(self) -> str:
        if self._decoded < len(self.tokens):
            self._text = continuation_text(self.tokenizer, self.context, self.tokens)
            self._decoded = len(self.tokens)
        return self._text

    def add(self, token: int) -> bool:
        """Appends a token (not the stop token); True when the text now holds a stop string (the sample is done)."""
        self.tokens.append(token)
        if not self.stop_strings:
            return False
        text = self.text
        # a stop string that ends in this token starts at most its length before the end
        window = max(len(s) for s in self.stop_strings) + 16
        search_from = max(0, len(text) - window)
        found = [i for i in (text.find(s, search_from) for s in self.stop_strings) if i >= 0]
        if found:
            self._text = text[: min(found)]
            self.stopped = True
        return self.stopped

    def release(self, final: bool = False) -> str:
        """The text not handed out before that is safe to show now (all of it when `final`)."""
        text = self.text
        end = len(text)
        if not final:
            if text.endswith("\ufffd"):  # the rest of a multi-byte character is still to come
                end = len(text.rstrip("\ufffd"))
            for stop in self.stop_strings:  # a stop string may be starting at the end
                for n in range(min(len(stop) - 1, end), 0, -1):
                    if text[:end].endswith(stop[:n]):
                        end -= n
                        break
        end = max(end, self._released)
        piece = text[self._released : end]
        self._released = end
        return piece
