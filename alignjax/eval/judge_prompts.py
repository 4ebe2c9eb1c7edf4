"""What LLM judges are asked: the pairwise strategies of LLMBar and MT-Bench-style single grading, as chat messages.

LLMBar (Zeng et al., 2024, "Evaluating Large Language Models at Evaluating Instruction Following") found that
how a judge is prompted matters as much as which model judges: explicit rules (follow the instruction first;
order, length and tone do not matter), instruction-specific questions the judge writes first ("metrics"), and a
reference answer the judge writes first ("reference") each help, and together they help most. Our strategies
follow its structure (a system message, the rules, the instruction and the two outputs, the auxiliary texts,
then the question), with our own wording:

    vanilla            the question alone (LLMBar's "Vanilla_NoRules")
    rules              with the rules (LLMBar's "Vanilla", whose prompt always carries them)
    metrics            rules + the judge's own questions about the instruction (LLMBar's "Metrics")
    reference          rules + the judge's own answer to the instruction (LLMBar's "Reference")
    metrics_reference  rules + questions + reference (LLMBar's "Metrics_Reference", its best)

LLMBar also biases the decoding towards "Output (a)"/"Output (b)" with logit bias, which few endpoints offer;
we ask for the label instead and parse the reply tolerantly (`verdicts`), counting what cannot be read.
"""

from __future__ import annotations

PAIRWISE_STRATEGIES = ("vanilla", "rules", "metrics", "reference", "metrics_reference")
AUXILIARIES = {"vanilla": (), "rules": (), "metrics": ("metrics",), "reference": ("reference",)}
AUXILIARIES["metrics_reference"] = ("metrics", "reference")

_JUDGE_SYSTEM = (
    "You evaluate how well AI assistants answer instructions. Your task is to decide which of two outputs is the "
    "better answer to the instruction."
)
_RULES = """Evaluate by these rules:
1. First judge whether the output follows the instruction faithfully, precisely and completely; only then \
weigh helpfulness, accuracy, detail and harmlessness.
2. An output that does more or less than the instruction asks does not follow it precisely.
3. Be objective: the order of the outputs must not influence you (Output (a) and Output (b) are equally likely \
to be the better one), and neither must their length or tone unless the instruction asks for them.
"""
_ANSWER_FORMAT = """Do not explain your choice, and do not say that both or neither are good.
Reply with exactly "Output (a)" or "Output (b)" and nothing else."""

_METRICS_QUESTION = """Write at most three short questions that decide whether an output is a good answer to \
the instruction below. Another assistant will answer them to compare outputs.

Rules:
1. What matters most is whether the output follows the instruction faithfully, precisely and completely.
2. An output that does more or less than the instruction asks does not follow it precisely.

# Instruction:
{instruction}

Make the questions specific to this instruction rather than general standards, order them from most to least \
important, and write only the questions."""

_SINGLE_SYSTEM = "You evaluate how well an AI assistant answers an instruction."
_SINGLE_QUESTION = """Rate the output below as an answer to the instruction, on a scale of 1 to 10 (10 best).
Judge first whether it follows the instruction faithfully, precisely and completely, then its helpfulness, \
accuracy, detail and harmlessness. Length alone is not a merit.
{reference}
# Instruction:
{instruction}

# Output:
{output}

Give a one-sentence reason, then the rating in exactly this format: "Rating: [[N]]"."""


def pairwise_messages(
    strategy: str, instruction: str, output_a: str, output_b: str, metrics: str = "", reference: str = ""
) -> list[dict[str, str]]:
    """The judge's chat for one order of one pair.

    Args:
      strategy: one of PAIRWISE_STRATEGIES.
      instruction: what both outputs answer.
      output_a: shown first, as "Output (a)".
      output_b: shown second, as "Output (b)".
      metrics: the judge's questions about the instruction (strategies with "metrics").
      reference: the judge's own answer (strategies with "reference").
    """
    if strategy not in PAIRWISE_STRATEGIES:
        raise ValueError(f"strategy: {strategy!r} is not one of {', '.join(PAIRWISE_STRATEGIES)}")
    parts = [
        "Which of the two outputs below is the better answer to the instruction? Each comes from a "
        "different AI assistant.\n"
    ]
    if strategy != "vanilla":
        parts.append(_RULES)
    parts.append(_ANSWER_FORMAT)
    parts.append(f"# Instruction:\n{instruction}\n\n# Output (a):\n{output_a}\n\n# Output (b):\n{output_b}")
    if "metrics" in AUXILIARIES[strategy]:
        parts.append(f"# Questions that may help (most important first):\n{metrics}")
    if "reference" in AUXILIARIES[strategy]:
        parts.append(f"# An answer written by a strong assistant, for reference:\n{reference}")
    parts.append('# Which is better? Reply "Output (a)" or "Output (b)":')
    return [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def metrics_messages(instruction: str) -> list[dict[str, str]]:
    """The chat that asks the judge for instruction-specific questions (LLMBar's auxiliary "Metrics")."""
    return [
        {"role": "system", "content": "You help evaluate how well AI assistants answer instructions."},
        {"role": "user", "content": _METRICS_QUESTION.format(instruction=instruction)},
    ]


def reference_messages(instruction: str) -> list[dict[str, str]]:
    """The chat that asks the judge for its own answer (LLMBar's auxiliary "Reference": a concise answer)."""
    return [
        {"role": "system", "content": "You are a helpful assistant who answers concisely."},
        {"role": "user", "content": instruction},
    ]


def single_messages(instruction: str, output: str, reference: str = "") -> list[dict[str, str]]:
    """MT-Bench-style grading of one output, 1 to 10, with a reference answer when one is given."""
    shown = f"\n# A reference answer, for comparison:\n{reference}\n" if reference else ""
    question = _SINGLE_QUESTION.format(reference=shown, instruction=instruction, output=output)
    return [{"role": "system", "content": _SINGLE_SYSTEM}, {"role": "user", "content": question}]


def appendix() -> dict[str, str]:
    """Each strategy's prompt with placeholders, and the auxiliary and single-grading prompts: the report's
    appendix, so a reader sees exactly what the judge was asked."""
    shown = {"instruction": "{instruction}", "output_a": "{output_a}", "output_b": "{output_b}"}
    texts = {}
    for strategy in PAIRWISE_STRATEGIES:
        messages = pairwise_messages(strategy, **shown, metrics="{metrics}", reference="{reference}")
        texts[f"pairwise/{strategy}"] = _as_text(messages)
    texts["auxiliary/metrics"] = _as_text(metrics_messages("{instruction}"))
    texts["auxiliary/reference"] = _as_text(reference_messages("{instruction}"))
    texts["single"] = _as_text(single_messages("{instruction}", "{output}"))
    texts["single/reference"] = _as_text(single_messages("{instruction}", "{output}", "{reference}"))
    return texts


def _as_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
