"""Reading an LLM judge's free-text reply as a verdict: which output won, or what score it gave.

Judges are asked for "Output (a)" / "Output (b)" (LLMBar-style pairwise), "[[A]]" / "[[B]]" / "[[C]]" (MT-Bench
pairwise, C a tie) or "Rating: [[7]]" (MT-Bench single grading), but real models answer in many ways. These
parsers accept the ways a human reader would read one and only one way, and NEVER guess: a reply that cannot be
read returns None, which the caller counts as unparsable (a guess would bias the win rate it is averaged into).

`parse_pairwise(reply)` -> "a", "b", "tie" or None. After lowercasing and dropping markdown (bold, headings,
bullets, backticks), the rules, in order:

1. `[[a]]` / `[[b]]` / `[[c]]` are the explicit verdict format and win over any prose. Two different ones
   contradict each other: None.
2. A reply that is just "tie" / "both" / "neither" is a tie.
3. A reply that opens with a label as its own sentence ("Output (b).", "(a)\n...", "B", "Output 1 because ...")
   answered in the requested format; the rest is its justification, which may freely discuss the other output
   ("Output (a). Output (b) misses the point." -> a). If the justification then explicitly decides for the other
   label the reply contradicts itself: None. A second bare label right after ("Output (a)\nOutput (b)") is an
   echo of the choices, not a verdict.
4. Otherwise explicit decision phrases are collected: "the better output is (b)", "(a) is better", "(b) wins",
   "I choose (a)", "verdict: b", "therefore, (b).", "I think (a).", negative ones ("(a) is worse" -> b) and tie
   phrases ("both are good", "neither output is good", "equally good", "a tie"). The LAST one wins: reasoning
   that weighs both outputs ends in its conclusion. A phrase after a negation ("I don't think (a) is better")
   and praise limited to an aspect ("(a) is better at formatting") are not decisions.
5. Anything else is None: empty replies, refusals, "it depends", and replies that only mention the outputs
   ("Output (a) or Output (b)?") without deciding. One label mentioned without a decision phrase is None too:
   "Output (a) is wrong" names (a) yet votes for (b).

Labels are "Output (a)" / "Output a" / "(a)" / "Output 1" / "Response (a)" / "Assistant A" / "the first output" /
"the second one"; a bare letter counts only as the whole answer ("b", "Answer: b.").

`parse_score(reply, low, high)` -> the rating as a float, or None. A `[[x]]` rating wins over prose (all of them
must agree). Otherwise the ratings stated in prose ("Rating: 7", "Score: 6/10", "I would rate this 9 out of 10",
a reply that is only a number) must all agree, else the reply is ambiguous: None. "x/N" or "x out of N" on
another scale than `high` is not a rating on this scale (and "Score: 4/5" alone is None, not 4). A rating
outside [low, high] is None.
"""

import re

PAIRWISE_VERDICTS = ("a", "b", "tie")

# One output's name. The label is captured whole and read by `_side`.
_LABEL = (
    r"(?:(?:output|response|assistant)\s*\(?\s*[ab12]\s*\)?"  # Output (a), output b, Output 1, Assistant A
    r"|\([ab]\)"  # (a)
    r"|the\s+(?:first|second)(?:\s+(?:output|response|one|answer))?"  # the first output, the second one
    r"|(?:first|second)\s+(?:output|response|one|answer))(?![\w)])"  # first output; whole: not "output (a" of "(a)"
)
_L = rf"(?P<label>{_LABEL})"
_L_OR_BARE = rf"(?P<label>{_LABEL}|[ab](?=\s*(?:$|[.,;:!?)\n])))"  # a bare letter only as the whole answer
_NOT_ECHO = r"(?!\s*,?\s*(?:or|and|vs\.?|versus)\s)"  # "Output (a) or Output (b)" names the choices
_END = r"(?=\s*(?:$|[.!\n]))"  # the label ends its sentence
_ADV = r"(?:(?:clearly|definitely|slightly|much|far|significantly|overall|somewhat|marginally|still)\s+)?"
_NOT_ASPECT = r"(?!\s+(?:at|in|on|with|when|regarding|about|for)\b)"  # "better at formatting" is one aspect
_ADJ = (
    r"(?:good|fine|great|excellent|acceptable|correct|accurate|helpful|valid|reasonable|strong|weak|bad|poor"
    r"|wrong|incorrect|unhelpful|inadequate|equal|similar|comparable|identical|the\s+same)\b"
)

# (pattern, verdict): verdict None means the label's side, "other" the opposite side.
_DECISIONS = [
    # the better output is (b) / best response: (a)
    (
        rf"\b(?:better|best|preferred|preferable|superior|stronger|winning)\s+(?:(?:output|response|answer|one|option"
        rf"|choice)\s+)?(?:here\s+)?(?:is|would\s+be|:)\s*{_ADV}{_L}{_NOT_ECHO}",
        None,
    ),
    # (a) is better / (b) is the better one / (a) wins
    (
        rf"{_L}\s+(?:is\s+{_ADV}(?:the\s+)?(?:better|best|preferred|preferable|superior|winner|stronger)|wins)\b"
        rf"{_NOT_ASPECT}",
        None,
    ),
    # (a) is worse / (b) loses
    (rf"{_L}\s+(?:is\s+{_ADV}(?:the\s+)?(?:worse|inferior|weaker)|loses)\b{_NOT_ASPECT}", "other"),
    # I choose (a) / I'd go with output 2
    (rf"\b(?:choose|chose|pick|select|prefer|go\s+with|vote\s+for)\s+(?:the\s+)?{_L}{_NOT_ECHO}", None),
    # verdict: (b) / final answer is b / winner - tie
    (
        rf"\b(?:verdict|answer|decision|choice|judg(?:e)?ment|selection|winner|conclusion)\s*(?:is|:|-|\n)\s*(?:that\s+)?"
        rf"(?:{_L_OR_BARE}{_NOT_ECHO}|(?P<tie>tie|draw|both|neither)\b)",
        None,
    ),
    # therefore, output (b).
    (
        rf"\b(?:therefore|thus|hence|so|overall|in\s+conclusion|in\s+summary|to\s+conclude|ultimately)\s*,?\s*{_L}{_END}",
        None,
    ),
    # I think (a).
    (rf"\b(?:i\s+think|i\s+believe|i'd\s+say|i\s+would\s+say)\s+(?:it's\s+|it\s+is\s+)?{_L}{_END}", None),
    # ties: both are good / (a) and (b) are both fine / neither output is good / equally good / it's a tie
    (rf"\bboth(?:\s+(?:outputs?|responses?|answers?|of\s+them))?\s+(?:are|were|seem|look)\s+(?:\w+\s+)?{_ADJ}", "tie"),
    (rf"\bare\s+both\s+(?:\w+\s+)?{_ADJ}", "tie"),
    (
        r"\bneither(?:\s+(?:output|response|answer|one)s?|\s+of\s+them)?\s+(?:is|was|are)\s+(?:\w+\s+)?"
        r"(?:better|good|correct|acceptable|preferable|helpful|adequate)\b",
        "tie",
    ),
    (rf"\bequally\s+(?:{_ADJ}|matched|well)", "tie"),
    (r"\b(?:a|is)\s+(?:tie|draw)\b|\bno\s+(?:clear\s+)?(?:winner|preference)\b|\b(?:same|equal)\s+quality\b", "tie"),
]
_DECISIONS = [(re.compile(pattern), verdict) for pattern, verdict in _DECISIONS]
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?$")  # "I don't think (a) is better"
# A label (or bare letter) opening the reply as its own sentence: the answer in the requested format.
_LEADING = re.compile(rf"(?P<label>{_LABEL}|[ab](?!\w))\s*(?:$|[.!\n]|[-–—]\s|,?\s+(?:because|since|as)\b)")
_BRACKETS = re.compile(r"\[\[\s*([abc])\s*\]\]")  # MT-Bench pairwise
_TIE_ONLY = re.compile(r"(?:tie|both|neither|draw)\W*")


def _normalize(reply: str) -> str:
    text = reply.lower().replace("**", "").replace("__", "").replace("`", "")
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    text = re.sub(r"(?m)^[ \t]*(?:#+|>|[-*]\s)[ \t]*", "", text)  # headings, quotes, bullets
    return text.strip(" \t\r\n\"'*")


def _side(label: str) -> str:
    return "a" if re.search(r"\b(?:a|1|first)\b", label) else "b"


def _decisions(text: str) -> list[tuple[int, str]]:
    found = []
    for pattern, verdict in _DECISIONS:
        for m in pattern.finditer(text):
            if _NEGATED.search(text[: m.start()]):
                continue
            if verdict == "tie" or m.groupdict().get("tie"):
                found.append((m.start(), "tie"))
            else:
                side = _side(m.group("label"))
                found.append((m.start(), {"a": "b", "b": "a"}[side] if verdict == "other" else side))
    return sorted(found)


def parse_pairwise(reply: str) -> str | None:
    """ "a", "b" or "tie" as a human would read the judge's reply; None when it cannot be read (module docstring)."""
    text = _normalize(reply or "")
    if not text:
        return None
    brackets = set(_BRACKETS.findall(text))
    if brackets:
        return {"a": "a", "b": "b", "c": "tie"}[brackets.pop()] if len(brackets) == 1 else None
    if _TIE_ONLY.fullmatch(text):
        return "tie"
    decisions = _decisions(text)
    lead = _LEADING.match(text)
    if lead and not re.fullmatch(rf"{_LABEL}\W*", text[lead.end() :].strip()):  # "Output (a)\nOutput (b)": echo
        side = _side(lead.group("label"))
        return None if any(v in ("a", "b") and v != side for _, v in decisions) else side
    return decisions[-1][1] if decisions else None


_NUMBER = r"(\d+(?:\.\d+)?)"
_FRACTION = re.compile(rf"{_NUMBER}\s*(?:/|out\s+of)\s*{_NUMBER}")  # 6/10, 9 out of 10
_SCORE_BRACKETS = re.compile(rf"\[\[\s*{_NUMBER}\s*(?:/\s*\d+(?:\.\d+)?\s*)?\]\]")  # [[7]], [[8.5]], [[7/10]]
_PROSE_SCORES = [
    re.compile(rf"\b(?:rating|score|grade)\b\s*(?:of|is|:|=|-)?\s*(?:is\s*)?:?\s*{_NUMBER}"),  # Rating: 7, score of 8
    re.compile(rf"\brate\b[^.\d\n]{{0,30}}?{_NUMBER}"),  # I would rate this response 9
    re.compile(rf"\bgive\s+(?:it|this(?:\s+\w+)?)\s+(?:an?\s+)?{_NUMBER}"),  # I'd give it an 8
    re.compile(rf"^{_NUMBER}\W*$"),  # the whole reply is the number
]


def parse_score(reply: str, low: float = 1, high: float = 10) -> float | None:
    """The judge's rating in [low, high]; None when there is none, several disagree, or it is out of range."""
    text = (reply or "").lower().replace("*", "").strip()
    values = {float(v) for v in _SCORE_BRACKETS.findall(text)}
    if not values:
        other_scale = set()  # positions of numerators of "x/N" with N != high: not ratings on this scale
        for m in _FRACTION.finditer(text):
            if float(m.group(2)) == high:
                values.add(float(m.group(1)))
            else:
                other_scale.add(m.start(1))
        values |= {float(m.group(1)) for p in _PROSE_SCORES for m in p.finditer(text) if m.start(1) not in other_scale}
    if len(values) != 1:
        return None
    value = values.pop()
    return value if low <= value <= high else None
