"""`generate`: prompts in, samples out: tokenisation, bucketing, padding and placement around the compiled decoder.

Prompts are left-padded to a multiple of `length_bucket` and the batch to a power of two (a multiple of the
mesh's data-parallel size), so a training loop whose prompts vary in number and length reuses a handful of
compiled programs instead of compiling per call.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

from alignjax import sharding
from alignjax.models.transformer import Transformer
from alignjax.sampling.decode import StreamFn, decode
from alignjax.sampling.strategies import SamplingConfig

GREEDY = SamplingConfig(temperature=0.0)
_SAMPLE = SamplingConfig()  # the default: temperature 1, no filters


@dataclasses.dataclass
class SampleOutput:
    """Samples over N = len(prompts) * num_samples rows; row i * num_samples + j is sample j of prompt i.

    Arrays stay on device (a training loop feeds them straight into its next step):
      tokens: [N, T] int32 generated tokens, the pad id after each row's end.
      logprobs: [N, T] log-probabilities of those tokens under the model's own distribution (temperature 1, no
        filters): what PPO ratios and DPO rewards are made of. 0 after the end.
      sampling_logprobs: [N, T] the same under the distribution actually sampled from (tempered, filtered).
      lengths: [N] tokens emitted per row, its stop token included.
      stopped: [N] whether the row ended on a stop token (False: it ran out of `max_new_tokens`).
      prompt_index: [N] which prompt each row continues (numpy).
      prompts: the prompts' token ids, as encoded.
      texts: the decoded continuations (stop and special tokens removed), when a tokenizer was given.
    """

    tokens: jax.Array
    logprobs: jax.Array
    sampling_logprobs: jax.Array
    lengths: jax.Array
    stopped: jax.Array
    prompt_index: np.ndarray
    prompts: list[list[int]]
    texts: list[str] | None = None


def generate(
    model: Transformer,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    params: nnx.State | None = None,
    rng: jax.Array | int = 0,
    *,
    max_new_tokens: int = 128,
    config: SamplingConfig = _SAMPLE,
    num_samples: int = 1,
    tokenizer=None,
    stop_tokens: Sequence[int] | Sequence[Sequence[int]] | None = None,
    pad_id: int | None = None,
    mesh=None,
    length_bucket: int = 32,
    stream: StreamFn = None,
) -> SampleOutput:
    """Samples continuations of `prompts` from `model` (with `params`, if given, in place of its own).

    Args:
      model: the policy; only its structure is used when `params` is given.
      prompts: texts (encoded with `tokenizer`, special tokens added as the tokenizer does) or token-id lists.
      params: parameters to sample with, e.g. a training state's current ones; used in place, not copied.
      rng: a PRNG key or an int seed. The same key gives the same samples; a prompt's samples do not depend on
        which other prompts share the batch.
      max_new_tokens: the budget per sample.
      config: the decoding strategy; the default samples at temperature 1, `GREEDY` decodes greedily.
      num_samples: samples per prompt (they share one prefill).
      tokenizer: a transformers tokenizer, for text prompts, decoded texts and the default stop/pad tokens.
      stop_tokens: token ids that end a sample: one list for all prompts or one list per prompt. Default: the
        tokenizer's EOS token, or none.
      pad_id: fills prompt padding and the tail of finished rows; default the tokenizer's pad (or EOS) token, or 0.
      mesh: the mesh the params live on; the batch is split over its data-parallel axes.
      length_bucket: prompts are padded to a multiple of this many tokens.
      stream: called on the host with (tokens_N, emitted_N) after each step (the CLI's streaming).
    """
    if num_samples < 1 or max_new_tokens < 1:
        raise ValueError(f"num_samples and max_new_tokens must be >= 1, got {num_samples} and {max_new_tokens}")
    graphdef, own_params = nnx.split(model)
    cfg = model.config
    token_lists = _encode(prompts, tokenizer, cfg.vocab_size)
    stop_lists = _stop_lists(stop_tokens, tokenizer, len(token_lists))
    pad_id = _pad_id(pad_id, tokenizer)
    longest = max(len(t) for t in token_lists)
    if longest + max_new_tokens > cfg.max_position_embeddings:
        warnings.warn(
            f"prompts of up to {longest} tokens + {max_new_tokens} new tokens exceed the model's "
            f"max_position_embeddings={cfg.max_position_embeddings}; positions beyond it were never trained",
            stacklevel=2,
        )
    data_parallel = 1 if mesh is None else sharding.data_parallel_size(mesh)
    batch = _batch_bucket(len(token_lists), data_parallel)
    length = length_bucket * math.ceil(longest / length_bucket)
    prompts_BP = np.full((batch, length), pad_id, np.int32)
    prompt_real_BP = np.zeros((batch, length), bool)
    prompt_real_BP[len(token_lists) :, -1] = True  # filler rows: one real (pad) token, so no row is empty
    for row, tokens in enumerate(token_lists):
        prompts_BP[row, length - len(tokens) :] = tokens
        prompt_real_BP[row, length - len(tokens) :] = True
    stop_tokens_BM = np.full((batch, max(1, *map(len, stop_lists))), -1, np.int32)
    for row, stops in enumerate(stop_lists):
        stop_tokens_BM[row, : len(stops)] = stops
    row_live_B = np.arange(batch) < len(token_lists)
    inputs = [prompts_BP, prompt_real_BP, row_live_B, stop_tokens_BM]
    if mesh is not None:
        inputs = [sharding.put_sharded(x, sharding.batch_sharding(mesh)) for x in inputs]
    out = decode(
        graphdef,
        own_params if params is None else params,
        *inputs,
        jax.random.key(rng) if isinstance(rng, int) else rng,
        max_new_tokens=max_new_tokens,
        config=config,
        num_samples=num_samples,
        pad_id=pad_id,
        mesh=mesh,
        stream=stream,
    )
    rows = len(token_lists) * num_samples
    result = SampleOutput(
        tokens=out["tokens_NT"][:rows],
        logprobs=out["logprobs_NT"][:rows],
        sampling_logprobs=out["sampling_logprobs_NT"][:rows],
        lengths=out["lengths_N"][:rows],
        stopped=out["stopped_N"][:rows],
        prompt_index=np.repeat(np.arange(len(token_lists)), num_samples),
        prompts=token_lists,
    )
    if tokenizer is not None:
        result.texts = decode_texts(tokenizer, result)
    return result


def decode_texts(tokenizer, out: SampleOutput) -> list[str]:
    """Each row's generated tokens as text, without its stop token or other special tokens."""
    tokens_NT, lengths_N, stopped_N = jax.device_get((out.tokens, out.lengths, out.stopped))
    return [
        continuation_text(tokenizer, out.prompts[p], row[: n - int(stop)].tolist())
        for row, n, stop, p in zip(tokens_NT, lengths_N, stopped_N, out.prompt_index)
    ]


def continuation_text(tokenizer, prompt: list[int], continuation: list[int]) -> str:
    """The text `continuation` adds after `prompt`.

    Decoded together with the prompt and cut after the prompt's text, because tokenizers decode a word piece
    differently at the start of a text (SentencePiece drops the leading space of "▁and").
    """
    prompt_text = tokenizer.decode(prompt, skip_special_tokens=True)
    full_text = tokenizer.decode(prompt + continuation, skip_special_tokens=True)
    if full_text.startswith(prompt_text):
        return full_text[len(prompt_text) :]
    return tokenizer.decode(continuation, skip_special_tokens=True)


def _encode(prompts, tokenizer, vocab_size: int) -> list[list[int]]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts, not one string; wrap it: [prompt]")
    if not prompts:
        raise ValueError("no prompts to sample from")
    token_lists = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            if tokenizer is None:
                raise ValueError(f"prompt {i} is text but no tokenizer was given; pass tokenizer= or token ids")
            prompt = tokenizer(prompt)["input_ids"]
        tokens = [int(t) for t in prompt]
        if not tokens:
            raise ValueError(f"prompt {i} is empty; every prompt needs at least one token (e.g. BOS)")
        bad = [t for t in tokens if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"prompt {i} has token ids {bad[:5]} outside the model's vocabulary [0, {vocab_size})")
        token_lists.append(tokens)
    return token_lists


def _stop_lists(stop_tokens, tokenizer, count: int) -> list[list[int]]:
    if stop_tokens is None:
        eos = None if tokenizer is None else tokenizer.eos_token_id
        return [[] if eos is None else [eos]] * count
    stop_tokens = list(stop_tokens)
    if all(isinstance(s, (int, np.integer)) for s in stop_tokens):
        return [[int(s) for s in stop_tokens]] * count
    if len(stop_tokens) != count:
        raise ValueError(f"stop_tokens has {len(stop_tokens)} lists for {count} prompts; give one per prompt")
    return [[int(s) for s in stops] for stops in stop_tokens]


def _pad_id(pad_id: int | None, tokenizer) -> int:
    if pad_id is not None:
        return pad_id
    if tokenizer is not None:
        for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
            if candidate is not None:
                return candidate
    return 0


def _batch_bucket(rows: int, data_parallel: int) -> int:
    """The smallest power of two >= rows, rounded up to a multiple of the data-parallel size."""
    power = 1 << (rows - 1).bit_length()
    return data_parallel * math.ceil(power / data_parallel)

