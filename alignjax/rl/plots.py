"""Plots of on-policy runs, saved as PNGs beside their metrics: learning curves and best-of-n."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: runs on headless TPU VMs and CI
import matplotlib.pyplot as plt


def plot_curves(history: list[dict[str, float]], path: str, title: str) -> None:
    """Rewards (rollout mean and greedy eval) and KL to the reference against the iteration, into `path`.

    Args:
      history: one record per iteration: `iteration`, `reward`, `kl` (absent where the policy did not sample)
        and, on eval iterations, `eval_reward` and `eval_kl`.
      path: the PNG to write.
      title: the figure's title (the algorithm and experiment).
    """
    figure, (reward_axes, kl_axes) = plt.subplots(1, 2, figsize=(10, 3.8))
    rollouts = [h for h in history if "reward" in h]  # iteration 0 has only the starting model's eval
    steps = [h["iteration"] for h in rollouts]
    reward_axes.plot(steps, [h["reward"] for h in rollouts], label="rollout answers (sampled)", alpha=0.7)
    evals = [h for h in history if "eval_reward" in h]
    reward_axes.plot(
        [h["iteration"] for h in evals], [h["eval_reward"] for h in evals], "o-", label="held-out greedy answers"
    )
    reward_axes.set(xlabel="iteration", ylabel="mean reward", title="reward")
    reward_axes.legend()
    sampled = [h for h in rollouts if "kl" in h]
    if sampled:
        steps, kls = [h["iteration"] for h in sampled], [h["kl"] for h in sampled]
        kl_axes.plot(steps, kls, label="rollout answers (k1)", alpha=0.7)
    kl_axes.plot([h["iteration"] for h in evals], [h["eval_kl"] for h in evals], "o-", label="held-out greedy (exact)")
    kl_axes.legend()
    kl_axes.set(xlabel="iteration", ylabel="KL(policy || reference) per answer", title="KL to the reference")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_best_of_n(table: list[dict], path: str, title: str, gold_name: str) -> None:
    """Mean reward of the kept answer against n (log scale), and on a second axis its gold reward, if any."""
    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    sizes = [row["n"] for row in table]
    axes.plot(sizes, [row["reward"] for row in table], "o-", label="selecting reward")
    axes.set_xscale("log", base=2)
    axes.set_xticks(sizes, [str(n) for n in sizes])
    axes.set(xlabel="n (answers sampled per prompt)", ylabel="selecting reward of the kept answer", title=title)
    if "gold" in table[0]:  # on its own scale: a gold reward is often a rate in [0, 1]
        gold_axes = axes.twinx()
        gold_axes.plot(sizes, [row["gold"] for row in table], "s--", color="tab:orange", label=f"gold: {gold_name}")
        gold_axes.set_ylabel(f"gold reward ({gold_name})")
        figure.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88))
    else:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
