"""Serving throughput and latency of `alignjax.serve` against `transformers serve`, with and without its continuous
batching: the same checkpoint, the same prompts, the same request lengths, over HTTP, one run.

The other benchmarks time a framework's own loop; this one times what a client of an OpenAI-compatible server sees.
The parent process (the load generator; it imports neither torch nor jax) runs the module again as a "prepare"
worker (`harness.prepare_workdir`), which saves into a temporary directory:

  the model:      the `--model` Llama of `harness.LLAMAS` from the fixed torch seed (`peers.save_llama`: random
                  init, eos 1, pad 0; "25m": vocab 8000, hidden 512, 6 layers), float32, HF format;
  its tokenizer:  `peers.id_tokenizer` (one whitespace-separated word "t<id>" per token id, so a prompt's text
                  tokenises back to exactly its ids) with a chat template that writes the messages' contents and
                  nothing else, so both servers serve chat completions of the same prompt ids;
  the prompts:    token ids drawn uniformly from [2, vocab) (numpy seed 1234), each prompt's length uniform in
                  [ceil(L/2), L] for L = `--prompt-len`; every request a server process sees, warm-up or timed, has
                  a prompt of its own (none repeats, so no prefix cache can skip a prefill), and every server gets
                  the same ones in the same order.

Then each of `--servers` in turn is started as a subprocess on a free loopback port, waited for (GET /health),
measured at each `--concurrency` level and stopped (SIGTERM; SIGKILL after 60 s); `--repeats` times, alternating,
each run a fresh server process:

  alignjax:         `python -m alignjax.serve --model DIR --max-slots 32 --max-context L+T --warmup all` (every
                    shape compiled before the port opens; T = `--max-tokens`:
                    a slot holds a whole request; the checkpoint's max_position_embeddings is 2048);
  transformers:     `transformers serve DIR --device cpu --dtype float32` (requests run one at a time, each a
                    `model.generate` call on one inference thread);
  transformers-cb:  the same with `--continuous-batching` (paged attention with its default cache settings, which
                    on CPU reserve several GiB: see `server_peak_rss_mib`).

Both load the checkpoint from the local directory (HF_HUB_OFFLINE=1) and use torch's / XLA's default threads (all
cores). At concurrency c the load generator (asyncio and httpx, the `openai` client's HTTP library, in one thread)
first sends one untimed round of c simultaneous requests of `--warmup-tokens` new tokens (compilations for that shape
happen there), then keeps c streams busy in a closed loop, each sending its next request as soon as its last one
ended, until `--requests` (default: 2c, at least 8) requests are done. Every request is a streaming chat completion
(`stream=true`, `stream_options.include_usage`) of one user message, `temperature=0` (greedy), `max_tokens=T`.

Measured per request: the time to first token (TTFT: from sending the request to the first chunk that carries
generated text; transformers sends a chunk with the role alone first, which does not count), the latency (to the
end of the stream), the time per output token after the first (TPOT, from when the server sends its tokens:
alignjax sends several per decode call), and its completion tokens from the stream's usage (the number of text
chunks where a server sends no usage: `tokens_from` says which). Per (server, concurrency) one JSON line:
`tokens_per_s` = all completion tokens / the wall time from the first request sent to the last one finished, TTFT /
latency / TPOT p50 and p99 (linear interpolation; with few requests p99 is close to the max), `short_responses` =
requests that stopped before T tokens (a server stops at EOS, which has no portable switch to ignore; the random
model rarely emits it, and throughput counts the tokens actually generated, so a nonzero count only says the work
differed), `prompt_tokens_ok` (the server counted each prompt's tokens as prepared), `server_cpu_util_cores` and
`client_cpu_util_cores` (CPU seconds of the server process / this load generator per wall second over the timed
requests: on a small machine the client competes for the same cores), `server_peak_rss_mib`, and
`compilations_during_run` where the server reports them (alignjax's GET /stats; should be 0 after the warm-up).

Every record has its `repeat`; each (server, concurrency)'s best run (highest tokens/s) goes into the ratios. Then,
per concurrency, a ratio line alignjax / the best transformers variant there (highest tokens/s): tokens/s,
TTFT p50 / p99 and latency p50 / p99 (for times, below 1 is better); and a goal line for the highest concurrency:
alignjax's tokens/s against transformers' best anywhere (goal: >= 3x) and its p99 latency against transformers'
lowest p99 at that concurrency (goal: no worse).

    python -m benchmarks.serve                    # 25m; 1, 8, 32 streams; all three servers (~4 min on 2 cores)
    python -m benchmarks.serve --repeats 3 --max-tokens 64
    python -m benchmarks.serve --model tiny --requests 4 --concurrency 1,2 --max-tokens 8     # a quick smoke run
    python -m benchmarks.serve --servers transformers,transformers-cb --concurrency 8

Results with machine and date go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from benchmarks import harness
from benchmarks.harness import DATA_SEED, LLAMAS, cpu_s, load_json, pick, save_json

SERVERS = ("alignjax", "transformers", "transformers-cb")
PEERS = ("transformers", "transformers-cb")
MAX_SLOTS = 32  # alignjax.serve's --max-slots: the highest concurrency of the default run
CHAT_TEMPLATE = "{%- for message in messages -%}{{ message['content'] }}{%- endfor -%}"
STARTUP_TIMEOUT_S = 900  # a busy 2-core machine loads torch / compiles XLA slowly
STOP_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 1800


def _levels(text: str) -> list[int]:
    """`--concurrency`: comma-separated, deduplicated and sorted."""
    levels = sorted({int(c) for c in text.split(",") if c})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError(f"need positive concurrency levels, got {text!r}")
    return levels


def _servers(text: str) -> list[str]:
    servers = list(dict.fromkeys(s for s in text.split(",") if s))
    unknown = [s for s in servers if s not in SERVERS]
    if not servers or unknown:
        raise argparse.ArgumentTypeError(f"choose servers from {','.join(SERVERS)}, got {text!r}")
    return servers


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(LLAMAS), default="25m", help="the harness.LLAMAS shape to serve")
    parser.add_argument("--servers", type=_servers, default=",".join(SERVERS), help=f"from {','.join(SERVERS)}")
    parser.add_argument("--concurrency", type=_levels, default="1,8,32", help="comma-separated concurrent streams")
    parser.add_argument(
        "--requests", type=int, default=None, help="timed requests per concurrency level (default: 2c, at least 8)"
    )
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens each request asks for (T)")
    parser.add_argument("--prompt-len", type=int, default=64, help="the longest prompt, in tokens (L)")
    parser.add_argument("--warmup-tokens", type=int, default=4, help="new tokens of each untimed warm-up request")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per server (a fresh process each), alternating; the ratios use each server's best run at each "
        "concurrency, the usual way to see through a busy machine",
    )
    parser.add_argument("--log-dir", default=None, help="keep each server's log here (default: only shown on failure)")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)  # "prepare"
    parser.add_argument("--_workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args._worker:
        if min(args.max_tokens, args.prompt_len, args.warmup_tokens, args.repeats) < 1:
            parser.error("need --max-tokens, --prompt-len, --warmup-tokens and --repeats >= 1")
        if args.requests is not None and args.requests < max(args.concurrency):
            parser.error(f"--requests ({args.requests}) < the highest --concurrency: some streams would stay idle")
    return args


def requests_at(args: dict, concurrency: int) -> int:
    """Timed requests at `concurrency` streams: `--requests`, or 2 per stream and at least 8."""
    return args["requests"] or max(8, 2 * concurrency)


# ---------------------------------------------------------------------------------------------------------------
# Prepare (a subprocess: torch and transformers stay out of the load generator).


def prepare(workdir: str, args: argparse.Namespace) -> dict:
    """Writes the model, its tokenizer and the prompts into `workdir`; returns the run's settings."""
    import numpy as np
    import transformers

    from benchmarks import peers

    model_dir = os.path.join(workdir, "model")
    max_positions = max(args.prompt_len + args.max_tokens, 2048)
    model = peers.save_llama(model_dir, LLAMAS[args.model], max_positions)
    vocab = model.config.vocab_size
    tokenizer = peers.id_tokenizer(vocab)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(model_dir)

    # One prompt per request, warm-up rounds and timed requests alike, handed out in the order the servers use them.
    count = sum(c + requests_at(vars(args), c) for c in args.concurrency)
    rng = np.random.default_rng(DATA_SEED)
    lengths = rng.integers(math.ceil(args.prompt_len / 2), args.prompt_len + 1, size=count)
    prompts = [rng.integers(2, vocab, size=n).tolist() for n in lengths]
    texts = [peers.ids_to_text(ids) for ids in prompts]

    # The saved tokenizer renders and tokenises each prompt back to its ids, as the servers will.
    saved = transformers.AutoTokenizer.from_pretrained(model_dir)
    for text, ids in zip(texts[:8], prompts[:8]):
        rendered = saved.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        got = rendered["input_ids"] if isinstance(rendered, dict | transformers.BatchEncoding) else rendered
        if list(got) != ids:
            raise SystemExit(f"the saved tokenizer does not give back the prompt's ids: {got[:8]}... vs {ids[:8]}...")
    save_json(workdir, "prompts.json", {"texts": texts, "lengths": [int(n) for n in lengths]})
    return dict(
        model=args.model,
        vocab=vocab,
        n_params=peers.n_params(model),
        max_positions=max_positions,
        prompt_len_mean=round(float(np.mean(lengths)), 1),
        **pick(args, "servers", "concurrency", "max_tokens", "prompt_len", "warmup_tokens", "repeats"),
        requests={str(c): requests_at(vars(args), c) for c in args.concurrency},
        versions=f"torch {_version('torch')}, transformers {transformers.__version__}, jax {_version('jax')}",
        cpus=len(os.sched_getaffinity(0)),
    )


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------------------------------------------------------
# The servers: their command lines, start, health, stop.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(server: str, model_dir: str, port: int, settings: dict) -> list[str]:
    """The command line that serves `model_dir` on 127.0.0.1:`port`."""
    if server == "alignjax":
        return [
            sys.executable, "-m", "alignjax.serve", "--model", model_dir, "--host", "127.0.0.1", "--port", str(port),
            "--max-slots", str(MAX_SLOTS), "--max-context", str(settings["prompt_len"] + settings["max_tokens"]),
            "--warmup", "all", "--log-level", "warning",
        ]  # fmt: skip
    # The console script next to this interpreter (the venv's), else the one on PATH.
    script = os.path.join(os.path.dirname(sys.executable), "transformers")
    command = [script if os.path.exists(script) else shutil.which("transformers") or "transformers", "serve"]
    command += [model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    command += ["--log-level", "warning"]
    return command + (["--continuous-batching"] if server == "transformers-cb" else [])


@dataclasses.dataclass
class Running:
    name: str
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    log_path: str

    def log_tail(self, chars: int = 4000) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-chars:]

    def get(self, path: str, timeout: float = 5.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.load(response)


def start_server(server: str, settings: dict, workdir: str, log_dir: str) -> Running:
    """`server` serving the prepared model on a free loopback port; returns once GET /health answers 200."""
    port = _free_port()
    command = server_command(server, os.path.join(workdir, "model"), port, settings)
    log_path = os.path.join(log_dir, f"{server}-{port}.log")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    running = Running(server, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{server} exited with status {process.returncode} while starting:\n{running.log_tail()}")
        try:
            running.get("/health", timeout=2)
            return running
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(0.5)
    stop_server(running)
    raise SystemExit(f"{server} did not answer /health within {STARTUP_TIMEOUT_S} s:\n{running.log_tail()}")


def stop_server(running: Running) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `STOP_TIMEOUT_S`."""
    process = running.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads, and its waited-for children) of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # the fields after the command name, from the state on
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def _process_peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return float("nan")


def _compilations(running: Running) -> int | None:
    """The server's count of compiled programs, where it reports one (alignjax's GET /stats)."""
    try:
        stats = running.get("/stats")
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None
    value = stats.get("compilations") if isinstance(stats, dict) else None
    if isinstance(value, dict):  # per program
        value = sum(v for v in value.values() if isinstance(v, int))
    return value if isinstance(value, int) else None


# ---------------------------------------------------------------------------------------------------------------
# The load generator.


@dataclasses.dataclass
class Result:
    sent: float  # perf_counter when the request was sent
    first: float | None  # ... when the first generated text arrived
    done: float  # ... when the stream ended
    completion_tokens: int
    prompt_tokens: int | None
    tokens_from: str  # "usage", or "chunks" when the stream carried no usage
    finish_reason: str | None


async def stream_request(client, model: str, prompt: str, max_tokens: int) -> Result:
    """One streaming greedy chat completion; the SSE stream parsed by hand (the `openai` client's pydantic models per
    chunk cost CPU that the servers need on a small machine)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first, chunks, usage, finish_reason = None, 0, None, None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RuntimeError(f"HTTP {response.status_code}: {text[:1000]}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"error in the stream: {chunk['error']}")
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter()
                finish_reason = choice.get("finish_reason") or finish_reason
            usage = chunk.get("usage") or usage
    done = time.perf_counter()
    if usage is not None:
        return Result(sent, first, done, usage["completion_tokens"], usage.get("prompt_tokens"), "usage", finish_reason)
    return Result(sent, first, done, chunks, None, "chunks", finish_reason)


def _http_library():
    """httpx, the `openai` client's HTTP library (httpx2 in its newer releases, which have no httpx)."""
    try:
        import httpx
    except ImportError:
        import httpx2 as httpx
    return httpx


async def run_level(base_url: str, model: str, prompts: list[str], concurrency: int, max_tokens: int):
    """`concurrency` streams in a closed loop over `prompts` (one request each, in order); returns the results in
    request order and the wall seconds from the first request sent to the last one finished."""
    httpx = _http_library()
    pending = iter(enumerate(prompts))
    results: list[Result | None] = [None] * len(prompts)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:

        async def stream():
            for i, prompt in pending:  # a shared iterator: each stream takes the next request when it is free
                results[i] = await stream_request(client, model, prompt, max_tokens)

        t0 = time.perf_counter()
        await asyncio.gather(*(stream() for _ in range(concurrency)))
        wall_s = time.perf_counter() - t0
    return results, wall_s


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between the closest ranks (numpy's default)."""
    values = sorted(values)
    rank = (len(values) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _spread(name: str, values: list[float], scale: float = 1.0, places: int = 4) -> dict:
    """`name`_p50 and `name`_p99 of `values` (times `scale`)."""
    if not values:
        return {f"{name}_p50": None, f"{name}_p99": None}
    return {f"{name}_p{q}": round(scale * _percentile(values, q), places) for q in (50, 99)}


def level_record(server: str, settings: dict, concurrency: int, results: list[Result], wall_s: float, extra: dict):
    """One (server, concurrency) record from its requests' results."""
    max_tokens = settings["max_tokens"]
    tokens = sum(r.completion_tokens for r in results)
    tpot = [(r.done - r.first) / (r.completion_tokens - 1) for r in results if r.first and r.completion_tokens > 1]
    return {
        **harness.record_head(server, settings),
        "concurrency": concurrency,
        "requests": len(results),
        "max_tokens": max_tokens,
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall_s, 1),
        "requests_per_s": round(len(results) / wall_s, 3),
        "wall_s": round(wall_s, 3),
        **_spread("ttft_s", [r.first - r.sent for r in results if r.first is not None]),
        **_spread("latency_s", [r.done - r.sent for r in results]),
        **_spread("tpot_ms", tpot, scale=1e3, places=2),
        "short_responses": sum(r.completion_tokens < max_tokens for r in results),
        "tokens_from": ",".join(sorted({r.tokens_from for r in results})),
        **extra,
    }


def bench_server(
    server: str, settings: dict, workdir: str, log_dir: str, prompts: list[str], repeat: int = 0
) -> list[dict]:
    """Starts `server` (a fresh process), measures it at each concurrency level (printing each record with its
    `repeat`), stops it."""
    running = start_server(server, settings, workdir, log_dir)
    records = []
    try:
        models = running.get("/v1/models").get("data") or []
        model = models[0]["id"] if models else os.path.join(workdir, "model")
        cursor = 0
        for concurrency in settings["concurrency"]:
            warmup = prompts[cursor : cursor + concurrency]
            timed = prompts[cursor + concurrency : cursor + concurrency + settings["requests"][str(concurrency)]]
            cursor += len(warmup) + len(timed)
            asyncio.run(run_level(running.url, model, warmup, concurrency, settings["warmup_tokens"]))
            compilations0 = _compilations(running)
            cpu0, server_cpu0 = cpu_s(), _process_cpu_s(running.process.pid)
            results, wall_s = asyncio.run(run_level(running.url, model, timed, concurrency, settings["max_tokens"]))
            client_cpu, server_cpu = cpu_s() - cpu0, _process_cpu_s(running.process.pid) - server_cpu0
            compilations1 = _compilations(running)
            lengths = settings["prompt_lengths"][cursor - len(timed) : cursor]
            extra = {
                "prompt_tokens_ok": all(r.prompt_tokens in (None, n) for r, n in zip(results, lengths)),
                "finish_reasons": ",".join(sorted({str(r.finish_reason) for r in results})),
                "compilations_during_run": None if compilations0 is None else compilations1 - compilations0,
                "server_cpu_util_cores": round(server_cpu / wall_s, 2),
                "client_cpu_util_cores": round(client_cpu / wall_s, 2),
                "loadavg_1m": round(os.getloadavg()[0], 2),
                "server_peak_rss_mib": round(_process_peak_rss_mib(running.process.pid), 1),
            }
            record = {"repeat": repeat, **level_record(server, settings, concurrency, results, wall_s, extra)}
            print(json.dumps(record), flush=True)
            records.append(record)
    except Exception:
        print(f"--- {server}'s log (last lines) ---\n{running.log_tail()}", file=sys.stderr, flush=True)
        raise
    finally:
        stop_server(running)
    return records


# ---------------------------------------------------------------------------------------------------------------
# The ratios.


def ratio_records(records: list[dict], repeats: int = 1) -> list[dict]:
    """Per concurrency, alignjax / the best (highest tokens/s) transformers variant; then the goal line at the
    highest concurrency alignjax ran. `records`: one per (server, concurrency), each its best of `repeats` runs."""
    ours = {r["concurrency"]: r for r in records if r["framework"] == harness.OURS}
    theirs = [r for r in records if r["framework"] in PEERS]
    out = []
    for concurrency, record in ours.items():
        peers_here = [r for r in theirs if r["concurrency"] == concurrency]
        if not peers_here:
            continue
        best = max(peers_here, key=lambda r: r["tokens_per_s"])
        out.append(
            {
                "model": record["model"],
                "concurrency": concurrency,
                "ratio": f"alignjax/{best['framework']}",
                "of": f"best of {','.join(r['framework'] for r in peers_here)} by tokens/s; each best of {repeats}",
                **harness.ratios(
                    record,
                    best,
                    tokens_per_s_ratio="tokens_per_s",
                    ttft_p50_ratio="ttft_s_p50",
                    ttft_p99_ratio="ttft_s_p99",
                    latency_p50_ratio="latency_s_p50",
                    latency_p99_ratio="latency_s_p99",
                ),
            }
        )
    if ours and theirs:
        top = max(ours)
        record = ours[top]
        best = max(theirs, key=lambda r: r["tokens_per_s"])
        peers_top = [r for r in theirs if r["concurrency"] == top]
        goal = {
            "model": record["model"],
            "goal": f"at {top} streams: >= 3x transformers serve's best tokens/s, p99 latency no worse",
            "tokens_per_s": record["tokens_per_s"],
            "peer_best_tokens_per_s": best["tokens_per_s"],
            "peer_best": f"{best['framework']} at {best['concurrency']} streams",
            "throughput_ratio": round(record["tokens_per_s"] / best["tokens_per_s"], 3),
            "throughput_goal_met": record["tokens_per_s"] >= 3 * best["tokens_per_s"],
            "of": f"best of {repeats}",
        }
        if peers_top:
            lowest = min(peers_top, key=lambda r: r["latency_s_p99"])
            goal.update(
                latency_s_p99=record["latency_s_p99"],
                peer_lowest_latency_s_p99=lowest["latency_s_p99"],
                peer_lowest_latency=f"{lowest['framework']} at {top} streams",
                latency_goal_met=record["latency_s_p99"] <= lowest["latency_s_p99"],
            )
        out.append(goal)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The command line.


def main(argv=None) -> None:
    args = parse_args(argv)
    if args._worker == "prepare":
        settings = prepare(args._workdir, argparse.Namespace(**load_json(args._workdir, "args.json")))
        save_json(args._workdir, "settings.json", settings)
        print(json.dumps(settings), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix=f"bench_serve_{args.model}_") as workdir:
        run_args = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        settings = harness.prepare_workdir(__spec__.name, workdir, run_args)
        print(json.dumps(settings), flush=True)
        prompts = load_json(workdir, "prompts.json")
        settings["prompt_lengths"] = prompts["lengths"]
        log_dir = args.log_dir or workdir
        os.makedirs(log_dir, exist_ok=True)
        best = {}  # (server, concurrency) -> its record of highest tokens/s over the repeats
        for repeat in range(args.repeats):
            for server in args.servers:
                for record in bench_server(server, settings, workdir, log_dir, prompts["texts"], repeat):
                    key = (server, record["concurrency"])
                    if key not in best or record["tokens_per_s"] > best[key]["tokens_per_s"]:
                        best[key] = record
        for record in ratio_records(list(best.values()), args.repeats):
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
