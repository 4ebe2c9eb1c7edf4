"""How far can an LLM judge be trusted? LLMBar Natural (100 pairs, the better output labelled) judged with each of
LLMBar's prompting strategies, in both orders: accuracy, positional agreement, ties and unparsable replies, each
with a 95% bootstrap interval, beside what always picking the longer output would score.

    python -m alignjax.serve --model runs/toy_sft/hf --served-model-name judge &    # the judge, on port 8000
    python -m alignjax.run --config experiments/llmbar_meta_eval.py
    python -m alignjax.run --config experiments/llmbar_meta_eval.py \
        --config.eval.judge_model.base_url=https://api.openai.com/v1 --config.eval.judge_model.model=gpt-4o \
        --config.eval.judge_model.api_key_env=OPENAI_API_KEY           # any OpenAI-compatible endpoint
    python -m alignjax.run --config experiments/llmbar_meta_eval.py:local    # the judge in this process, no server
    python -m alignjax.run --config experiments/llmbar_meta_eval.py:smoke    # 4 pairs, the toy SFT model, for tests

The default judge is the quick start's toy model served by `alignjax.serve` (train it with the quick start's
first command): it runs offline, and a character-level model trained on string operations is no judge, so its
replies are mostly unparsable; the point of the default is the pipeline. `eval.judge_model` is shared by the five
judges (one per strategy); each judge's replies are cached, so a rerun or a killed run asks nothing twice.
"""

from alignjax.configs import parse_variant, run_dir, toy
from alignjax.eval import judge
from alignjax.eval.judge_prompts import PAIRWISE_STRATEGIES
from alignjax.generation import generation_config

LLMBAR = "../shared/data/llmbar_natural.json"  # the project's copy of LLMBar's Natural set


def get_config(arg=None):
    variant = parse_variant(arg, ("server", "local"), default="server")
    local = variant.method == "local" or variant.smoke
    sft = toy.sft_stage(variant.smoke) if local else None  # the toy SFT model in this process, trained when missing
    config = toy.evaluation_config("meta_eval", sft, labelled=LLMBAR)
    if local:
        shared = generation_config(model=sft.train.get_ref("workdir") + "/hf", max_slots=16)
    else:
        shared = generation_config(backend="openai", model="judge", base_url="http://127.0.0.1:8000/v1", api_key_env="")
    shared.max_tokens = 50  # LLMBar's budget for the verdict; temperature 0
    config.eval.judge_model = shared
    for strategy in PAIRWISE_STRATEGIES:
        generation = generation_config()
        for field in generation:
            generation[field] = shared.get_ref(field)  # one override of eval.judge_model moves every judge
        config.eval.judges[strategy] = judge("pairwise", strategy=strategy, generation=generation)
    config.train.workdir = run_dir("llmbar_meta_eval" + ("_local" if local else ""))
    if variant.smoke:
        config.eval.update(max_pairs=4, resamples=200, plots=False)
        shared.max_tokens = 4
        for strategy in PAIRWISE_STRATEGIES:
            config.eval.judges[strategy].auxiliary_max_tokens = (4, 4)
        config.train.workdir = run_dir("smoke_llmbar_meta_eval")
    return config
