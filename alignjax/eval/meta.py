"""Meta-evaluation: how far a judge can be trusted, measured on pairs whose better answer is known.

Per judge, over the pairs and per split, each with a bootstrap interval over pairs:
- accuracy: the share of verdicts that pick the labelled answer, averaged over the two orders (LLMBar's
  "correct_average"; a tie or an unparsable reply counts as wrong in that order);
- positional agreement: the share of pairs whose two orders gave the same verdict (a judge that always answers
  "Output (a)" has 0);
- tie rate: the share of pairs judged a tie (orders that disagree included);
- unparsable rate: the share of replies that could not be read.
Beside them, what length alone says (Singhal et al., 2023, "A Long Way to Go"): how often the labelled answer is
the longer one, and the accuracy of a judge that always picks the longer answer (equal lengths: half right).
"""

from __future__ import annotations

import numpy as np

from alignjax.eval import stats
from alignjax.eval.judges import Judge, PairVerdict
from alignjax.eval.labelled import LabelledPair

ALL = "all"


def judge_rows(pairs: list[LabelledPair], verdicts: list[PairVerdict]) -> dict[str, np.ndarray]:
    """Per pair: accuracy over both orders, agreement, tie, unparsable share of its two replies."""
    gold = ["x" if p.label == 1 else "y" for p in pairs]
    return {
        "accuracy": np.asarray([((v.first == g) + (v.second == g)) / 2 for v, g in zip(verdicts, gold)]),
        "positional_agreement": np.asarray([float(v.agrees) for v in verdicts]),
        "tie_rate": np.asarray([float(v.outcome == 0.5) for v in verdicts]),
        "unparsable_rate": np.asarray([((v.first is None) + (v.second is None)) / 2 for v in verdicts]),
    }


def length_rows(pairs: list[LabelledPair]) -> dict[str, np.ndarray]:
    """Per pair: whether the labelled answer is the longer (characters), and a length-only judge's accuracy."""
    better = [(p.output_1, p.output_2) if p.label == 1 else (p.output_2, p.output_1) for p in pairs]
    longer = np.asarray([float(len(good) > len(bad)) for good, bad in better])
    length_judge = np.asarray(
        [1.0 if len(good) > len(bad) else 0.5 if len(good) == len(bad) else 0.0 for good, bad in better]
    )
    return {"labelled_longer": longer, "length_only_accuracy": length_judge}


def summarize(pairs: list[LabelledPair], rows: dict[str, np.ndarray], **interval) -> dict[str, dict]:
    """Each row measure's mean and interval over all pairs and over each split: {split: {measure: Estimate}}."""
    splits = [ALL] + sorted({p.split for p in pairs}) if len({p.split for p in pairs}) > 1 else [ALL]
    out = {}
    for split in splits:
        keep = np.asarray([split == ALL or p.split == split for p in pairs])
        out[split] = {name: stats.mean_ci(values[keep], **interval).as_dict() for name, values in rows.items()}
    return out


def meta_evaluate(judge: Judge, pairs: list[LabelledPair], **interval) -> tuple[dict, list[PairVerdict]]:
    """The judge's verdicts on `pairs` (output 1 as x) and their summary per split (see the module docstring);
    scoring judges also get the Spearman correlation of their scores with answer length."""
    prompts = [p.prompt for p in pairs]
    firsts, seconds = [p.output_1 for p in pairs], [p.output_2 for p in pairs]
    verdicts = judge.compare(prompts, firsts, seconds)
    summary = summarize(pairs, judge_rows(pairs, verdicts), **interval)
    if judge.scores_answers:
        scores = np.concatenate([judge.scores(prompts, firsts), judge.scores(prompts, seconds)])
        rho = score_length_correlation(scores, [len(a) for a in firsts + seconds], **interval)
        if rho is not None:
            summary[ALL]["score_length_spearman"] = rho
    return summary, verdicts


def score_length_correlation(scores_N: np.ndarray, lengths_N, **interval) -> dict | None:
    """Spearman's rho of scores with answer lengths, over the answers with a score (not NaN), with its interval;
    None where it is undefined (fewer than 3 answers, or every score or length the same)."""
    parsed = ~np.isnan(scores_N)
    scores_N, lengths_N = scores_N[parsed], np.asarray(lengths_N, np.float64)[parsed]
    if len(scores_N) < 3 or np.ptp(scores_N) == 0 or np.ptp(lengths_N) == 0:
        return None
    return stats.spearman(scores_N, lengths_N, **interval).as_dict()
