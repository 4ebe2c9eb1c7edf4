"""Held-out evaluation during training: loss and metrics, exact match, and greedy answers checked by a rule.

- Loss and the loss's own metrics on the eval batches (for preference losses: implicit rewards, margins and
  preference accuracy; for reward models: pairwise accuracy), averaged over what the loss is weighted by.
- Token losses add exact match per example (teacher-forced greedy equals the reference).
- When the data's good answers follow a checkable rule (a builtin dataset's `rule`), the share of held-out
  prompts whose greedy answer follows it: the number alignment is meant to move.
"""

from __future__ import annotations

import jax
import numpy as np
from tqdm import tqdm

from alignjax import sharding
from alignjax.data.tokenization import conditional_prompt
from alignjax.sampling import GREEDY, generate
from alignjax.train.step import DEVICE_KEYS


def evaluate(eval_fn, params, ref_params, eval_batches: list[dict], mesh) -> dict[str, float]:
    """The loss and each of its metrics over all eval batches, plus exact match per example for token losses."""
    total = weight = 0.0
    sums: dict[str, float] = {}
    matches = {}
    for batch in eval_batches:
        out = jax.device_get(eval_fn(params, sharding.put_batch(batch, mesh, DEVICE_KEYS), ref_params))
        total, weight = total + float(out["total"]), weight + float(out["weight"])
        for name, value in out["metrics"].items():
            sums[name] = sums.get(name, 0.0) + float(value)
        if "exact_match_B" in out:
            for index, match in zip(batch["example_index"], out["exact_match_B"]):
                if index >= 0:
                    matches[int(index)] = bool(match)
    weight = max(weight, 1.0)
    results = {"loss": total / weight, **{name: value / weight for name, value in sums.items()}}
    if matches:
        results["exact_match"] = float(np.mean(list(matches.values())))
    return results


def greedy_answers(model, tokenizer, prompts: list[str], mesh, max_new_tokens: int, tag: str = "") -> list[str]:
    """Greedy answers to user prompts rendered with the chat template, after a control `tag` when one is given."""
    ids = [
        conditional_prompt([{"role": "user", "content": p}], tokenizer, tag, f"eval prompt {i}")
        for i, p in enumerate(prompts)
    ]
    return generate(model, ids, max_new_tokens=max_new_tokens, config=GREEDY, tokenizer=tokenizer, mesh=mesh).texts


def rule_rate(answers: list[str], prompts: list[str], rule) -> float:
    """The share of answers that follow `rule(prompt, answer)`."""
    return float(np.mean([rule(prompt, answer) for prompt, answer in zip(prompts, answers)]))


def print_answers(prompts: list[str], answers: list[str], rule, count: int) -> None:
    """The first `count` prompts with their greedy answers and whether each follows the rule."""
    for prompt, answer in list(zip(prompts, answers))[:count]:
        tqdm.write(f"  {prompt!r} -> {answer!r} ({'follows' if rule(prompt, answer) else 'breaks'} the rule)")


def print_samples(model, tokenizer, eval_batches: list[dict], count: int, mesh) -> None:
    """Greedy answers to the first `count` held-out SFT prompts, next to their references."""
    batch = eval_batches[0]
    rows = [r for r in range(len(batch["tokens"])) if batch["example_index"][r] >= 0][:count]
    prompts = [batch["tokens"][r, : int(np.argmax(batch["loss_mask"][r] > 0)) + 1].tolist() for r in rows]
    references = [batch["targets"][r][batch["loss_mask"][r] > 0].tolist() for r in rows]
    budget = max(len(reference) for reference in references) + 4
    answers = generate(model, prompts, max_new_tokens=budget, config=GREEDY, tokenizer=tokenizer, mesh=mesh).texts
    for prompt, answer, reference in zip(prompts, answers, references):
        tqdm.write(
            f"  prompt {tokenizer.decode(prompt, skip_special_tokens=True)!r} -> "
            f"{answer!r} "
            f"(reference {tokenizer.decode(reference, skip_special_tokens=True)!r})"
        )
