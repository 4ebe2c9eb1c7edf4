"""The continuous-batching engine in-process: rows with different strategies share slots and answer as `generate`
does; stop strings end a sample at text level; the text is released only when no stop string can begin in it."""

import jax
import numpy as np
import pytest
from flax import nnx

from alignjax import sharding
from alignjax.data import load_builtin_tokenizer
from alignjax.data.tokenization import encode_chat_prompt
from alignjax.models import ModelConfig, init_model, state_shardings
from alignjax.sampling import GREEDY, SamplingConfig, generate
from alignjax.sampling import slots as slot_programs
from alignjax.sampling.engine import Engine, Request
from alignjax.sampling.text_stream import TextStream

STRATEGIES = [
    GREEDY,
    SamplingConfig(temperature=0.8, top_k=5),
    SamplingConfig(temperature=1.2, top_p=0.9),
    SamplingConfig(min_p=0.1),
]


@pytest.fixture(scope="module")
def toy():
    tokenizer = load_builtin_tokenizer("toy_instructions")
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, max_position_embeddings=128,
    )
    return init_model(cfg, seed=3), tokenizer


def _prompt(tokenizer, text):
    return encode_chat_prompt([{"role": "user", "content": text}], tokenizer, where="test")


@pytest.mark.slow
def test_mixed_strategies_in_three_slots_equal_generate(toy):
    model, tokenizer = toy
    prompts = [_prompt(tokenizer, t) for t in ("hello there", "abc", "write a long story about cats and dogs", "q")]
    budgets = [20, 13, 17, 9]
    requests = [
        Request(prompt=p, max_tokens=m, sampling=s, seed=7, n=2, stop_tokens=[tokenizer.eos_token_id], logprobs=0)
        for p, m, s in zip(prompts, budgets, STRATEGIES)
    ]
    engine = Engine(model, tokenizer, max_slots=3, decode_steps=3)  # 8 samples through 3 slots
    before = dict(slot_programs.TRACES)  # other engines in this process (an earlier test file's) counted too
    engine.run(requests)
    traced = {program: slot_programs.TRACES[program] - before[program] for program in before}
    for prompt, budget, strategy, request in zip(prompts, budgets, STRATEGIES, requests):
        out = generate(
            model, [prompt], rng=7, max_new_tokens=budget, config=strategy, num_samples=2, tokenizer=tokenizer
        )
        tokens_NT, lengths_N, logprobs_NT = jax.device_get((out.tokens, out.lengths, out.logprobs))
        for j, sample in enumerate(request.samples):
            assert sample.token_ids == tokens_NT[j, : lengths_N[j]].tolist()
            assert sample.text == out.texts[j]
            assert sample.finish_reason == ("stop" if out.stopped[j] else "length")
            np.testing.assert_allclose(sample.logprobs, logprobs_NT[j, : lengths_N[j]], atol=1e-5)
    stats = engine.stats()
    assert stats["reused_while_decoding"] > 0  # a freed slot took a waiting sample while others decoded
    assert traced == stats["shapes"]  # ... and compiled once per shape


def test_stop_string_ends_the_sample_before_it(toy):
    model, tokenizer = toy
    prompt = _prompt(tokenizer, "hello")
    (free,) = Engine(model, tokenizer, max_slots=1).run([Request(prompt=prompt, max_tokens=30)])
    text = free.samples[0].text
    stop = text[5:7]  # two characters (two tokens of this character-level tokenizer) from the middle
    (stopped,) = Engine(model, tokenizer, max_slots=1).run(
        [Request(prompt=prompt, max_tokens=30, stop_strings=[stop, "never"])]
    )
    sample = stopped.samples[0]
    assert sample.text == text[: text.index(stop)]
    assert sample.finish_reason == "stop"
    assert sample.token_ids == free.samples[0].token_ids[: text.index(stop) + len(stop)]


def test_text_is_released_only_when_no_stop_string_can_begin_in_it(tokenizer):
    stream = TextStream(tokenizer, tokenizer("ab", add_special_tokens=False)["input_ids"], stop_strings=["xyz"])
    released = []
    for character in "hello xy":
        assert not stream.add(tokenizer.convert_tokens_to_ids(character))
        released.append(stream.release())
    assert "".join(released) == "hello "  # "xy" may be the start of "xyz"
    assert stream.add(tokenizer.convert_tokens_to_ids("z"))
    assert stream.text == "hello "
    assert stream.release(final=True) == ""


def test_bad_requests_name_their_field(toy):
    model, tokenizer = toy
    engine = Engine(model, tokenizer, max_slots=1, context=32)
    with pytest.raises(ValueError, match="^max_tokens: 40 must be in \\[1, 28\\]"):
        engine.check(Request(prompt=[1, 2, 3, 4], max_tokens=40))
    with pytest.raises(ValueError, match="^prompt: 32 tokens leave no room"):
        engine.check(Request(prompt=[1] * 32, max_tokens=1))
    with pytest.raises(ValueError, match="^prompt: token ids \\[999\\]"):
        engine.check(Request(prompt=[999], max_tokens=1))


@pytest.mark.slow
def test_eight_devices_answer_as_one(toy):
    model, tokenizer = toy
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    # The same params, placed on the mesh as the rules say: drawing them again on it would compile another init
    # program (seconds on CPU) for what test_mesh.py checks, that `init_model` on a mesh draws the same values.
    graphdef, params = nnx.split(model)
    sharded = nnx.merge(graphdef, jax.device_put(params, state_shardings(params, mesh)))
    prompts = [_prompt(tokenizer, t) for t in ("hello there", "abc", "q")]

    def answers(model, mesh):
        requests = [Request(prompt=p, max_tokens=12, sampling=s, seed=2) for p, s in zip(prompts, STRATEGIES)]
        Engine(model, tokenizer, max_slots=4, mesh=mesh).run(requests)
        return [(r.samples[0].token_ids, r.samples[0].logprobs) for r in requests]

    for (tokens, logprobs), (tokens_8, logprobs_8) in zip(answers(model, None), answers(sharded, mesh)):
        assert tokens_8 == tokens
        np.testing.assert_allclose(logprobs_8, logprobs, atol=1e-5)


@pytest.mark.slow
def test_warm_up_compiles_every_shape_and_decoding_reads_only_the_window_it_needs(toy):
    _, tokenizer = toy
    cfg = ModelConfig(
        architecture="LlamaForCausalLM", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, max_position_embeddings=256,
    )
    model = init_model(cfg, seed=4)
    engine = Engine(model, tokenizer, max_slots=1, decode_steps=4, max_prefill=1)
    before = dict(slot_programs.TRACES)
    engine.warm_up()
    warmed = dict(slot_programs.TRACES)
    # admission: one prompt at a time in buckets 16 .. 256; decoding: one slot with windows 128 and 256
    assert engine.stats()["shapes"] == {"admit": 5, "decode_steps": 2}
    assert {p: warmed[p] - before[p] for p in warmed} == engine.stats()["shapes"]
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, len(tokenizer), size).tolist() for size in (110, 7)]
    budgets = [60, 20]  # the first answer crosses from the 128 window into the 256 one
    requests = [Request(prompt=p, max_tokens=m) for p, m in zip(prompts, budgets)]
    engine.run(requests)
    assert dict(slot_programs.TRACES) == warmed  # nothing compiled while serving
    for prompt, budget, request in zip(prompts, budgets, requests):
        out = generate(model, [prompt], max_new_tokens=budget, config=GREEDY, tokenizer=tokenizer)
        tokens_NT, lengths_N = jax.device_get((out.tokens, out.lengths))
        assert request.samples[0].token_ids == tokens_NT[0, : lengths_N[0]].tolist()
