"""Which tokens end a model's answer: what a checkpoint says, for every caller that samples answers from it."""

from __future__ import annotations

import os

import transformers


def answer_stop_tokens(model_dir: str, tokenizer) -> list[int]:
    """The generation config's EOS ids (chat models often list their end-of-turn token there, e.g. Llama 3's
    `<|eot_id|>`) and the tokenizer's EOS token."""
    ids = set()
    if os.path.exists(os.path.join(model_dir, transformers.utils.GENERATION_CONFIG_NAME)):
        eos = transformers.GenerationConfig.from_pretrained(model_dir).eos_token_id
        ids.update([eos] if isinstance(eos, int) else (eos or []))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
