"""An evaluation's report: `report.json` (everything measured), `report.md` (the tables, printed at the end too)
and the plots, in the run's workdir. Files are written whole and then renamed, so a killed run never leaves half
a report."""

from __future__ import annotations

import json
import os

import numpy as np
from tqdm import tqdm

from alignjax.eval import plots


def _atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _pct(e: dict, key: str = "rate") -> str:
    return f"{100 * e[key]:.1f}% [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"


def _num(e: dict) -> str:
    return f"{e['value']:.3g} [{e['low']:.3g}, {e['high']:.3g}]"


def eval_markdown(results: dict) -> str:
    """The evaluation's tables: systems, then per judge the win rates against the baseline and the scores."""
    baseline = results["baseline"]
    lines = [f"# Evaluation: {results['prompts']['count']} prompts from {results['prompts']['path']}", ""]
    lines += ["| system | answers from | prompting | mean length (chars) |", "|---|---|---|---:|"]
    for name, entry in results["systems"].items():
        marker = " (baseline)" if name == baseline else ""
        lines.append(
            f"| {name}{marker} | {entry['source']} | {entry['prompting']} | {entry['length_chars']['mean']:.1f} |"
        )
    for judge, judged in results["judges"].items():
        lines += ["", f"## Judge `{judge}` ({judged['kind']}): against {baseline}", ""]
        lines += ["| system | win rate [95% CI] | wins / ties / losses | length-controlled [95% CI] | unparsable |"]
        lines += ["|---|---:|---:|---:|---:|"]
        for system, entry in judged["systems"].items():
            if "win_rate" not in entry:
                lines.append(f"| {system} | - | - | - | {entry['unparsable']} |")
                continue
            w = entry["win_rate"]
            lines.append(
                f"| {system} | {_pct(w)} | {w['wins']} / {w['ties']} / {w['losses']} | "
                f"{_pct(entry['length_controlled'])} | {entry['unparsable']} |"
            )
        if judged.get("scores"):
            lines += ["", "| system | mean score [95% CI] | Spearman(score, length) [95% CI] |", "|---|---:|---:|"]
            for system, e in judged["scores"].items():
                rho = judged["score_length_spearman"].get(system)
                shown = f"{rho['rho']:.2f} [{rho['low']:.2f}, {rho['high']:.2f}]" if rho else "- (constant)"
                lines.append(f"| {system} | {_num(e)} | {shown} |")
        if judged.get("ranking"):
            lines += ["", "| rank | system | Bradley-Terry strength [95% CI] | Elo |", "|---:|---|---:|---:|"]
            for r in judged["ranking"]:
                strength = f"{r['strength']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
                lines.append(f"| {r['rank']} | {r['system']} | {strength} | {r['elo']:.0f} |")
    if results.get("judge_agreement"):
        header = "| judges/system | same outcome [95% CI] | same preference where neither ties [95% CI] (prompts) |"
        lines += ["", "## Agreement between judges", "", header, "|---|---:|---:|"]
        for key, entry in results["judge_agreement"].items():
            same = _pct(entry["same_outcome"], "value") if "same_outcome" in entry else "-"
            decisive = entry.get("same_preference")
            shown = f"{_pct(decisive, 'value')} ({decisive['n']})" if decisive else "- (0)"
            lines.append(f"| {key} | {same} | {shown} |")
    return "\n".join(lines + _appendix_lines(results)) + "\n"


def meta_markdown(results: dict) -> str:
    """The meta-evaluation's table: per judge and split, accuracy, agreement, ties and unparsable replies."""
    labelled = results["labelled"]
    skipped = f" ({len(labelled['skipped'])} bad rows skipped)" if labelled["skipped"] else ""
    lines = [f"# Meta-evaluation: {labelled['count']} labelled pairs from {labelled['path']}{skipped}", ""]
    lines += ["| judge | strategy | split | accuracy [95% CI] | positional agreement | tie rate | unparsable |"]
    lines += ["|---|---|---|---:|---:|---:|---:|"]
    for name, judged in results["judges"].items():
        for split, m in judged["splits"].items():
            lines.append(
                f"| {name} | {judged['strategy'] or judged['kind']} | {split} | {_pct(m['accuracy'], 'value')} | "
                f"{_pct(m['positional_agreement'], 'value')} | {100 * m['tie_rate']['value']:.1f}% | "
                f"{100 * m['unparsable_rate']['value']:.1f}% |"
            )
    length = results["length"]["all"]
    lines += [
        "",
        f"Length alone: the labelled answer is the longer one in {_pct(length['labelled_longer'], 'value')} of pairs; "
        f"always picking the longer answer is {_pct(length['length_only_accuracy'], 'value')} accurate.",
    ]
    for name, judged in results["judges"].items():
        rho = judged["splits"]["all"].get("score_length_spearman")
        if rho:
            lines.append(f"`{name}`: Spearman(score, length) = {rho['rho']:.3f} [{rho['low']:.3f}, {rho['high']:.3f}]")
    return "\n".join(lines + _appendix_lines(results)) + "\n"


def _appendix_lines(results: dict) -> list[str]:
    lines = []
    if results.get("appendix"):
        lines += ["", "## Appendix: what the LLM judges were asked"]
        for name, text in results["appendix"].items():
            lines += ["", f"### {name}", "", "```", text, "```"]
    return lines


def write(workdir: str, results: dict, answers=None, scores=None, with_plots: bool = True) -> None:
    """Writes report.json, report.md and the plots (`answers` and `scores` per system feed an evaluation's);
    prints the markdown without its appendix."""
    made = []
    if with_plots:
        if results["kind"] == "eval":
            if any("win_rate" in e for j in results["judges"].values() for e in j["systems"].values()):
                made.append(plots.win_rates(os.path.join(workdir, "win_rates.png"), results))
            made.append(plots.length_histograms(os.path.join(workdir, "lengths.png"), answers))
            for judge, by_system in (scores or {}).items():
                if by_system:
                    made.append(
                        plots.score_vs_length(
                            os.path.join(workdir, f"score_vs_length_{judge}.png"), judge, by_system, answers
                        )
                    )
        else:
            made.append(plots.meta_accuracy(os.path.join(workdir, "meta_accuracy.png"), results))
    results = {**results, "plots": [os.path.basename(p) for p in made]}
    _atomic(os.path.join(workdir, "report.json"), json.dumps(results, indent=2, default=_plain) + "\n")
    markdown = eval_markdown(results) if results["kind"] == "eval" else meta_markdown(results)
    _atomic(os.path.join(workdir, "report.md"), markdown)
    tqdm.write(markdown.split("\n## Appendix")[0])


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
