"""The `eval` section of an evaluation or meta-evaluation run: the prompts, the systems, the judges, and checks.

An evaluation (`kind="eval"`) answers a prompt set with each system, judges each system against the baseline
system with each judge, and reports win rates with intervals and length statistics. A meta-evaluation
(`kind="meta_eval"`) asks each judge about labelled pairs and reports how often it agrees with the labels.

    config.eval = eval_section(prompts=prompt_set("builtin", "toy_preferences"), baseline="sft")
    config.eval.systems.sft = system(generation_config(model="runs/toy_sft/hf", max_tokens=16))
    config.eval.systems.sft_3shot = system(generation_config(model="runs/toy_sft/hf"), prompting="few_shot", shots=3)
    config.eval.judges.exact = judge("rule", function="toy_exact")
    config.eval.judges.gpt = judge("pairwise", strategy="metrics_reference",
                                   generation=generation_config(backend="openai", model="gpt-4o"))

Systems and judges are dicts by name, so `--config.eval.systems.dpo.generation.model=DIR` overrides one field.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from alignjax.config_errors import require
from alignjax.eval.judge_prompts import AUXILIARIES, PAIRWISE_STRATEGIES
from alignjax.eval.judges import JUDGES
from alignjax.generation import check_generation_config, generation_config
from alignjax.rl.rewards import reward_function_names

PROMPTINGS = ("zero_shot", "few_shot", "cot")
JUDGE_KINDS = tuple(JUDGES)
LLM_JUDGES = ("pairwise", "single")
LABELLED_FORMATS = ("auto", "llmbar", "pairs")
COT_INSTRUCTION = "Think step by step. Then write the final answer on its own line, starting with 'Answer:'."


def prompt_set(source: str = "builtin", path: str = "", split: str = "test", max_prompts: int = 0) -> ConfigDict:
    """Where the evaluation prompts come from: rows with a `prompt` (a string or chat messages), read as training
    data is (`source`: builtin, json, parquet or hf); `max_prompts` > 0 keeps the first ones."""
    return ConfigDict(dict(source=source, path=path, split=split, max_prompts=max_prompts))


def system(
    generation: ConfigDict | None = None,
    answers: str = "",
    prompting: str = "zero_shot",
    shots: int = 0,
    pool: ConfigDict | None = None,
    cot_instruction: str = COT_INSTRUCTION,
    seed: int = 0,
) -> ConfigDict:
    """One system under evaluation.

    Args:
      generation: the model that answers (a `generation_config`: a local model directory or an endpoint), with the
        sampling of its answers.
      answers: a file of precomputed answers (JSON Lines of `prompt` and `answer`, as each run saves them);
        when set, nothing is generated.
      prompting: zero_shot (the prompt alone), few_shot (`shots` demonstrations from `pool` before it, chosen by
        `seed`) or cot (the prompt followed by `cot_instruction`; the answer is what follows the last "Answer:").
    """
    return ConfigDict(
        dict(
            generation=generation if generation is not None else generation_config(),
            answers=answers,
            prompting=prompting,
            shots=shots,
            pool=pool if pool is not None else prompt_set(split="train"),
            cot_instruction=cot_instruction,
            seed=seed,
        )
    )


def judge(
    kind: str,
    function: str = "",
    model: str = "",
    reference_model: str = "",
    beta: float = 0.1,
    max_length: int = 0,
    strategy: str = "rules",
    reference: bool = False,
    generation: ConfigDict | None = None,
    auxiliary_max_tokens: tuple[int, int] = (150, 384),
) -> ConfigDict:
    """One judge.

    Args:
      kind: rule (a registered reward function of (prompt, answer)), reward_model (a reward model directory scores
        each answer), implicit_reward (a DPO policy's beta * log-ratio to its reference), pairwise (an LLM
        compares two answers in both orders) or single (an LLM rates each answer 1-10).
      function: the rule's registered name.
      model: the reward model's directory (ours or a `*ForSequenceClassification` export), or the DPO policy's.
      reference_model: implicit_reward: the policy's reference (its SFT model).
      beta: implicit_reward: the DPO beta the policy was trained with.
      max_length: reward_model and implicit_reward: a conversation longer than this many tokens keeps its last
        ones (the answer and the end of the prompt); 0: the model's context.
      strategy: the pairwise judge's prompting strategy (`judge_prompts.PAIRWISE_STRATEGIES`).
      reference: the single judge is shown the prompt set's reference answer (its `reference` field, or
        `completion` / `demonstration` / `chosen`); the pairwise judge's reference strategies use it instead of
        writing their own (as the DITTO paper's GPT-4 judge was shown the user's held-out demonstration).
      generation: the LLM judge's model and sampling (temperature 0 by default, as LLMBar).
      auxiliary_max_tokens: the budgets of the judge's own questions ("metrics") and answer ("reference").
    """
    return ConfigDict(
        dict(
            kind=kind,
            function=function,
            model=model,
            reference_model=reference_model,
            beta=beta,
            max_length=max_length,
            strategy=strategy,
            reference=reference,
            generation=generation if generation is not None else generation_config(max_tokens=50),
            auxiliary_max_tokens=auxiliary_max_tokens,
        )
    )


def eval_section(
    prompts: ConfigDict | None = None, baseline: str = "", labelled: str = "", labelled_format: str = "auto"
) -> ConfigDict:
    """The `eval` section: add systems and judges by name (`section.systems.NAME = system(...)`).

    Args:
      prompts: the prompt set the systems answer (`prompt_set`).
      baseline: the system every other system is compared with.
      labelled: meta-evaluation: a file of labelled pairs (LLMBar's `input`, `output_1`, `output_2`, `label`, or
        `chosen`/`rejected` pairs).
      labelled_format: auto (told by the fields), llmbar or pairs.
    """
    return ConfigDict(
        dict(
            prompts=prompts if prompts is not None else prompt_set(),
            baseline=baseline,
            systems=ConfigDict(),
            judges=ConfigDict(),
            labelled=labelled,
            labelled_format=labelled_format,
            max_pairs=0,  # meta-evaluation: > 0 keeps the first pairs
            on_bad_row="error",  # meta-evaluation: error (name the first bad row) | skip (count them in the report)
            resamples=2000,  # bootstrap resamples of every interval
            confidence=0.95,
            seed=0,  # the bootstrap's seed
            plots=True,
        )
    )


def model_dirs(section: ConfigDict) -> list[tuple[str, str]]:
    """(field, directory) of every local model the section reads, for the preflight check (which skips those an
    earlier stage will write)."""
    dirs = []
    for name, spec in section.systems.items():
        if not spec.answers and spec.generation.backend == "local":
            dirs.append((f"eval.systems.{name}.generation.model", spec.generation.model))
    for name, spec in section.judges.items():
        if spec.kind in ("reward_model", "implicit_reward"):
            dirs.append((f"eval.judges.{name}.model", spec.model))
            dirs.append((f"eval.judges.{name}.reference_model", spec.reference_model))
        elif spec.kind in LLM_JUDGES and spec.generation.backend == "local":
            dirs.append((f"eval.judges.{name}.generation.model", spec.generation.model))
    return [(field, path) for field, path in dirs if path]


def check_eval_section(section: ConfigDict, meta: bool) -> None:
    """Raises ConfigError naming the field for a value that cannot work (model directories are checked by the
    preflight, which knows which ones an earlier stage writes)."""
    require(len(section.judges) >= 1, "eval.judges: empty; add one, e.g. eval.judges.exact = judge('rule', ...)")
    for name, spec in section.judges.items():
        _check_judge(spec, f"eval.judges.{name}", meta)
    require(section.resamples >= 100, f"eval.resamples: must be >= 100, got {section.resamples}")
    require(0 < section.confidence < 1, f"eval.confidence: must be in (0, 1), got {section.confidence}")
    if meta:
        require(bool(section.labelled), "eval.labelled: empty; give a file of labelled pairs")
        require(
            section.labelled_format in LABELLED_FORMATS,
            f"eval.labelled_format: {section.labelled_format!r} is not one of {', '.join(LABELLED_FORMATS)}",
        )
        require(
            section.on_bad_row in ("error", "skip"),
            f"eval.on_bad_row: {section.on_bad_row!r} is not one of error, skip",
        )
        return
    require(len(section.systems) >= 2, f"eval.systems: {len(section.systems)} given; a comparison needs two or more")
    require(
        section.baseline in section.systems,
        f"eval.baseline: {section.baseline!r} is not a system; the systems are {', '.join(section.systems)}",
    )
    require(bool(section.prompts.path), "eval.prompts.path: empty; name the prompt set")
    for name, spec in section.systems.items():
        _check_system(spec, f"eval.systems.{name}")


def _check_system(spec: ConfigDict, field: str) -> None:
    require(
        spec.prompting in PROMPTINGS, f"{field}.prompting: {spec.prompting!r} is not one of {', '.join(PROMPTINGS)}"
    )
    if spec.prompting == "few_shot":
        require(spec.shots >= 1, f"{field}.shots: few_shot prompting needs shots >= 1, got {spec.shots}")
        require(bool(spec.pool.path), f"{field}.pool.path: empty; few_shot prompting draws its examples from it")
    else:
        require(spec.shots == 0, f"{field}.shots: {spec.shots}, but prompting={spec.prompting!r} shows no examples")
    if not spec.answers:
        check_generation_config(spec.generation, f"{field}.generation", check_model=False)


def _check_judge(spec: ConfigDict, field: str, meta: bool) -> None:
    require(spec.kind in JUDGE_KINDS, f"{field}.kind: {spec.kind!r} is not one of {', '.join(JUDGE_KINDS)}")
    if spec.kind == "rule":
        require(
            spec.function in reward_function_names(),
            f"{field}.function: {spec.function!r} is not a registered rule; registered: {reward_function_names()}",
        )
        require(not meta, f"{field}: a rule judges answers to a known task, not labelled pairs; use an LLM judge")
    elif spec.kind in LLM_JUDGES:
        if spec.kind == "pairwise":
            require(
                spec.strategy in PAIRWISE_STRATEGIES,
                f"{field}.strategy: {spec.strategy!r} is not one of {', '.join(PAIRWISE_STRATEGIES)}",
            )
            require(
                not spec.reference or "reference" in AUXILIARIES[spec.strategy],
                f"{field}.reference: the prompt set's reference answers replace the judge's own, which strategy "
                f"{spec.strategy!r} does not write; use strategy 'reference' or 'metrics_reference'",
            )
        check_generation_config(spec.generation, f"{field}.generation", check_model=False)
    else:  # a model scores each answer
        what = "a reward model directory" if spec.kind == "reward_model" else "the DPO policy's directory"
        require(bool(spec.model), f"{field}.model: empty; give {what}")
        if spec.kind == "implicit_reward":
            require(bool(spec.reference_model), f"{field}.reference_model: empty; give the policy's reference")
            require(spec.beta > 0, f"{field}.beta: must be > 0, got {spec.beta}")
        require(
            spec.max_length >= 0, f"{field}.max_length: must be >= 0 (0: the model's context), got {spec.max_length}"
        )
