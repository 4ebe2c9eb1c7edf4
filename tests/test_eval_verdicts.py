"""A judge's free-text reply reads as the verdict a human would read in it, and as None where a human could not."""

import pytest

from alignjax.eval.verdicts import parse_pairwise, parse_score

# (reply, the verdict a human reads in it). None: no verdict can be read, the caller counts it unparsable.
PAIRWISE = [
    # the requested format, and its small variations
    ("Output (a)", "a"),
    ("Output (b)", "b"),
    ("(a)", "a"),
    ("(b)", "b"),
    ("a", "a"),
    ("B", "b"),
    ("Output (A)", "a"),
    ("**Output (b)**", "b"),
    ("Output (b).", "b"),
    ("output (a)", "a"),
    ("\n\n  Output (b)\n", "b"),
    ('"Output (a)"', "a"),
    ("Output b", "b"),
    ("Output 1", "a"),
    ("Output 2", "b"),
    ("the first output", "a"),
    ("The second one.", "b"),
    ("Assistant A", "a"),
    # MT-Bench pairwise brackets, C being a tie
    ("[[A]]", "a"),
    ("[[B]]", "b"),
    ("[[C]]", "tie"),
    ("After comparing both answers, Assistant B follows the instructions better.\n\nFinal verdict: [[B]]", "b"),
    ("[[A]] because it is correct. On second thought [[B]].", None),
    # decision phrases
    ("Output (a) is better", "a"),
    ("The better output is Output (b).", "b"),
    ("I choose (a)", "a"),
    ("Answer: b", "b"),
    ("Verdict: Output (a)", "a"),
    ("### Final answer\n**Output (b)**", "b"),
    ("Output (b) is clearly the better response.", "b"),
    ("I would go with the second output.", "b"),
    ("Output (a) is worse than Output (b) because it ignores the question.", "b"),
    ("I don't think Output (a) is better; it only restates the instruction.", None),
    # verdict first, then a justification that discusses the other output
    ("Output (a). Output (b) misses the point.", "a"),
    ("Output (b)\n\nExplanation: (a) is worse because it answers a different question.", "b"),
    ("(a) - it follows the instruction, while (b) adds unrequested details.", "a"),
    ("Output (b) because Output (a) contains a factual error.", "b"),
    ("Output (a). Output (b) is better.", None),
    # reasoning that weighs both and ends in its decision
    (
        "Output (a) is concise but wrong. Output (b) answers the question correctly. Therefore, Output (b) is better.",
        "b",
    ),
    (
        "Let me compare the two outputs. The instruction asks for a haiku about autumn.\n"
        "Output (a) writes three lines, but the syllable count is 5-8-5.\n"
        "Output (b) keeps 5-7-5 and mentions falling leaves.\n"
        "Output (a) is better at imagery, yet it breaks the requested form.\n"
        "Overall, the better output is Output (b).",
        "b",
    ),
    ("Both outputs address the question, but only Output (a) gets the date right. So, Output (a).", "a"),
    ("At first glance Output (a) is better, but on closer reading Output (b) is better: (a) misreads the task.", "b"),
    ("- Output (a): lists three causes.\n- Output (b): lists two causes.\n\nThe best response is Output (a).", "a"),
    # ties
    ("Both are good", "tie"),
    ("Neither output is good", "tie"),
    ("They are equally good", "tie"),
    ("Output (a) and Output (b) are both fine", "tie"),
    ("Tie.", "tie"),
    ("It's a tie: both answers are correct and equally concise.", "tie"),
    # nothing to read
    ("Sorry, I can't help with that", None),
    ("I cannot determine which output is better without more context.", None),
    ("Output (a) or Output (b)?", None),
    ("", None),
    ("   \n", None),
    ("It depends on context", None),
    ("Output (a)\nOutput (b)", None),
    ("Output (a) is wrong.", None),
    ("Output (a) has more detail while Output (b) is more concise.", None),
    ("Select the Output (a) or Output (b) that is better for the given instruction.", None),
]


@pytest.mark.parametrize(("reply", "expected"), PAIRWISE)
def test_pairwise_reply_reads_as_a_human_reads_it(reply, expected):
    assert parse_pairwise(reply) == expected


def test_unparsable_replies_are_counted_not_guessed():
    replies = [reply for reply, _ in PAIRWISE]
    expected_none = sum(expected is None for _, expected in PAIRWISE)
    assert expected_none >= 10
    assert sum(parse_pairwise(r) is None for r in replies) == expected_none
    verdicts = [parse_pairwise(r) for r in replies]
    assert {v for v in verdicts if v is not None} == {"a", "b", "tie"}  # plain strings, JSON-ready


SCORES = [
    ("Rating: [[7]]", 7.0),
    ("The answer is accurate and well organized.\n\nRating: [[8.5]]", 8.5),
    ("[[8.5]]", 8.5),
    ("Score: 6/10", 6.0),
    ("I would rate this 9 out of 10.", 9.0),
    ("7", 7.0),
    ("**Rating: 4**", 4.0),
    ("Rating: [[7]]\n\nRating: [[7]]", 7.0),  # repeated identically
    ("Helpfulness 4/5, accuracy 3/5. Overall rating: 7", 7.0),  # sub-scores on another scale are not the rating
    ("It lists 3 mistakes. Rating: 8 at first, but Rating: [[6]]", 6.0),  # the [[x]] format wins
    ("Rating: 7. On reflection, Rating: 5.", None),  # two different ratings: ambiguous
    ("Rating: [[7]] ... Rating: [[5]]", None),
    ("Rating: [[11]]", None),  # out of range
    ("Rating: [[0]]", None),
    ("Score: 4/5", None),  # another scale, not 4 on 1-10
    ("The response is helpful and accurate.", None),
    ("", None),
]


@pytest.mark.parametrize(("reply", "expected"), SCORES)
def test_score_reply_reads_as_a_human_reads_it(reply, expected):
    assert parse_score(reply) == expected


def test_score_range_is_the_callers():
    assert parse_score("Rating: [[4]]", low=1, high=5) == 4.0
    assert parse_score("Score: 4/5", low=1, high=5) == 4.0
    assert parse_score("Rating: [[7]]", low=1, high=5) is None
