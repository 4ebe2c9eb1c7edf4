"""Best-of-n sampling: n answers per prompt, the one the reward (model) scores highest is kept.

The evaluation samples `max(sizes)` answers to each held-out prompt once and reads best-of-n for every n in
`sizes` from the first n of them, so the table compares the same samples (best-of-4 picks among the four that
best-of-16 also saw). Beside the selecting reward, a `gold` reward function (for the toy task, whether the answer
is exactly right) tells whether a higher selected reward is a better answer or the selector's blind spot.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import nnx
from ml_collections import ConfigDict
from tqdm import tqdm

from alignjax import sharding
from alignjax.config_errors import require
from alignjax.models import from_pretrained
from alignjax.rl.plots import plot_best_of_n
from alignjax.rl.prompts import load_prompts
from alignjax.rl.rewards import FunctionScorer, make_scorer
from alignjax.rl.rollout import RolloutWorker
from alignjax.sampling import SamplingConfig
from alignjax.train.build import load_tokenizer
from alignjax.train.metrics import MetricWriter

TABLE_FILE, PLOT_FILE = "best_of_n.json", "best_of_n.png"


def best_of_n_table(rewards_BK: np.ndarray, sizes, gold_BK: np.ndarray | None = None) -> list[dict[str, float]]:
    """Per n in `sizes`: the mean selecting reward of each prompt's best of its first n answers (and their gold).

    Args:
      rewards_BK: the selecting reward of K >= max(sizes) answers per prompt.
      sizes: the n to report.
      gold_BK: a second reward of the same answers, reported for the selected ones.
    """
    rows = []
    for n in sizes:
        best_B = np.argmax(rewards_BK[:, :n], axis=1)  # the first maximum on ties
        picked = np.arange(len(rewards_BK)), best_B
        row = {"n": int(n), "reward": float(np.mean(rewards_BK[picked]))}
        if gold_BK is not None:
            row["gold"] = float(np.mean(gold_BK[picked]))
        rows.append(row)
    return rows


def check_best_of_n_config(config: ConfigDict) -> None:
    sizes = list(config.best_of_n.sizes)
    ok = bool(sizes) and all(n >= 1 for n in sizes) and sizes == sorted(set(sizes))
    require(ok, f"best_of_n.sizes must be increasing integers >= 1, got {sizes}")


def run_best_of_n(config: ConfigDict) -> dict[str, float]:
    """Evaluates best-of-n on the held-out prompts for each n in `best_of_n.sizes`; returns {"reward@n": ...}.

    Writes the table to `workdir/best_of_n.json` (and its numbers to `metrics.jsonl`) and the plot to
    `workdir/best_of_n.png`.
    """
    check_best_of_n_config(config)
    rl, sizes, workdir = config.rl, list(config.best_of_n.sizes), config.train.workdir
    mesh = sharding.mesh_from_config(config.mesh)
    tokenizer = load_tokenizer(config)
    _, prompts, _ = load_prompts(config.data, tokenizer, rl.max_prompt_len)
    prompts = prompts.take(range(min(rl.eval_prompts, len(prompts))))
    m = config.model
    model = from_pretrained(m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh)
    params = nnx.state(model)
    scorer = make_scorer(rl.reward, mesh, m.dtype)
    worker = RolloutWorker(
        model, params, scorer, tokenizer, mesh, max_prompt_len=rl.max_prompt_len, max_new_tokens=rl.max_new_tokens,
        sampling=SamplingConfig(temperature=rl.temperature, top_k=rl.top_k, top_p=rl.top_p),
        missing_eos_penalty=rl.missing_eos_penalty,
    )
    K = sizes[-1]
    rollout, _ = worker.collect(params, prompts, jax.random.key(config.seed), K)
    gold_name = config.best_of_n.gold_function
    gold_BK = None
    if gold_name:
        prompt_values = [prompts.values[p] for p in rollout.prompt_index_N]
        gold_BK = FunctionScorer(gold_name)(prompt_values, rollout.answers, None).reshape(-1, K)
    table = best_of_n_table(rollout.rewards_BK, sizes, gold_BK)
    selector = rl.reward.model_path or rl.reward.function
    tqdm.write(f"best-of-n on {len(prompts)} held-out prompts, selected by {selector}:")
    tqdm.write("    n  selecting reward" + (f"  gold ({gold_name})" if gold_name else ""))
    for row in table:
        tqdm.write(f"  {row['n']:>3}  {row['reward']:>16.4f}" + (f"  {row['gold']:>10.4f}" if gold_name else ""))
    results = {f"{key}@{row['n']}": row[key] for row in table for key in row if key != "n"}
    writer = MetricWriter(workdir, echo=False)
    writer.write(0, results, prefix="eval")
    writer.close()
    if jax.process_index() == 0:
        with open(os.path.join(workdir, TABLE_FILE), "w") as f:
            json.dump({"selector": selector, "gold": gold_name, "prompts": len(prompts), "table": table}, f, indent=1)
        title = f"best-of-n ({len(prompts)} held-out prompts)"
        plot_best_of_n(table, os.path.join(workdir, PLOT_FILE), title, gold_name)
        tqdm.write(f"table and plot saved to {workdir}/{TABLE_FILE}, {workdir}/{PLOT_FILE}")
    return results
