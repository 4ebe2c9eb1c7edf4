"""Plots of an evaluation's report, saved as PNGs beside it: each with a title, labelled axes and units, readable
without the code."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: runs on headless machines and CI
import matplotlib.pyplot as plt
import numpy as np


def _save(figure, path: str) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def win_rates(path: str, results: dict) -> str:
    """Each judge's win rate (and length-controlled win rate) of each system against the baseline, with its
    interval, the 50% line marking parity."""
    rows = [
        (judge, system, entry)
        for judge, judged in results["judges"].items()
        for system, entry in judged["systems"].items()
        if "win_rate" in entry
    ]
    figure, axes = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.6))
    for y, (_, _, entry) in enumerate(rows):
        for key, offset, color, label in (
            ("win_rate", 0.12, "C0", "win rate"),
            ("length_controlled", -0.12, "C1", "length-controlled"),
        ):
            e = entry[key]
            rate = 100 * e["rate"]
            axes.errorbar(
                rate,
                y + offset,
                xerr=[[rate - 100 * e["low"]], [100 * e["high"] - rate]],
                fmt="o",
                color=color,
                capsize=3,
                label=label if y == 0 else None,
            )
    axes.axvline(50, color="gray", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(rows)), [f"{system}\n({judge})" for judge, system, _ in rows])
    axes.set(
        xlim=(0, 100),
        xlabel=f"% of prompts won against {results['baseline']} (ties count half), "
        f"{results.get('confidence_pct', 95)}% bootstrap interval",
        title="Win rate against the baseline",
    )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a point
    return _save(figure, path)


def length_histograms(path: str, answers: dict[str, list[str]]) -> str:
    """The distribution of answer lengths, one histogram per system."""
    figure, axes = plt.subplots(figsize=(7, 3.8))
    lengths = {name: np.asarray([len(a) for a in texts]) for name, texts in answers.items()}
    top = max(max(v.max() for v in lengths.values()), 1)
    bins = np.linspace(0, top + 1, min(40, top + 2))
    for name, values in lengths.items():
        axes.hist(values, bins=bins, alpha=0.5, label=f"{name} (mean {values.mean():.0f})")
    axes.set(xlabel="answer length (characters)", ylabel="answers", title="Answer lengths per system")
    axes.legend()
    return _save(figure, path)


def score_vs_length(path: str, judge: str, scores: dict[str, np.ndarray], answers: dict[str, list[str]]) -> str:
    """A scoring judge's score of each answer against the answer's length, with a least-squares line per system."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for i, (name, values) in enumerate(scores.items()):
        lengths = np.asarray([len(a) for a in answers[name]], np.float64)
        keep = ~np.isnan(values)
        axes.scatter(lengths[keep], values[keep], s=10, alpha=0.5, color=f"C{i}", label=name)
        if keep.sum() >= 2 and np.ptp(lengths[keep]) > 0:
            slope, intercept = np.polyfit(lengths[keep], values[keep], 1)
            xs = np.linspace(lengths[keep].min(), lengths[keep].max(), 2)
            axes.plot(xs, intercept + slope * xs, color=f"C{i}")
    axes.set(
        xlabel="answer length (characters)", ylabel=f"{judge} score", title=f"{judge}: score against answer length"
    )
    axes.legend()
    return _save(figure, path)


def meta_accuracy(path: str, results: dict) -> str:
    """Each judge's accuracy on the labelled pairs (averaged over both orders) and its positional agreement,
    with intervals, beside the accuracy of always picking the longer answer."""
    judges = list(results["judges"].items())
    figure, axes = plt.subplots(figsize=(9, 0.55 * len(judges) + 2))
    for y, (_, judged) in enumerate(judges):
        for key, offset, color, label in (
            ("accuracy", 0.12, "C0", "accuracy"),
            ("positional_agreement", -0.12, "C2", "positional agreement"),
        ):
            e = judged["splits"]["all"][key]
            axes.errorbar(
                100 * e["value"],
                y + offset,
                xerr=[[100 * (e["value"] - e["low"])], [100 * (e["high"] - e["value"])]],
                fmt="o",
                color=color,
                capsize=3,
                label=label if y == 0 else None,
            )
    length_only = results["length"]["all"]["length_only_accuracy"]["value"]
    axes.axvline(100 * length_only, color="C3", linestyle=":", label="always the longer answer")
    axes.axvline(50, color="gray", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(judges)), [f"{name}\n{judged['strategy'] or judged['kind']}" for name, judged in judges])
    axes.set(
        xlim=(0, 100), xlabel="% of labelled pairs", title=f"Judges on {results['labelled']['count']} labelled pairs"
    )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(figure, path)
