"""Sample from a Hugging Face model directory on the command line, streaming the text as it is generated.

    python -m alignjax.sample --model /tmp/stories260K --prompt "Once upon a time" --temperature 0.8 --top-p 0.9
    python -m alignjax.sample --model DIR --prompt "Hi" --prompt "Bye" --num-samples 3 --seed 1
    python -m alignjax.sample --model DIR --chat --prompt "Write a haiku about JAX" --temperature 0

One prompt with one sample streams token by token; several are printed when all are done. A summary line
(tokens, seconds, tokens/s, compile included) goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np
import transformers

from alignjax.data import DataError
from alignjax.data.tokenization import encode_chat_prompt
from alignjax.host_memory import keep_freed_host_memory
from alignjax.models import from_pretrained
from alignjax.sampling import SamplingConfig, generate
from alignjax.sampling.generate import continuation_text


class TextStreamer:
    """Prints row 0's new text as its tokens arrive. The whole continuation is decoded each time (after the
    prompt, see `continuation_text`), which keeps multi-byte characters and word-initial spaces right."""

    def __init__(self, tokenizer, prompt: list[int]):
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.tokens: list[int] = []
        self.printed = ""

    def __call__(self, tokens_N, emitted_N) -> None:
        if not bool(np.asarray(emitted_N)[0]):
            return
        self.tokens.append(int(np.asarray(tokens_N)[0]))
        text = continuation_text(self.tokenizer, self.prompt, self.tokens)
        if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
            sys.stdout.write(text[len(self.printed) :])
            sys.stdout.flush()
            self.printed = text


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", required=True, help="a local Hugging Face model directory (config, weights, tokenizer)"
    )
    parser.add_argument("--prompt", action="append", required=True, help="text to continue; repeat for several")
    parser.add_argument("--chat", action="store_true", help="wrap each prompt as a user turn with the chat template")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 decodes greedily")
    parser.add_argument("--top-k", type=int, default=0, help="0: off")
    parser.add_argument("--top-p", type=float, default=1.0, help="1: off")
    parser.add_argument("--min-p", type=float, default=0.0, help="0: off")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p)
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    model = from_pretrained(args.model, dtype=args.dtype)
    if args.chat:
        try:
            prompts = [
                encode_chat_prompt([{"role": "user", "content": p}], tokenizer, where=f"--prompt {i}")
                for i, p in enumerate(args.prompt)
            ]
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        prompts = [tokenizer(p)["input_ids"] for p in args.prompt]
    separator = "\n" if args.chat else ""  # a chat answer starts on its own line; a continuation runs on
    streaming = len(prompts) == 1 and args.num_samples == 1
    if streaming:
        print(tokenizer.decode(prompts[0], skip_special_tokens=True), end=separator, flush=True)
    started = time.perf_counter()
    stream = TextStreamer(tokenizer, prompts[0]) if streaming else None
    out = generate(
        model, prompts, rng=args.seed, max_new_tokens=args.max_new_tokens, config=config,
        num_samples=args.num_samples, tokenizer=tokenizer, stream=stream,
    )
    lengths = jax.device_get(out.lengths)
    seconds = time.perf_counter() - started
    if streaming:
        print()
    else:
        for row, text in enumerate(out.texts):
            prompt_text = tokenizer.decode(prompts[out.prompt_index[row]], skip_special_tokens=True)
            header = f"--- prompt {out.prompt_index[row]}, sample {row % args.num_samples}"
            print(f"{header}\n{prompt_text}{separator}{text}")
    total = int(lengths.sum())
    print(f"[{total} tokens in {seconds:.2f}s, {total / seconds:.1f} tokens/s, compile included]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    keep_freed_host_memory()  # JAX is imported but has not started its threads yet
    sys.exit(main())
