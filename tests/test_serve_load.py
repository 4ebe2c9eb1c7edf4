"""Continuous batching under load: 64 concurrent requests of mixed lengths and strategies from 16 client threads all
complete, greedy ones as in-process `generate` answers them, with slots refilled while others decode and each
program compiled once per shape."""

import concurrent.futures

import numpy as np
import pytest

from alignjax.data.tokenization import encode_chat_prompt
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, generate
from alignjax.sampling.generate import continuation_text

from conftest import save_toy_chat_model
from serving import running_server

# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

openai = pytest.importorskip("openai")

SLOTS = 8
REQUESTS = 64
NEAR_TIE = 1e-4  # a greedy choice between logits this close may differ with the batch's shape (float rounding)


def _request(i: int) -> dict:
    """Request i: prompts of 4 length classes (prompt buckets 16 to 128), budgets 4-43; even ones greedy with
    log-probabilities, odd ones sampled with a mix of temperature, top-k, top-p and min-p."""
    content = ("the cat sat on the mat. " * 5)[: [4, 20, 50, 100][i % 4]] + str(i)
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 4 + (i * 7) % 40, "seed": i}
    if i % 2 == 0:
        return {**body, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    return {
        **body,
        "temperature": [0.7, 1.0, 1.3][i % 3],
        "top_p": [1.0, 0.8][i % 2 and (i // 2) % 2],
        "extra_body": {"top_k": [0, 10][(i // 3) % 2], "min_p": [0.0, 0.05][(i // 5) % 2]},
    }


def test_64_concurrent_mixed_requests(tmp_path):
    directory = tmp_path / "toy"
    tokenizer = save_toy_chat_model(directory, max_positions=256, seed=5, width=64, layers=2)
    model = from_pretrained(str(directory))
    with running_server(directory, tmp_path, "--max-slots", str(SLOTS)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=120)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            ask = lambda i: client.chat.completions.create(model="toy", **_request(i))  # noqa: E731
            replies = list(pool.map(ask, range(REQUESTS)))
        stats = server.stats()
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in replies)
    greedy = range(0, REQUESTS, 2)
    prompts = [encode_chat_prompt(_request(i)["messages"], tokenizer, where="test") for i in greedy]
    budget = max(_request(i)["max_tokens"] for i in greedy)
    out = generate(model, prompts, config=GREEDY, max_new_tokens=budget, tokenizer=tokenizer)  # one compile
    tokens_NT, lengths_N = np.asarray(out.tokens), np.asarray(out.lengths)
    for row, (i, prompt) in enumerate(zip(greedy, prompts)):
        expected = tokens_NT[row, : min(lengths_N[row], _request(i)["max_tokens"])].tolist()
        served = replies[i].choices[0].logprobs.content
        assert replies[i].usage.prompt_tokens == len(prompt)
        for position, (token, item) in enumerate(zip(expected, served, strict=True)):
            if item.token != tokenizer.decode([token]):  # allowed only where the two best tokens tie
                best, second = (t.logprob for t in item.top_logprobs)
                assert best - second < NEAR_TIE, (i, position)
                break
        else:
            text = continuation_text(tokenizer, prompt, [t for t in expected if t != tokenizer.eos_token_id])
            assert replies[i].choices[0].message.content == text
    # continuous batching: freed slots were refilled while other requests were still decoding
    assert stats["requests"] == REQUESTS
    assert stats["reused_while_decoding"] >= REQUESTS - SLOTS - 8
    # compiled once per shape: each (program, shape) the engine ran compiled exactly once; the decode program's
    # shapes are powers of two of active slots (at most 4 of them up to 8 slots) by cache window (128, 256)
    assert stats["compilations"] == stats["shapes"]
    assert stats["shapes"]["decode_steps"] <= 4 * 2
