"""DITTO on a real pretrained model: llama2.c's stories260K (TinyStories) learns a reader's style from 6 stories.

    python scripts/convert_llama2c.py --checkpoint ../shared/data/stories260K.bin \
        --tokenizer ../shared/data/tok512.bin --out runs/stories260K          # once: the model as a HF directory
    python -m alignjax.run --config experiments/ditto_stories.py
    python -m alignjax.run --config experiments/ditto_stories.py:smoke  # seconds-long stages, for tests

The reader (`stories_user_style`) wants every story to bring in "a little green frog named Pip" and to end with
"And Pip the frog smiled."; stories260K writes neither. Stages: the SFT warm-up on the 6 stories (plain text: the
opening sentence, then the story), stopped once its loss is below `STOP_BELOW_LOSS` (`runs/ditto_stories_sft`);
DITTO, 4 iterations of 10 DPO steps of 24 pairs, 10 samples of up to 128 tokens per story (`runs/ditto_stories`);
and the comparison on 48 held-out openings (`runs/ditto_stories_eval/report.md`): the model itself (zero-shot),
SFT and DITTO, greedy, by the share of stories with Pip (`stories_pip`) and with the reader's ending
(`stories_ending`), with 95% intervals. Few-shot prompting is left out: a base model is prompted with one text,
not a conversation of shots. Overriding the warm-up's `model.path` moves the zero-shot system with it.
"""

from ml_collections import FieldReference

from alignjax.configs import ditto as recipe
from alignjax.configs import parse_variant, run_dir
from alignjax.data import sft_data_config
from alignjax.eval import judge, prompt_set

STOP_BELOW_LOSS = 1.0  # the reference implementation's threshold


def get_config(arg=None):
    variant = parse_variant(arg)
    prefix = "smoke_" if variant.smoke else ""
    model = FieldReference(run_dir("stories260K"))  # one value: the warm-up's start and the zero-shot system
    data = sft_data_config(seq_len=160, batch_size=8)  # the longest story, opening included: 130 tokens
    data.update(source="builtin", path="stories_user_style", template="plain")
    warmup = recipe.warmup(
        model, data, run_dir(f"{prefix}ditto_stories_sft"), lr=1e-4, steps=60, stop_below_loss=STOP_BELOW_LOSS
    )
    warmup.train.rule_prompts = 0  # the rule check prompts with a chat template; the comparison stage measures it
    config = recipe.ditto(
        warmup,
        run_dir(f"{prefix}ditto_stories"),
        lr=3e-5,  # measured: 1e-4 ends more stories the reader's way but drifts (KL ~55 nats), 1e-3 breaks the model
        iterations=4,
        prompts_per_iteration=6,
        max_prompt_len=32,
        max_new_tokens=128,
        pairs_per_step=24,  # 4 per demonstration (the reference implementation: 3); 8 devices split it
    )
    config.rl.reward.function = "stories_ending"  # logged: how many samples (and held-out stories) end its way
    config.rl.eval_prompts = 48
    comparison = recipe.comparison(
        config,
        model,
        prompt_set("builtin", "stories_user_style", "test"),
        run_dir(f"{prefix}ditto_stories_eval"),
        shots=0,
        max_tokens=128,
        template="plain",
    )
    comparison.eval.judges.pip = judge("rule", function="stories_pip")
    comparison.eval.judges.ending = judge("rule", function="stories_ending")
    if variant.smoke:
        recipe.shrink_to_smoke(comparison, prompts=6)
    return comparison
