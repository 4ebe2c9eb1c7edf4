"""The sampler against transformers' `generate`, the model's own forward pass, and the distributions it samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from alignjax import sharding
from alignjax.models import from_pretrained
from alignjax.sampling import GREEDY, SamplingConfig, generate
from alignjax.sampling.decode import decode
from alignjax.sampling.strategies import choose_tokens, filtered_logits, first_argmax

from hf_tiny import ARCHITECTURES, save_hf_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NEW_TOKENS = 64
PROMPT_LENGTHS = (3, 11, 7, 20)


def hf_greedy_batch(hf_model, prompts: list[list[int]], new_tokens: int, pad_id: int) -> np.ndarray:
    """transformers' greedy continuation of a left-padded batch, never stopping early: [B, new_tokens]."""
    longest = max(map(len, prompts))
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(prompt)
        mask[row, longest - len(prompt) :] = 1
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            do_sample=False, eos_token_id=None, pad_token_id=pad_id,
        )
    return out[:, longest:].numpy()


def full_forward_logprobs(model, prompts: list[list[int]], continuations_NT: np.ndarray) -> np.ndarray:
    """log-softmax over the vocabulary at each continuation position, from one uncached forward pass: [N, T, V].

    Row n is prompts[n] followed by continuations_NT[n], right-padded (causal attention ignores what follows).
    """
    N, T = continuations_NT.shape
    longest = max(map(len, prompts))
    tokens_NL = np.zeros((N, longest + T), np.int32)
    for row, prompt in enumerate(prompts):
        tokens_NL[row, : len(prompt) + T] = list(prompt) + continuations_NT[row].tolist()
    logits_NLV = np.asarray(jax.nn.log_softmax(model(jnp.asarray(tokens_NL))))
    return np.stack([logits_NLV[row, len(p) - 1 : len(p) - 1 + T] for row, p in enumerate(prompts)])


def assert_same_greedy(model, prompts: list[list[int]], ours_NT: np.ndarray, theirs_NT: np.ndarray, atol=1e-4):
    """Equal greedy continuations, except that a row may part ways where its two choices are within float error.

    Two implementations (or two shardings) round differently in the last bits, so an argmax between near-equal
    logits may go either way on another machine. Each row must match up to its first difference, and there both
    tokens must be most likely to within `atol` in this model's own full forward pass; the rest of the row is free.
    """
    ours_NT, theirs_NT = np.asarray(ours_NT), np.asarray(theirs_NT)
    parted = [row for row in range(len(ours_NT)) if (ours_NT[row] != theirs_NT[row]).any()]
    if not parted:
        return
    logprobs_NTV = full_forward_logprobs(model, [prompts[row] for row in parted], ours_NT[parted])
    for i, row in enumerate(parted):
        t = int(np.argmax(ours_NT[row] != theirs_NT[row]))
        logprobs_V = logprobs_NTV[i, t]
        gaps = logprobs_V.max() - logprobs_V[[ours_NT[row, t], theirs_NT[row, t]]]
        assert (gaps < atol).all(), f"row {row} parts at step {t}: not a near-tie (gaps {gaps})"
    assert len(parted) <= len(ours_NT) // 2, f"rows {parted} part ways: more near-ties than chance explains"


def random_prompts(vocab_size: int, lengths=PROMPT_LENGTHS, seed: int = 0) -> list[list[int]]:
    rng = np.random.RandomState(seed)
    return [rng.randint(1, vocab_size, size=n).tolist() for n in lengths]


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def pair(request, tmp_path_factory):
    """A tiny random HF model and its alignjax twin; room for prompt + 64 new tokens (mistral's window is 32)."""
    directory = tmp_path_factory.mktemp(request.param)
    hf_model = save_hf_model(request.param, directory, max_position_embeddings=128)
    return hf_model, from_pretrained(str(directory))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llama")
    save_hf_model("llama", directory, max_position_embeddings=128)
    return from_pretrained(str(directory))


def test_greedy_equals_transformers_generate(pair):
    hf_model, model = pair
    prompts = random_prompts(model.config.vocab_size)
    ours = generate(model, prompts, max_new_tokens=NEW_TOKENS, config=GREEDY)
    theirs = hf_greedy_batch(hf_model, prompts, NEW_TOKENS, pad_id=0)
    assert_same_greedy(model, prompts, ours.tokens, theirs)
    assert np.asarray(ours.lengths).tolist() == [NEW_TOKENS] * len(prompts)
    assert not np.asarray(ours.stopped).any()


def test_greedy_equals_transformers_on_stories260k(stories260k_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(stories260k_dir)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(stories260k_dir).eval()
    model = from_pretrained(str(stories260k_dir))
    texts = ["Once upon a time", "The little dog ran to the park and saw a big", "Tom", "One day, Lily found a"]
    prompts = [tokenizer(text)["input_ids"] for text in texts]
    assert len(set(map(len, prompts))) == len(prompts)
    ours = generate(model, prompts, max_new_tokens=NEW_TOKENS, config=GREEDY, stop_tokens=[])
    theirs = hf_greedy_batch(hf_model, prompts, NEW_TOKENS, pad_id=tokenizer.eos_token_id)
    assert_same_greedy(model, prompts, ours.tokens, theirs)
    stories = generate(model, texts, max_new_tokens=NEW_TOKENS, config=GREEDY, tokenizer=tokenizer)
    print(stories.texts)
    assert stories.texts[0].startswith(", there was a little girl named Lily")


@pytest.mark.slow
@pytest.mark.parametrize(
    "config", [SamplingConfig(), SamplingConfig(temperature=0.7, top_k=5), GREEDY], ids=["t1", "t0.7-top5", "greedy"]
)
def test_logprobs_equal_full_forward(llama, config):
    prompts = random_prompts(llama.config.vocab_size, seed=1)
    greedy_NT = np.asarray(generate(llama, prompts, max_new_tokens=24, config=GREEDY).tokens)
    stop_tokens = list(range(3, llama.config.vocab_size, 24)) + [int(greedy_NT[0, 5])]
    out = generate(llama, prompts, rng=3, max_new_tokens=24, config=config, num_samples=2, stop_tokens=stop_tokens)
    tokens, logprobs, sampling_logprobs, lengths = jax.device_get(
        (out.tokens, out.logprobs, out.sampling_logprobs, out.lengths)
    )
    reference_NTV = full_forward_logprobs(llama, [prompts[i] for i in out.prompt_index], tokens)
    sampling_NTV = np.asarray(jax.nn.log_softmax(filtered_logits(jnp.asarray(reference_NTV), config)))
    for row, n in enumerate(lengths):
        steps = np.arange(n)
        np.testing.assert_allclose(logprobs[row, :n], reference_NTV[row, steps, tokens[row, :n]], atol=1e-4, rtol=0)
        assert (logprobs[row, n:] == 0).all() and (tokens[row, n:] == 0).all()
        if config.greedy:  # the chosen token is a most likely one (near-ties may go either way)
            chosen_T = reference_NTV[row, steps, tokens[row, :n]]
            np.testing.assert_array_less(reference_NTV[row, :n].max(-1) - chosen_T, 1e-4)
        else:
            np.testing.assert_allclose(sampling_logprobs[row, :n], sampling_NTV[row, steps, tokens[row, :n]], atol=1e-4)
    assert lengths.min() < 24  # some rows stopped early, so the masking after the end was exercised


def first_token_counts(model, prompt, config, samples=4000, rng=0):
    out = generate(model, [prompt], rng=rng, max_new_tokens=1, config=config, num_samples=samples)
    return np.bincount(np.asarray(out.tokens[:, 0]), minlength=model.config.vocab_size)


def chi_square_pvalue(counts, probs):
    """Pearson's test, with the unlikely tokens pooled into one bin so that every expected count is >= 5."""
    expected = probs * counts.sum()
    common = expected >= 5
    observed = np.append(counts[common], counts[~common].sum())
    expected = np.append(expected[common], expected[~common].sum())
    return scipy.stats.chisquare(observed, expected).pvalue


@pytest.mark.slow
def test_temperature_one_samples_the_softmax(llama):
    prompt = random_prompts(llama.config.vocab_size, lengths=(6,))[0]
    probs = np.exp(full_forward_logprobs(llama, [prompt], np.zeros((1, 1), np.int32))[0, 0]).astype(np.float64)
    probs /= probs.sum()
    assert chi_square_pvalue(first_token_counts(llama, prompt, SamplingConfig()), probs) > 1e-3
    # The test has the power to tell a different distribution apart: temperature 1.5 fails it.
    hotter = first_token_counts(llama, prompt, SamplingConfig(temperature=1.5))
    assert chi_square_pvalue(hotter, probs) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [SamplingConfig(top_k=3), SamplingConfig(top_p=0.5), SamplingConfig(min_p=0.2), SamplingConfig(top_k=8, top_p=0.7)],
    ids=["top_k", "top_p", "min_p", "top_k+top_p"],
)
def test_filters_never_emit_outside_their_set(llama, config):
    prompt = random_prompts(llama.config.vocab_size, lengths=(5,))[0]
    out = generate(llama, [prompt], rng=1, max_new_tokens=6, config=config, num_samples=256)
    tokens_NT = np.asarray(out.tokens)
    probs_NTV = np.exp(full_forward_logprobs(llama, [prompt] * len(tokens_NT), tokens_NT))
    for row, tokens in enumerate(tokens_NT):
        for t, token in enumerate(tokens):
            permitted = filter_set(probs_NTV[row, t], config, slack=FLOAT_SLACK)
            assert token in permitted, (row, t, token, sorted(permitted))
    # Every clearly allowed first token does get drawn (the sets are small), so the filter is not over-strict either.
    drawn = set(tokens_NT[:, 0].tolist())
    assert filter_set(probs_NTV[0, 0], config, slack=-FLOAT_SLACK) <= drawn
    assert drawn <= filter_set(probs_NTV[0, 0], config, slack=FLOAT_SLACK)


# A token within float error of a filter's threshold may go either way: the sampler (float32, its own order of
# summation) and this test's NumPy check round differently, and machines differ in the last bits.
FLOAT_SLACK = 1e-5


def filter_set(probs: np.ndarray, config: SamplingConfig, slack: float) -> set[int]:
    """The tokens a filter keeps, computed independently of the sampler's implementation.

    `slack` > 0 widens every threshold by that much (the tokens the sampler may emit); `slack` < 0 narrows it (the
    tokens it must be able to emit, whatever the rounding).
    """
    order = np.argsort(-probs)
    kept = list(order)
    if config.top_k:
        kth = probs[order[config.top_k - 1]]
        kept = [token for token in kept if probs[token] >= kth - slack]
    if config.top_p < 1.0:
        renormalised = probs[kept] / probs[kept].sum()
        cumulative_before = np.cumsum(renormalised) - renormalised
        kept = [token for token, before in zip(kept, cumulative_before) if before < config.top_p + slack]
    if config.min_p > 0:
        kept = [token for token in kept if probs[token] >= config.min_p * probs.max() - slack]
    return set(int(t) for t in kept)


def test_compiles_once_per_bucket(llama):
    """Different prompt counts and lengths within one bucket reuse the program; a new bucket compiles once."""
    vocab = llama.config.vocab_size
    before = decode._cache_size()
    generate(llama, random_prompts(vocab, (3, 9, 4)), max_new_tokens=8, config=SamplingConfig(top_k=4))
    generate(llama, random_prompts(vocab, (20, 1, 13), seed=2), rng=5, max_new_tokens=8, config=SamplingConfig(top_k=4))
    generate(llama, random_prompts(vocab, (7,) * 4, seed=3), rng=7, max_new_tokens=8, config=SamplingConfig(top_k=4))
    assert decode._cache_size() == before + 1
    generate(llama, random_prompts(vocab, (40,)), max_new_tokens=8, config=SamplingConfig(top_k=4))
    assert decode._cache_size() == before + 2


def test_same_key_same_samples(llama):
    prompts = random_prompts(llama.config.vocab_size)
    sample = lambda rng, prompts=prompts: np.asarray(  # noqa: E731
        generate(llama, prompts, rng=rng, max_new_tokens=16, num_samples=3).tokens
    )
    first = sample(jax.random.key(11))
    np.testing.assert_array_equal(first, sample(jax.random.key(11)))
    assert (first != sample(jax.random.key(12))).any()
    # A prompt's samples do not depend on the rest of the batch (nor on its padding to a bucket).
    np.testing.assert_array_equal(first[:3], sample(jax.random.key(11), prompts[:1]))


@pytest.mark.slow
def test_stop_tokens_per_row_and_early_exit(llama):
    prompts = random_prompts(llama.config.vocab_size)
    greedy = np.asarray(generate(llama, prompts, max_new_tokens=12, config=GREEDY).tokens)
    # Row 0 stops on its own 3rd greedy token (or an earlier copy of it), row 1 on its 1st; rows 2, 3 never stop.
    stops = [[int(greedy[0, 2])], [int(greedy[1, 0])], [], []]
    expected_lengths = [list(greedy[0]).index(stops[0][0]) + 1, 1, 12, 12]
    steps = []
    out = generate(
        llama, prompts, max_new_tokens=12, config=GREEDY, stop_tokens=stops, pad_id=1,
        stream=lambda tokens, emitted: steps.append(np.asarray(emitted).copy()),
    )
    assert np.asarray(out.lengths).tolist() == expected_lengths
    assert np.asarray(out.stopped).tolist() == [True, True, False, False]
    tokens = np.asarray(out.tokens)
    for row, n in enumerate(expected_lengths):
        np.testing.assert_array_equal(tokens[row, :n], greedy[row, :n])
        assert (tokens[row, n:] == 1).all()
    assert len(steps) == 12
    assert [int(s[:4].sum()) for s in steps] == [sum(n > t for n in expected_lengths) for t in range(12)]
    # When every row has stopped, the loop ends before the budget.
    steps.clear()
    out = generate(llama, prompts[:2], max_new_tokens=12, config=GREEDY, stop_tokens=stops[:2],
                   stream=lambda tokens, emitted: steps.append(1))
    assert len(steps) == expected_lengths[0] < 12 and np.asarray(out.lengths).tolist() == expected_lengths[:2]


def test_eight_devices_give_the_same_greedy_output(tmp_path):
    save_hf_model("llama", tmp_path, max_position_embeddings=128)
    prompts = random_prompts(96)
    single_model = from_pretrained(str(tmp_path))
    single = generate(single_model, prompts, max_new_tokens=NEW_TOKENS, config=GREEDY)
    mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
    sharded_model = from_pretrained(str(tmp_path), mesh=mesh)
    sharded = generate(sharded_model, prompts, max_new_tokens=NEW_TOKENS, config=GREEDY, mesh=mesh)
    assert_same_greedy(single_model, prompts, sharded.tokens, single.tokens)
    same = (np.asarray(sharded.tokens) == np.asarray(single.tokens)).all(-1)
    np.testing.assert_allclose(np.asarray(sharded.logprobs)[same], np.asarray(single.logprobs)[same], atol=1e-5)
    assert len(sharded.tokens.sharding.device_set) == 8


def test_params_from_outside_are_used(llama):
    """A training loop passes its current params; the model object only supplies the structure."""
    from flax import nnx

    prompts = random_prompts(llama.config.vocab_size)
    _, params = nnx.split(llama)
    zeroed = jax.tree.map(jnp.zeros_like, params)
    own = np.asarray(generate(llama, prompts, max_new_tokens=4, config=GREEDY).tokens)
    passed = generate(llama, prompts, params, max_new_tokens=4, config=GREEDY).tokens
    np.testing.assert_array_equal(np.asarray(passed), own)
    assert (np.asarray(generate(llama, prompts, zeroed, max_new_tokens=4, config=GREEDY).tokens) == 0).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(prompts=[[1, 2], []]), ValueError, "prompt 1 is empty"),
        (dict(prompts=[[1, 500]]), ValueError, r"prompt 0 has token ids \[500\] outside"),
        (dict(prompts=["hello"]), ValueError, "prompt 0 is text but no tokenizer"),
        (dict(prompts="hello"), TypeError, "not one string"),
        (dict(prompts=[[1], [2]], stop_tokens=[[3]]), ValueError, "1 lists for 2 prompts"),
        (dict(prompts=[[1]], num_samples=0), ValueError, "must be >= 1"),
    ],
)
def test_bad_input_is_named(llama, kwargs, error, message):
    with pytest.raises(error, match=message):
        generate(llama, **{"max_new_tokens": 2, **kwargs})


@pytest.mark.parametrize(
    "field, value, message",
    [("temperature", -1.0, "temperature"), ("top_k", -2, "top_k"), ("top_p", 0.0, "top_p"), ("min_p", 1.5, "min_p")],
)
def test_bad_sampling_config(field, value, message):
    with pytest.raises(ValueError, match=message):
        SamplingConfig(**{field: value})


def test_single_query_attention_equals_dot_product_attention():
    """The decode-step attention path (one query) computes what jax.nn.dot_product_attention does."""
    from alignjax.models.attention import _single_query_attention

    B, S, H, J, E = 3, 17, 8, 2, 16
    shapes = [(B, 1, H, E), (B, S, J, E), (B, S, J, E)]
    q, k, v = (jax.random.normal(jax.random.key(i), shape) for i, shape in enumerate(shapes))
    mask = jax.random.bernoulli(jax.random.key(3), 0.6, (B, 1, 1, S)).at[:, :, :, 0].set(True)
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(np.asarray(_single_query_attention(q, k, v, mask)), np.asarray(expected), atol=1e-5)


def test_choose_tokens_draws_what_jax_random_categorical_draws():
    keys_B = jax.random.split(jax.random.key(3), 64)
    logits_BV = jax.random.normal(jax.random.key(4), (64, 300)) * 3
    logits_BV = logits_BV.at[:, ::7].set(-jnp.inf)  # tokens a filter removed
    tokens_B, _ = choose_tokens(keys_B, logits_BV, SamplingConfig())
    expected_B = jax.vmap(jax.random.categorical)(keys_B, logits_BV)
    np.testing.assert_array_equal(tokens_B, expected_B)
    assert len(np.unique(np.asarray(tokens_B))) > 10  # many different draws, none of them filtered
    assert np.all(np.asarray(tokens_B) % 7 != 0)


def test_first_argmax_equals_argmax_with_ties():
    x_BV = jnp.asarray(np.random.default_rng(0).integers(0, 4, (200, 9)), jnp.float32)  # many ties
    x_BV = x_BV.at[0].set(-jnp.inf)
    np.testing.assert_array_equal(first_argmax(x_BV), jnp.argmax(x_BV, axis=-1))
