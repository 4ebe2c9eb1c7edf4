"""The two evaluation runs: systems compared by judges (`kind="eval"`) and judges compared with labels
(`kind="meta_eval"`), each writing `report.json`, `report.md` and plots to its workdir.

An evaluation answers the prompt set with every system (answers saved, generation cached), then for every judge
and every system other than the baseline: per-prompt verdicts against the baseline's answer (saved to
`judgements/<judge>/<system>.jsonl`), the win rate with ties counting half and its bootstrap interval, the
length-controlled win rate, unparsable replies counted; for judges that score answers, each system's mean score
and the Spearman correlation of score with answer length; a Bradley-Terry ranking when there are three or more
systems; and how often each two judges agree. Lengths are in characters, as AlpacaEval counts them, so systems
with different tokenizers compare.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax.eval import judge_prompts, report, stats
from alignjax.eval.judges import Judge, PairVerdict, make_judge
from alignjax.eval.labelled import load_labelled
from alignjax.eval.meta import length_rows, meta_evaluate, score_length_correlation, summarize
from alignjax.eval.prompt_sets import EvalPrompt, load_prompts
from alignjax.eval.systems import answer_prompts


def _interval(section: ConfigDict) -> dict:
    return dict(resamples=section.resamples, confidence=section.confidence, seed=section.seed)


def save_verdicts(path: str, prompts: list[EvalPrompt], verdicts: list[PairVerdict], xs, ys) -> None:
    """One JSON line per prompt: the answers compared, both orders' verdicts and the judge's evidence."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for p, v, x, y in zip(prompts, verdicts, xs, ys):
            row = {"prompt": p.messages, "x": x, "y": y, "first": v.first, "second": v.second, "outcome": v.outcome}
            f.write(json.dumps({**row, "evidence": list(v.evidence)}, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)


def _judge_systems(judge: Judge, name: str, section, prompts, answers, lengths, workdir) -> dict:
    """One judge's results (per system against the baseline, scores, a ranking), and per system its outcomes
    against the baseline and its answers' scores (scoring judges)."""
    interval, baseline = _interval(section), section.baseline
    result: dict = {"kind": judge.kind, "systems": {}}
    comparisons = []
    outcomes_by_system = {}
    for system, xs in answers.items():
        if system == baseline:
            continue
        verdicts = judge.compare(prompts, xs, answers[baseline])
        save_verdicts(
            os.path.join(workdir, "judgements", name, f"{system}.jsonl"), prompts, verdicts, xs, answers[baseline]
        )
        outcomes = np.asarray([np.nan if v.outcome is None else v.outcome for v in verdicts])
        parsed = ~np.isnan(outcomes)
        outcomes_by_system[system] = outcomes
        entry = {
            "unparsable": int((~parsed).sum()),
            "positional_agreement": float(np.mean([v.agrees for v in verdicts])),
        }
        if parsed.any():
            entry["win_rate"] = stats.win_rate(outcomes[parsed], **interval).as_dict()
            entry["length_controlled"] = stats.length_controlled_win_rate(
                outcomes[parsed], lengths[system][parsed], lengths[baseline][parsed], **interval
            ).as_dict()
            comparisons += [(system, baseline, o) for o in outcomes[parsed]]
        result["systems"][system] = entry
    scores_by_system = {}
    if judge.scores_answers:
        result["scores"], result["score_length_spearman"] = {}, {}
        for system, xs in answers.items():
            scores = scores_by_system[system] = judge.scores(prompts, xs)
            result["scores"][system] = stats.mean_ci(scores[~np.isnan(scores)], **interval).as_dict()
            rho = score_length_correlation(scores, lengths[system], **interval)
            if rho is not None:
                result["score_length_spearman"][system] = rho
    if len(answers) >= 3 and comparisons:
        ranking = stats.bradley_terry(
            comparisons, systems=[baseline] + [s for s in answers if s != baseline], **interval
        )
        result["ranking"] = [r.as_dict() for r in ranking]
    return result, outcomes_by_system, scores_by_system


def run_eval(config: ConfigDict) -> dict[str, float]:
    """Evaluates the systems of `config.eval` with its judges; writes the report; returns the headline numbers
    (`<judge>/<system>/win_rate`, `.../lc_win_rate`)."""
    section, workdir = config.eval, config.train.workdir
    prompts = load_prompts(section.prompts)
    tqdm.write(f"eval: {len(prompts)} prompts from {section.prompts.path}, {len(section.systems)} systems")
    answers = {name: answer_prompts(name, spec, prompts, workdir) for name, spec in section.systems.items()}
    lengths = {name: np.asarray([len(a) for a in texts], np.float64) for name, texts in answers.items()}
    results = {
        "kind": "eval",
        "prompts": {"path": section.prompts.path, "split": section.prompts.split, "count": len(prompts)},
        "baseline": section.baseline,
        "systems": {name: _system_entry(spec, lengths[name]) for name, spec in section.systems.items()},
        "judges": {},
    }
    outcomes, scores = {}, {}
    for name, spec in section.judges.items():
        judge = make_judge(name, spec, workdir)
        try:
            judged = _judge_systems(judge, name, section, prompts, answers, lengths, workdir)
        finally:
            judge.close()
        results["judges"][name], outcomes[name], scores[name] = judged
    results["judge_agreement"] = _agreement(outcomes, _interval(section))
    results["appendix"] = _appendix(section)
    report.write(workdir, results, answers=answers, scores=scores, with_plots=section.plots)
    return {
        f"{judge}/{system}/{what}": entry[key]["rate"]
        for judge, judged in results["judges"].items()
        for system, entry in judged["systems"].items()
        for what, key in (("win_rate", "win_rate"), ("lc_win_rate", "length_controlled"))
        if key in entry
    }


def _system_entry(spec: ConfigDict, lengths_N: np.ndarray) -> dict:
    source = spec.answers or f"{spec.generation.backend}:{spec.generation.model}"
    return {
        "source": source,
        "prompting": spec.prompting + (f" ({spec.shots} shots)" if spec.prompting == "few_shot" else ""),
        "length_chars": {
            "mean": float(lengths_N.mean()),
            "median": float(np.median(lengths_N)),
            "p10": float(np.percentile(lengths_N, 10)),
            "p90": float(np.percentile(lengths_N, 90)),
        },
    }


def _agreement(outcomes: dict[str, dict[str, np.ndarray]], interval: dict) -> dict:
    """Per two judges and system: the share of prompts (parsed by both) on which their outcomes are equal, and
    the share of those on which both prefer one answer (no tie from either) where they prefer the same one; a
    rule ties whenever both answers are equally right, which a real-valued reward model almost never does."""
    agreement = {}
    for (a, by_a), (b, by_b) in itertools.combinations(outcomes.items(), 2):
        for system in by_a.keys() & by_b.keys():
            x, y = by_a[system], by_b[system]
            both = ~np.isnan(x) & ~np.isnan(y)
            decisive = both & (x != 0.5) & (y != 0.5)
            entry = {}
            if both.any():
                entry["same_outcome"] = stats.mean_ci((x[both] == y[both]).astype(np.float64), **interval).as_dict()
            if decisive.any():
                same = (x[decisive] == y[decisive]).astype(np.float64)
                entry["same_preference"] = stats.mean_ci(same, **interval).as_dict()
            if entry:
                agreement[f"{a} vs {b}/{system}"] = entry
    return agreement


def _appendix(section: ConfigDict) -> dict[str, str]:
    """The prompts the LLM judges were sent, with placeholders."""
    names = set()
    for spec in section.judges.values():
        if spec.kind == "pairwise":
            names |= {
                f"pairwise/{spec.strategy}",
                *(f"auxiliary/{a}" for a in judge_prompts.AUXILIARIES[spec.strategy]),
            }
        elif spec.kind == "single":
            names.add("single/reference" if spec.reference else "single")
    texts = judge_prompts.appendix()
    return {name: texts[name] for name in sorted(names)}


def run_meta_eval(config: ConfigDict) -> dict[str, float]:
    """Asks each judge of `config.eval` about the labelled pairs; writes the report; returns each judge's
    accuracy and positional agreement over all pairs."""
    section, workdir = config.eval, config.train.workdir
    skip_bad = section.on_bad_row == "skip"
    pairs, skipped = load_labelled(section.labelled, section.labelled_format, section.max_pairs, skip_bad)
    tqdm.write(f"meta_eval: {len(pairs)} labelled pairs from {section.labelled}, {len(section.judges)} judges")
    for error in skipped[:3]:
        tqdm.write(f"  skipped {error}")
    if len(skipped) > 3:
        tqdm.write(f"  ... {len(skipped)} bad rows skipped in all")
    interval = _interval(section)
    results = {
        "kind": "meta_eval",
        "labelled": {"path": section.labelled, "count": len(pairs), "skipped": skipped},
        "length": summarize(pairs, length_rows(pairs), **interval),
        "judges": {},
    }
    prompts, xs, ys = [p.prompt for p in pairs], [p.output_1 for p in pairs], [p.output_2 for p in pairs]
    for name, spec in section.judges.items():
        judge = make_judge(name, spec, workdir)
        try:
            summary, verdicts = meta_evaluate(judge, pairs, **interval)
        finally:
            judge.close()
        save_verdicts(os.path.join(workdir, "judgements", f"{name}.jsonl"), prompts, verdicts, xs, ys)
        strategy = spec.strategy if spec.kind == "pairwise" else ""
        results["judges"][name] = {"kind": spec.kind, "strategy": strategy, "splits": summary}
    results["appendix"] = _appendix(section)
    report.write(workdir, results, with_plots=section.plots)
    return {
        f"{name}/{measure}": judged["splits"]["all"][measure]["value"]
        for name, judged in results["judges"].items()
        for measure in ("accuracy", "positional_agreement")
    }
