"""DITTO's ablations and sweeps on the toy task, as in the paper's Table 3 and Figure 3: the share of held-out
answers in the demonstrated style, with 95% intervals, for

  the ablations:   full DITTO, no online resampling, an updated reference, no replay, no inter-model pairs;
  demonstrations:  DITTO from the first 1, 2, 4 and 8 of the user's demonstrations (each with its own warm-up);
  samples:         1, 4 and 10 samples per demonstration and iteration.

Each variant is `experiments/ditto_toy.py`'s recipe (`configs.toy.ditto`) with one thing changed, run as the command
line runs it (stages whose export exists are skipped: the toy SFT model and the warm-ups are shared), then
evaluated on the 200 held-out prompts against SFT on the same demonstrations, by the style rule (`toy_style`).
Writes `ablations.md`, `ablations.json` and `ablations.png` to the output directory. About 10 minutes on 2 CPU
cores after the quick start.

    python scripts/ditto_ablations.py                           # into runs/ditto_toy_ablations
    python scripts/ditto_ablations.py --out /tmp/ablations
"""

from __future__ import annotations

import argparse
import json
import os

from alignjax.configs import run_dir, toy
from alignjax.host_memory import keep_freed_host_memory
from alignjax.run import run

ABLATIONS = {
    "DITTO": dict(),
    "no online resampling": dict(online=False),
    "updated reference": dict(update_reference=True),
    "no replay": dict(replay=False),
    "no inter-model": dict(inter_model=False),
}
DEMONSTRATIONS = (1, 2, 4, 8)
SAMPLES = (1, 4, 10)


def _variants():
    """(group, label, run name, keyword arguments of `toy.ditto`) of every run; the variants that are the full
    algorithm (8 demonstrations, 10 samples) share its run."""

    def name(arguments: dict) -> str:
        defaults = {"demonstrations": 8, "samples_per_prompt": 10}
        changed = {k: v for k, v in arguments.items() if defaults.get(k) != v}
        return "ditto_full" if not changed else "ditto_" + "_".join(f"{k}_{v}" for k, v in changed.items())

    for label, switches in ABLATIONS.items():
        yield "ablation", label, name(switches), switches
    for n in DEMONSTRATIONS:
        yield "demonstrations", str(n), name(dict(demonstrations=n)), dict(demonstrations=n)
    for m in SAMPLES:
        yield "samples", str(m), name(dict(samples_per_prompt=m)), dict(samples_per_prompt=m)


def _style_scores(name: str, arguments: dict) -> dict:
    """Runs one variant (DITTO and its comparison with SFT only) and returns the style rule's scores per system."""
    config = toy.ditto(name=name, **arguments)
    for system in ("zero_shot", "few_shot"):  # the ablations compare DITTO with SFT; prompting is in the main table
        del config.eval.systems[system]
    del config.eval.judges["style_exact"]
    config.eval.plots = False
    run(config)
    with open(os.path.join(config.train.workdir, "report.json")) as f:
        return json.load(f)["judges"]["style"]["scores"]


def _plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ("ablation", "demonstrations", "samples")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"width_ratios": [1.6, 1, 1]})
    for ax, group in zip(axes, groups):
        rows = [r for r in results if r["group"] == group]
        x = range(len(rows))
        for system, color, offset in (("ditto", "tab:blue", 0.1), ("sft", "tab:gray", -0.1)):
            values = [100 * r[system]["value"] for r in rows]
            errors = [
                [100 * (r[system]["value"] - r[system]["low"]) for r in rows],
                [100 * (r[system]["high"] - r[system]["value"]) for r in rows],
            ]
            ax.errorbar(
                [i + offset for i in x],
                values,
                yerr=errors,
                fmt="o",
                color=color,
                capsize=3,
                label="DITTO" if system == "ditto" else "SFT on the same demonstrations",
            )
        ax.set_xticks(list(x), [r["label"] for r in rows], rotation=20 if group == "ablation" else 0)
        ax.set_title(
            {"ablation": "ablations", "demonstrations": "demonstrations used", "samples": "samples per demonstration"}[
                group
            ]
        )
        ax.set_ylabel("held-out answers in the user's style (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=run_dir("ditto_toy_ablations"), help="where the table and plot go")
    args = parser.parse_args()
    keep_freed_host_memory()
    os.makedirs(args.out, exist_ok=True)
    results = []
    for group, label, name, arguments in _variants():
        scores = _style_scores(name, arguments)
        results.append({"group": group, "label": label, "run": run_dir(f"{name}_toy"), **scores})
        with open(os.path.join(args.out, "ablations.json"), "w") as f:  # each result kept as soon as it is in
            json.dump(results, f, indent=1)
    lines = ["| group | variant | DITTO in style [95% CI] | SFT in style [95% CI] |", "|---|---|---:|---:|"]
    for r in results:
        cells = [
            f"{100 * r[s]['value']:.1f}% [{100 * r[s]['low']:.1f}, {100 * r[s]['high']:.1f}]" for s in ("ditto", "sft")
        ]
        lines.append(f"| {r['group']} | {r['label']} | {cells[0]} | {cells[1]} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "ablations.md"), "w") as f:
        f.write(table)
    _plot(results, os.path.join(args.out, "ablations.png"))
    print(table + f"\nwritten to {args.out}: ablations.md, ablations.json, ablations.png")


if __name__ == "__main__":
    main()
