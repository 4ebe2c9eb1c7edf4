"""The example formats that data are built in, and turning validated preference rows into them.

`data.format` says what the objective trains on (every loss registered in `alignjax.losses` names one of
`FORMATS` as its `format`; the data package owns the table, and the losses layer does not import it):

- "sft": one conversation per example, batches [B, L] (`schemas.sft_messages`);
- "pairs": a chosen and a rejected response to one prompt, batches [B, 2, L];
- "ranked": a prompt with K scored responses, batches [B, K, L];
- "unpaired": one response with a desirable/undesirable label (KTO), batches [B, 2, L] (with a KL completion);
- "conditional": conditional-token SFT: each response of a pair as an SFT example after the control tag of its
  label, batches [B, L].

Rows and formats need not match: a ranked list trains a pairwise loss once binarised, a pair is a ranked list of
two, and a pair gives KTO two unpaired examples (chosen desirable, rejected undesirable); `to_format` converts
each validated preference row into what the format needs. Conditional-token SFT trains on unpaired examples too:
each response on its own, after the control tag of its label (desirable: `data.control_good`), so a pair gives
one example under each tag.

Binarising a ranked list (`data.binarize`, one of `BINARIZE`):
- "best_vs_random": the best response against one drawn at random from those scored lower (Zephyr's recipe for
  UltraFeedback);
- "best_vs_worst": the best against the worst;
- "all_pairs": every two responses with different scores, the better one chosen.
Ties go to the earlier response. The random draw is seeded per row, by the seed and the row's origin (its file
and line), so it does not depend on which other rows were skipped or held out.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np

from alignjax.data.errors import DataError
from alignjax.data.schemas import PreferenceExample

FORMATS = ("sft", "pairs", "ranked", "unpaired", "conditional")
PREFERENCE_FORMATS = ("pairs", "ranked", "unpaired", "conditional")  # built from preference rows
BINARIZE = ("best_vs_random", "best_vs_worst", "all_pairs")
_UNPAIRED = ("unpaired", "conditional")  # formats of one response per example, with a label
_BINARIZE_STREAM = 2  # seeds binarisation apart from the held-out choice and the epoch shuffles


def binarize(example: PreferenceExample, mode: str, rng: np.random.Generator | None) -> list[PreferenceExample]:
    """The (chosen, rejected) pairs that `mode` draws from a ranked list (see the module docstring).

    Args:
        example: a ranked (or pairwise) example; its scores are not all equal.
        mode: one of BINARIZE.
        rng: draws the rejected response of "best_vs_random" (unused by the other modes).

    Returns:
        Pairs with scores [1, 0], chosen first; one pair, or for "all_pairs" one per differently scored two.
    """
    scores = np.asarray(example.scores)
    if mode == "all_pairs":
        pairs = [(i, j) if scores[i] > scores[j] else (j, i) for i, j in itertools.combinations(range(len(scores)), 2)]
        pairs = [(i, j) for i, j in pairs if scores[i] != scores[j]]
    else:
        best = int(np.argmax(scores))
        if mode == "best_vs_worst":
            rejected = int(np.argmin(scores))
        elif mode == "best_vs_random":
            rejected = int(rng.choice(np.flatnonzero(scores < scores[best])))
        else:
            raise DataError(f"data.binarize={mode!r} is not a binarisation; expected one of {list(BINARIZE)}")
        pairs = [(best, rejected)]
    responses = example.responses
    return [PreferenceExample(example.prompt, (responses[i], responses[j]), (1.0, 0.0)) for i, j in pairs]


def to_format(
    examples: list[tuple[str, PreferenceExample]], format: str, binarize_mode: str, seed: int
) -> list[tuple[str, PreferenceExample]]:
    """Converts a split's validated rows into the examples of `format`, keeping each one's origin.

    Args:
        examples: (where, example) per validated row, in the split's order.
        format: one of PREFERENCE_FORMATS.
        binarize_mode: how "pairs", "unpaired" and "conditional" binarise ranked lists (one of BINARIZE).
        seed: with the row's origin, seeds the random choice of "best_vs_random".

    Returns:
        (where, example): pairs for "pairs", ranked lists for "ranked" (pairs are lists of two), unpaired
        examples for "unpaired" and "conditional" (two per pair).

    Raises:
        DataError: for an unpaired row when the format needs pairs or lists, which cannot be made from it.
    """
    if format not in PREFERENCE_FORMATS:
        raise DataError(f"data.format={format!r} is not a preference format; expected one of {PREFERENCE_FORMATS}")
    converted = []
    for where, example in examples:
        if example.label is not None:
            if format not in _UNPAIRED:
                raise DataError(
                    f"{where}: an unpaired row (prompt, completion, label) cannot make the {format} examples that "
                    f"data.format={format!r} needs; use data.format='unpaired' or pairwise/ranked data"
                )
            converted.append((where, example))
            continue
        if format == "ranked":
            converted.append((where, example))
            continue
        if len(example.responses) == 2:  # every mode picks the same pair; no draw needed
            pairs = binarize(example, "best_vs_worst", None)
        else:
            rng = np.random.default_rng([seed, _BINARIZE_STREAM, zlib.crc32(where.encode())])
            pairs = binarize(example, binarize_mode, rng)
        for pair in pairs:
            if format in _UNPAIRED:
                converted.extend((where, _unpaired(pair, k)) for k in range(2))
            else:
                converted.append((where, pair))
    return converted


def _unpaired(pair: PreferenceExample, k: int) -> PreferenceExample:
    """Response k of a pair as an unpaired example: the chosen one (k=0) is desirable, the rejected one is not."""
    desirable = pair.scores[k] == max(pair.scores)
    return PreferenceExample(pair.prompt, (pair.responses[k],), (float(desirable),), desirable)
