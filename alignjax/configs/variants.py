"""The one parser of an experiment file's variant: the text after the colon in `--config experiments/x.py:VARIANT`.

A variant is a comma-separated list of words: at most one method (a name from the experiment's table, e.g. a
loss or an RL algorithm) and the flag `smoke` (a tiny, seconds-long run for tests). `preference_toy.py:ipo,smoke`
is IPO's smoke run; an empty variant is the experiment's default method at full size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from alignjax.config_errors import require

SMOKE = "smoke"


@dataclasses.dataclass(frozen=True)
class Variant:
    """method: the chosen method's name (the default when none is given); smoke: a tiny run for tests."""

    method: str
    smoke: bool


def parse_variant(arg: str | None, methods: Sequence[str] = (), default: str = "") -> Variant:
    """Parses `arg` (None or "" for the default) into a `Variant`.

    Args:
      arg: the variant text, e.g. "ipo,smoke", "smoke", "" or None.
      methods: the method names the experiment offers; empty if it offers none.
      default: the method when `arg` names none.

    Raises:
      ConfigError: naming the unknown word and what the experiment accepts.
    """
    words = [word.strip() for word in (arg or "").split(",") if word.strip()]
    chosen = [word for word in words if word != SMOKE]
    accepted = f"{SMOKE!r}" + (f" and at most one of {sorted(methods)}" if methods else "")
    require(
        len(chosen) <= (1 if methods else 0) and all(word in methods for word in chosen),
        f"unknown variant {arg!r}: expected a comma-separated list of {accepted}",
    )
    return Variant(method=chosen[0] if chosen else default, smoke=SMOKE in words)
