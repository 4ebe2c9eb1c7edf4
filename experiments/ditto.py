"""DITTO for your own demonstrations and Hugging Face chat model, with the reference implementation's settings.

    python -m alignjax.run --config experiments/ditto.py \
        --config.previous_stage.previous_stage.model.path=/models/Mistral-7B-Instruct-v0.2 \
        --config.previous_stage.previous_stage.data.path=my_demonstrations.jsonl \
        --config.eval.prompts.path=my_held_out.jsonl
    # the judge behind an OpenAI-compatible endpoint instead of the base model (OpenAI, vLLM, alignjax.serve):
        --config.eval.judges.llm.generation.backend=openai --config.eval.judges.llm.generation.model=gpt-4o
    python -m alignjax.run --config experiments/ditto.py:smoke   # the toy task's user and SFT model, for tests

Files (JSON Lines):
  demonstrations   `prompt` (a string or chat messages) and `demonstration` (your answer), 1-10 rows;
  held-out         `prompt` and `demonstration` (your answer to it: the judge's reference), for the comparison.

Stages: the SFT warm-up on the demonstrations (at most 30 steps at 3e-5, cosine after a 20% warm-up, stopped once
a step's loss is below 1.0) -> pi_0 (`runs/ditto_user_sft`); DITTO from pi_0 (4 iterations of 10 DPO steps at
1e-6, constant after a 25% warm-up, beta 0.05, 10 samples of up to 1,024 tokens per demonstration, 24 pairs per
step) (`runs/ditto_user`); the comparison on the held-out prompts (`runs/ditto_user_eval/report.md`): zero-shot
and few-shot prompting of the base model, SFT and DITTO, each compared with SFT by a pairwise LLM judge that is
shown your held-out answer as the reference (LLMBar's reference strategy with your answer in place of the judge's
own; the paper asked GPT-4 the same), in both orders. The one base-model path moves every stage and system that
starts from it; the one demonstrations path moves the warm-up, DITTO and the few-shot pool. The reference
implementation trains LoRA adapters (r 32, alpha 64 on q/k/v/o); here all weights train, with the frozen pi_0
beside the policy, so a 7B model needs the memory of full fine-tuning.
"""

from ml_collections import FieldReference

from alignjax.configs import ditto as recipe
from alignjax.configs import parse_variant, run_dir, toy
from alignjax.data import sft_data_config
from alignjax.eval import judge, prompt_set
from alignjax.generation import generation_config

BASE_MODEL = "/path/to/your/chat_model"  # placeholders: the command line sets them
DEMONSTRATIONS = "/path/to/your/demonstrations.jsonl"
HELD_OUT = "/path/to/your/held_out.jsonl"


def get_config(arg=None):
    variant = parse_variant(arg)
    prefix = "smoke_" if variant.smoke else ""
    base = FieldReference(BASE_MODEL)  # one value: the warm-up's start, the prompting systems and the judge
    data = sft_data_config(seq_len=2048, batch_size=8)  # the reference implementation's max_length
    data.update(source="json", path=DEMONSTRATIONS, eval_fraction=0.0)  # every demonstration trains
    warmup = recipe.warmup(base, data, run_dir(f"{prefix}ditto_user_sft"), lr=3e-5, steps=30, stop_below_loss=1.0)
    warmup.optim.update(schedule="cosine", warmup_steps=6, min_lr_ratio=0.0)
    warmup.train.rule_prompts = 0
    config = recipe.ditto(
        warmup,
        run_dir(f"{prefix}ditto_user"),
        lr=1e-6,
        iterations=4,
        prompts_per_iteration=10,
        max_prompt_len=512,
        max_new_tokens=1024,
        eval_prompts=0,
    )
    config.optim.warmup_steps = 10  # 25% of the 40 steps
    config.train.eval_every = 0  # the comparison evaluates
    comparison = recipe.comparison(
        config,
        base,
        prompt_set("json", HELD_OUT, "train"),
        run_dir(f"{prefix}ditto_user_eval"),
        shots=10,
        max_tokens=1024,
    )
    comparison.eval.judges.llm = judge(  # the paper's GPT-4 evaluation: which answer is closer to the user's
        "pairwise", strategy="reference", reference=True, generation=generation_config(model=base)
    )
    if variant.smoke:  # the toy task's user (answers in parentheses), from the toy SFT stage's model
        sft = toy.sft_stage(smoke=True)
        warmup.previous_stage = sft
        base.set(sft.train.get_ref("workdir") + "/hf")
        warmup.data.update(source="builtin", path="toy_user_style", seq_len=32)
        config.rl.update(prompts_per_iteration=8, max_prompt_len=24, max_new_tokens=12)
        comparison.eval.prompts.update(source="builtin", path="toy_user_style", split="test")
        comparison.eval.systems.few_shot.shots = 8
        for system in comparison.eval.systems.values():
            system.generation.max_tokens = 12
        recipe.shrink_to_smoke(comparison, prompts=4)
    return comparison
