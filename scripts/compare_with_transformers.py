"""Checks that alignjax reads a Hugging Face checkpoint exactly as `transformers` does.

Loads the same directory in both, compares next-token logits on a prompt, decodes greedily with each (ours: the
KV-cache sampler) and prints both continuations. Exits non-zero when they disagree, so it doubles as a check for
any checkpoint a researcher brings. Needs PyTorch (`pip install -e ".[test]"`).

    python scripts/compare_with_transformers.py --model /tmp/stories260K --prompt "Once upon a time" --new-tokens 40
"""

import argparse
import json
import sys

import jax.numpy as jnp
import numpy as np
import torch
import transformers

from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, generate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a local Hugging Face model directory")
    parser.add_argument("--prompt", default="", help="text to continue (BOS alone when empty)")
    parser.add_argument("--new-tokens", type=int, default=40)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs logit difference allowed")
    args = parser.parse_args()

    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    prompt_ids = tokenizer(args.prompt)["input_ids"] or [tokenizer.bos_token_id]
    theirs = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    ours = from_pretrained(args.model)

    with torch.no_grad():
        their_logits = theirs(torch.tensor([prompt_ids])).logits.numpy()
        their_tokens = theirs.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=args.new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )[0, len(prompt_ids) :].tolist()
    our_logits = np.asarray(ours(jnp.asarray([prompt_ids], jnp.int32)))
    sample = generate(ours, [prompt_ids], max_new_tokens=args.new_tokens, config=GREEDY, tokenizer=tokenizer)
    our_tokens = np.asarray(sample.tokens[0, : int(sample.lengths[0])]).tolist()

    max_diff = float(np.abs(our_logits - their_logits).max())
    same_tokens = our_tokens == their_tokens
    print(f"alignjax:     {tokenizer.decode(prompt_ids + our_tokens, skip_special_tokens=True)!r}")
    print(f"transformers: {tokenizer.decode(prompt_ids + their_tokens, skip_special_tokens=True)!r}")
    print(json.dumps({"max_abs_logit_diff": max_diff, "greedy_tokens_equal": same_tokens, "tokens": len(our_tokens)}))
    return 0 if same_tokens and max_diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
