"""Serves a model over OpenAI's HTTP API, with continuous batching.

    python -m alignjax.serve --model runs/dpo_toy/export --port 8000
    python -m alignjax.serve --model DIR --max-slots 64 --max-context 1024 --api-key secret --mesh 1,1,2

Endpoints: POST /v1/chat/completions (the tokenizer's chat template), POST /v1/completions, GET /v1/models,
GET /health, and GET /stats (the engine's counters and compilations). Query it with `curl` or the `openai` client
(`base_url="http://localhost:8000/v1"`); the model's name is the directory's name unless --served-model-name says
otherwise. SIGTERM (or Ctrl-C) stops admitting requests, lets those in flight finish for --shutdown-timeout
seconds, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

PROG = "python -m alignjax.serve"


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line, without the usage block, and exits with status 2 as argparse does."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every flag's default."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--model", metavar="DIR", required=True, default=argparse.SUPPRESS,
                        help="a local Hugging Face model directory (config.json, safetensors, tokenizer files)")
    parser.add_argument("--served-model-name", metavar="NAME", default=None,
                        help="the name clients put in `model` (default: the directory's name)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-slots", metavar="N", type=int, default=32, help="requests decoding at once")
    parser.add_argument("--max-context", metavar="N", type=int, default=None,
                        help="tokens per slot, prompt and answer together (default: max_position_embeddings)")
    parser.add_argument("--max-queue", metavar="N", type=int, default=256,
                        help="requests waiting for a slot; beyond it the server answers 429 with Retry-After")
    parser.add_argument("--decode-steps", metavar="N", type=int, default=4,
                        help="decode steps per compiled call: more amortise the host's work, fewer admit sooner")
    parser.add_argument("--max-prefill", metavar="N", type=int, default=8,
                        help="waiting prompts prefilled together in one call")
    parser.add_argument("--warmup", choices=("first", "all"), default="first",
                        help="compile before serving: the 'first' request's programs only (a quick start; other "
                        "shapes compile when first needed, and that request waits), or 'all' the engine can run "
                        "(every prompt batch and bucket, every active slot count and cache window: no client waits "
                        "for XLA, steady latency; the count grows with --max-context)")
    parser.add_argument("--mesh", metavar="D,F,T", default=None,
                        help="data,fsdp,tensor sizes of the device mesh (one may be -1: the rest); default one device")
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    parser.add_argument("--api-key", default=os.environ.get("ALIGNJAX_API_KEY"),
                        help="require 'Authorization: Bearer KEY' on /v1 (default: $ALIGNJAX_API_KEY, else none)")
    parser.add_argument("--shutdown-timeout", metavar="S", type=float, default=30.0,
                        help="seconds in-flight requests get to finish after SIGTERM")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    minimums = {"--max-slots": (args.max_slots, 1), "--decode-steps": (args.decode_steps, 1),
                "--max-prefill": (args.max_prefill, 1),
                "--max-queue": (args.max_queue, 0), "--port": (args.port, 0)}
    for flag, (value, minimum) in minimums.items():
        if value < minimum:
            parser.error(f"{flag} must be >= {minimum}, got {value}")
    if args.mesh is not None:
        sizes = args.mesh.split(",")
        if len(sizes) != 3 or not all(s.strip().lstrip("-").isdigit() for s in sizes):
            parser.error(f"--mesh takes three comma-separated sizes data,fsdp,tensor, got {args.mesh!r}")
        args.mesh = [int(s) for s in sizes]
    from alignjax.config_errors import ConfigError
    from alignjax.models import check_model_dir

    try:
        check_model_dir(args.model, field="--model")
    except ConfigError as e:
        parser.error(str(e))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alignjax").setLevel(args.log_level.upper())  # other libraries' chatter stays out
    from alignjax.serve.server import ServeError, serve

    try:
        serve(args)
    except ServeError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
