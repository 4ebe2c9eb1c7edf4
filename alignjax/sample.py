"""Sample from a Hugging Face model directory on the command line, streaming the text as it is generated.

    python -m alignjax.sample --model /tmp/stories260K --prompt "Once upon a time" --temperature 0.8 --top-p 0.9
    python -m alignjax.sample --model DIR --prompt "Hi" --prompt "Bye" --num-samples 3 --seed 1
    python -m alignjax.sample --model DIR --chat --prompt "Write a haiku about JAX" --temperature 0

One prompt with one sample streams token by token; several are printed when all are done. A text that ran out of
--max-new-tokens before its end-of-text token is followed by a line "[cut: reached --max-new-tokens=N]". A
summary line (tokens, seconds, tokens/s, compile included, how many texts were cut) goes to stderr, as does a
warning when a prompt and its budget run past the positions the model was trained on.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import jax
import numpy as np
import transformers

from alignjax.config_errors import ConfigError
from alignjax.data import DataError
from alignjax.data.tokenization import encode_chat_prompt
from alignjax.host_memory import keep_freed_host_memory
from alignjax.models import CheckpointError, ModelConfigError, check_model_dir, from_pretrained
from alignjax.sampling import SamplingConfig, generate
from alignjax.sampling.generate import continuation_text

PROG = "python -m alignjax.sample"
DTYPES = ("float32", "bfloat16", "float16")  # the compute dtypes the models take
# XLA's CPU backend has no float16 matmul: "The precision 'F16_F16_F32' is not supported by dot_general on CPU".
_UNSUPPORTED_DTYPES = {"cpu": ("float16",)}


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


def runnable_dtypes() -> list[str]:
    """The compute dtypes a model runs in on this machine's JAX backend."""
    return [d for d in DTYPES if d not in _UNSUPPORTED_DTYPES.get(jax.default_backend(), ())]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default."""


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line, without the usage block, and exits with status 2 as argparse does."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, each checked: a bad value or model directory exits with one line on stderr and status 2."""
    dtypes = runnable_dtypes()
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument(
        "--model",
        metavar="DIR",
        required=True,
        default=argparse.SUPPRESS,
        help="a local Hugging Face model directory (config.json, safetensors weights, tokenizer files)",
    )
    parser.add_argument(
        "--prompt",
        metavar="TEXT",
        action="append",
        required=True,
        default=argparse.SUPPRESS,
        help="text to continue; repeat for several",
    )
    parser.add_argument("--chat", action="store_true", help="wrap each prompt as a user turn with the chat template")
    parser.add_argument(
        "--max-new-tokens",
        metavar="N",
        type=int,
        default=128,
        help="new tokens per sample, at least 1; a text that reaches it is marked [cut: ...]. Not capped at the "
        "model's max_position_embeddings: past it, a warning",
    )
    parser.add_argument("--temperature", metavar="T", type=float, default=1.0, help=">= 0; 0 decodes greedily")
    parser.add_argument("--top-k", metavar="K", type=int, default=0, help=">= 0; 0: off")
    parser.add_argument("--top-p", metavar="P", type=float, default=1.0, help="in (0, 1]; 1: off")
    parser.add_argument("--min-p", metavar="P", type=float, default=0.0, help="in [0, 1]; 0: off")
    parser.add_argument("--num-samples", metavar="N", type=int, default=1, help="samples per prompt, at least 1")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples")
    parser.add_argument(
        "--dtype",
        metavar="DTYPE",
        default="float32",
        help=f"compute dtype; on this machine's {jax.default_backend()}: {', '.join(dtypes)}",
    )
    args = parser.parse_args(argv)
    error = _invalid(args, dtypes)
    if error:
        parser.error(error)
    try:
        check_model_dir(args.model, field="--model")
    except ConfigError as e:
        parser.error(str(e))
    return args


def _invalid(args: argparse.Namespace, dtypes: list[str]) -> str | None:
    """The first bad flag value, said in one line, or None. (NaN fails every range.)"""
    rules = [
        (args.max_new_tokens >= 1, f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"),
        (args.num_samples >= 1, f"--num-samples must be >= 1, got {args.num_samples}"),
        (args.temperature >= 0, f"--temperature must be >= 0 (0 decodes greedily), got {args.temperature}"),
        (args.top_k >= 0, f"--top-k must be >= 0 (0: off), got {args.top_k}"),
        (0 < args.top_p <= 1, f"--top-p must be in (0, 1] (1: off), got {args.top_p}"),
        (0 <= args.min_p <= 1, f"--min-p must be in [0, 1] (0: off), got {args.min_p}"),
        (
            args.dtype in dtypes,
            f"--dtype {args.dtype} does not run on this machine's {jax.default_backend()}; "
            f"choose one of {', '.join(dtypes)}",
        ),
    ]
    return next((message for ok, message in rules if not ok), None)


def _warn_past_trained_positions(prompts: list[list[int]], max_new_tokens: int, max_positions: int) -> None:
    """Says on stderr, before the wait, when a sample can run past the positions the model was trained on."""
    longest = max(len(p) for p in prompts)
    if longest + max_new_tokens <= max_positions:
        return
    within = f"; --max-new-tokens {max_positions - longest} stays within" if longest < max_positions else ""
    print(
        f"warning: {longest} prompt tokens + --max-new-tokens={max_new_tokens} = {longest + max_new_tokens} "
        f"positions, past the model's max_position_embeddings={max_positions}: the text may degrade beyond it "
        f"(the budget is not capped{within})",
        file=sys.stderr,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    config = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p)
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    try:
        if args.chat:
            prompts = [
                encode_chat_prompt([{"role": "user", "content": p}], tokenizer, where=f"--prompt {i}")
                for i, p in enumerate(args.prompt)
            ]
        else:
            prompts = [tokenizer(p)["input_ids"] for p in args.prompt]
        model = from_pretrained(args.model, dtype=args.dtype)
    except (DataError, ModelConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _warn_past_trained_positions(prompts, args.max_new_tokens, model.config.max_position_embeddings)
    separator = "\n" if args.chat else ""  # a chat answer starts on its own line; a continuation runs on
    cut_marker = f"[cut: reached --max-new-tokens={args.max_new_tokens}]"
    streaming = len(prompts) == 1 and args.num_samples == 1
    if streaming:
        print(tokenizer.decode(prompts[0], skip_special_tokens=True), end=separator, flush=True)
    started = time.perf_counter()
    stream = TextStreamer(tokenizer, prompts[0]) if streaming else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_position_embeddings")  # said above, before the wait
        out = generate(
            model,
            prompts,
            rng=args.seed,
            max_new_tokens=args.max_new_tokens,
            config=config,
            num_samples=args.num_samples,
            tokenizer=tokenizer,
            stream=stream,
        )
    lengths, stopped = jax.device_get((out.lengths, out.stopped))
    seconds = time.perf_counter() - started
    if streaming:
        print()
        if not stopped[0]:
            print(cut_marker)
    else:
        for row, text in enumerate(out.texts):
            prompt_text = tokenizer.decode(prompts[out.prompt_index[row]], skip_special_tokens=True)
            header = f"--- prompt {out.prompt_index[row]}, sample {row % args.num_samples}"
            print(f"{header}\n{prompt_text}{separator}{text}")
            if not stopped[row]:
                print(cut_marker)
    total, cut = int(lengths.sum()), int((~stopped).sum())
    print(
        f"[{total} tokens in {seconds:.2f}s, {total / seconds:.1f} tokens/s, compile included; "
        f"{cut} of {len(stopped)} texts cut by --max-new-tokens]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    keep_freed_host_memory()  # JAX is imported but has not started its threads yet
    sys.exit(main())
