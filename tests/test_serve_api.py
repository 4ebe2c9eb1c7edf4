"""The server answers the official `openai` client exactly as the in-process sampler (and `transformers`) would."""

import jax
import numpy as np
import pytest

from alignjax.data.tokenization import encode_chat_prompt
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, SamplingConfig, generate

from conftest import save_toy_chat_model
from serving import running_server

# A real server in a subprocess, end to end: in the full suite, out of the quick tier (`-m "not slow"`).
pytestmark = pytest.mark.slow

openai = pytest.importorskip("openai")
transformers = pytest.importorskip("transformers")

KEY = "test-key"
QUESTIONS = ["hello there", "what is 2+2?", "write a long story about a cat who learns to fly over the sea"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    directory = tmp_path_factory.mktemp("toy_serve") / "toy"
    tokenizer = save_toy_chat_model(directory, max_positions=160, seed=4, width=64, layers=2)
    with running_server(directory, directory.parent, "--max-slots", "4", "--api-key", KEY) as server:
        yield server, from_pretrained(str(directory)), tokenizer


@pytest.fixture(scope="module")
def stories(stories260k_dir, tmp_path_factory):
    with running_server(stories260k_dir, tmp_path_factory.mktemp("stories_log"), "--max-slots", "2") as server:
        yield server, from_pretrained(str(stories260k_dir)), transformers.AutoTokenizer.from_pretrained(stories260k_dir)


def _client(server, key=KEY):
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def _full_forward_logprobs(model, prompt: list[int], answer: list[int]) -> np.ndarray:
    """log-softmax over the vocabulary at each answer token, from one forward pass over prompt + answer [T, V]."""
    logits = model(jax.numpy.asarray([prompt + answer]))[0, len(prompt) - 1 : -1]
    return np.asarray(jax.nn.log_softmax(logits))


def test_chat_greedy_equals_generate_with_exact_logprobs_and_usage(toy):
    server, model, tokenizer = toy
    client = _client(server)
    for question in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        reply = client.chat.completions.create(
            model="toy", messages=messages, max_tokens=24, temperature=0, logprobs=True, top_logprobs=3
        )
        prompt = encode_chat_prompt(messages, tokenizer, where="test")
        out = generate(model, [prompt], config=GREEDY, max_new_tokens=24, tokenizer=tokenizer)
        length = int(out.lengths[0])
        tokens = np.asarray(out.tokens[0, :length]).tolist()
        choice = reply.choices[0]
        assert choice.message.content == out.texts[0]
        assert [t.token for t in choice.logprobs.content] == [tokenizer.decode([t]) for t in tokens]
        assert choice.finish_reason == ("stop" if bool(out.stopped[0]) else "length")
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(prompt), length)
        assert reply.usage.total_tokens == len(prompt) + length
        expected_TV = _full_forward_logprobs(model, prompt, tokens)
        served = np.array([t.logprob for t in choice.logprobs.content])
        np.testing.assert_allclose(served, expected_TV[np.arange(length), tokens], atol=1e-4)
        top_served = np.array([[t.logprob for t in item.top_logprobs] for item in choice.logprobs.content])
        np.testing.assert_allclose(top_served, -np.sort(-expected_TV, axis=-1)[:, :3], atol=1e-4)


def test_stream_yields_the_same_text_and_usage(toy):
    server, _, _ = toy
    client = _client(server)
    request = dict(model="toy", messages=[{"role": "user", "content": QUESTIONS[2]}], max_tokens=40, temperature=0)
    whole = client.chat.completions.create(**request)
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_seeded_samples_with_filters_equal_generate(toy):
    server, model, tokenizer = toy
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    reply = _client(server).chat.completions.create(
        model="toy", messages=messages, max_tokens=16, temperature=0.8, top_p=0.9, n=3, seed=11,
        extra_body={"top_k": 20},
    )
    prompt = encode_chat_prompt(messages, tokenizer, where="test")
    config = SamplingConfig(temperature=0.8, top_k=20, top_p=0.9)
    out = generate(model, [prompt], rng=11, config=config, num_samples=3, max_new_tokens=16, tokenizer=tokenizer)
    assert [c.message.content for c in sorted(reply.choices, key=lambda c: c.index)] == out.texts
    assert len(set(out.texts)) > 1  # the samples differ: the seed reached every row


def test_models_lists_the_served_model(toy):
    server, _, _ = toy
    (card,) = _client(server).models.list().data
    assert card.id == "toy"
    assert card.model_extra["max_model_len"] == 160


def test_text_completion_of_stories260k_equals_generate_and_transformers(stories, stories260k_dir):
    server, model, tokenizer = stories
    prompt_text = "Once upon a time"
    reply = _client(server, key="unused").completions.create(
        model=stories260k_dir.name, prompt=prompt_text, max_tokens=40, temperature=0, logprobs=1
    )
    prompt = tokenizer(prompt_text)["input_ids"]
    out = generate(model, [prompt], config=GREEDY, max_new_tokens=40, tokenizer=tokenizer)
    tokens = np.asarray(out.tokens[0, : int(out.lengths[0])]).tolist()
    torch = pytest.importorskip("torch")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(stories260k_dir).eval()
    with torch.no_grad():
        hf_tokens = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=40)[0, len(prompt) :]
    hf_tokens = hf_tokens.tolist()[: len(tokens)]
    assert tokens == hf_tokens
    choice = reply.choices[0]
    assert choice.text == out.texts[0]
    assert choice.text.startswith(", there was a little girl named Lily")
    assert choice.logprobs.tokens == [tokenizer.decode([t]) for t in tokens]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(prompt), len(tokens))
    expected_TV = _full_forward_logprobs(model, prompt, tokens)
    np.testing.assert_allclose(choice.logprobs.token_logprobs, expected_TV[np.arange(len(tokens)), tokens], atol=1e-4)
