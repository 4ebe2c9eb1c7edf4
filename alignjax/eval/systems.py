"""The systems under evaluation: each answers the prompt set, and its answers are saved beside the report.

A system is a model behind the generation client (a local model directory or an OpenAI-compatible endpoint,
answers cached in the run's generation cache, so a killed evaluation resumes without asking twice), prompted in
one of the baselines every alignment paper reports against, or a file of answers computed elsewhere:

- zero_shot: the prompt as it is.
- few_shot: `shots` demonstrations (user and assistant turns from the pool) before the prompt; which ones is
  drawn per prompt from the system's seed and the prompt's position, so a rerun shows the same ones.
- cot: the prompt followed by an instruction to reason step by step and then write "Answer: ..."; the answer
  judged is what follows the last "Answer:" (the whole reply when there is none).

Saved answers (`answers/<system>.jsonl`: one `{"prompt", "answer"}` a line) are also the format an answers file
is read in, so one run's answers can be another run's system.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
from ml_collections import ConfigDict

from alignjax.data.errors import DataError
from alignjax.eval.prompt_sets import EvalPrompt, load_demonstrations, prompt_key
from alignjax.generation import make_generator

_FINAL_ANSWER = re.compile(r"^\s*answer\s*:\s*", re.IGNORECASE | re.MULTILINE)


def answer_prompts(name: str, spec: ConfigDict, prompts: list[EvalPrompt], workdir: str) -> list[str]:
    """System `name`'s answers to `prompts`, in order, saved to `<workdir>/answers/<name>.jsonl`.

    Raises:
      DataError: an answers file that lacks some prompts, or a row without `prompt` and `answer`.
      GenerationError: the model or endpoint failed; the answers it gave are kept in the cache.
    """
    if spec.answers:
        answers = read_answers(spec.answers, prompts)
    else:
        pool = Pool(load_demonstrations(spec.pool)) if spec.prompting == "few_shot" else None
        requests = [_messages(spec, prompt, i, pool) for i, prompt in enumerate(prompts)]
        with make_generator(spec.generation, workdir, field=f"eval.systems.{name}.generation") as generator:
            replies = generator.texts(requests)
        answers = [final_answer(r) if spec.prompting == "cot" else r for r in replies]
    write_answers(os.path.join(workdir, "answers", f"{name}.jsonl"), prompts, answers)
    return answers


class Pool:
    """The few-shot demonstrations (conversations), indexed by their prompt to leave a prompt's own answer out."""

    def __init__(self, demonstrations: list[list[dict[str, str]]]):
        self.demonstrations = demonstrations
        self.by_prompt: dict[str, list[int]] = {}
        for j, demonstration in enumerate(demonstrations):
            self.by_prompt.setdefault(prompt_key(demonstration[:-1]), []).append(j)

    def draw(self, prompt: EvalPrompt, shots: int, seed: int, index: int) -> list[dict[str, str]]:
        """`shots` demonstrations for the `index`-th prompt, drawn by (seed, index), never the prompt's own."""
        own = set(self.by_prompt.get(prompt.key, ()))
        if len(self.demonstrations) - len(own) < shots:
            raise DataError(f"few-shot pool: {len(self.demonstrations) - len(own)} demonstrations, fewer than {shots}")
        rng = np.random.default_rng([seed, index])
        drawn = rng.choice(len(self.demonstrations), size=shots + len(own), replace=False)
        return [m for j in [j for j in drawn if j not in own][:shots] for m in self.demonstrations[j]]


def _messages(spec: ConfigDict, prompt: EvalPrompt, index: int, pool: Pool | None) -> list[dict[str, str]]:
    """The chat the system is asked for `prompt` (the `index`-th) under its prompting."""
    if spec.prompting == "few_shot":
        return pool.draw(prompt, spec.shots, spec.seed, index) + prompt.messages
    if spec.prompting == "cot":
        last = prompt.messages[-1]
        return prompt.messages[:-1] + [
            {"role": last["role"], "content": f"{last['content']}\n\n{spec.cot_instruction}"}
        ]
    return prompt.messages


def final_answer(reply: str) -> str:
    """What follows the last line starting with "Answer:", else the whole reply (stripped)."""
    starts = list(_FINAL_ANSWER.finditer(reply))
    return (reply[starts[-1].end() :] if starts else reply).strip()


def read_answers(path: str, prompts: list[EvalPrompt]) -> list[str]:
    """The answers to `prompts` in an answers file (JSON Lines of `prompt` and `answer`; other rows ignored).

    Raises:
      DataError: naming the file and line of a malformed row, or the first prompts the file has no answer to.
    """
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{where}: not valid JSON ({e.msg})") from e
                for field in ("prompt", "answer"):
                    if not isinstance(row, dict) or field not in row:
                        raise DataError(
                            f"{where}: field {field!r} is missing; an answers row has 'prompt' and 'answer'"
                        )
                if not isinstance(row["answer"], str):
                    raise DataError(f"{where}: field 'answer' must be a string, got {type(row['answer']).__name__}")
                messages = (
                    [{"role": "user", "content": row["prompt"]}] if isinstance(row["prompt"], str) else row["prompt"]
                )
                found[prompt_key(messages)] = row["answer"]
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such answers file") from e
    missing = [p for p in prompts if p.key not in found]
    if missing:
        shown = "; ".join(f"{p.where} ({p.instruction[:40]!r})" for p in missing[:3])
        raise DataError(f"{path}: no answer to {len(missing)} of the {len(prompts)} prompts, the first: {shown}")
    return [found[p.key] for p in prompts]


def write_answers(path: str, prompts: list[EvalPrompt], answers: list[str]) -> None:
    """Writes the answers file atomically (a killed run leaves the old file or the new one, never half)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for prompt, answer in zip(prompts, answers):
            f.write(json.dumps({"prompt": prompt.messages, "answer": answer}, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
