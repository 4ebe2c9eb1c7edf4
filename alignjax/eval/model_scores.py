"""Scores of answers read off models in this process: a reward model's value, and DPO's implicit reward.

Each (prompt, answer) is rendered as training renders a conversation (the chat template, the answer closed by
its end-of-turn token), so a reward model scores exactly what it was trained on: its value at the last token.
The implicit reward of a DPO policy is beta * (log pi(answer | prompt) - log pi_ref(answer | prompt)) (Rafailov
et al., 2023, eq. 5), the sum over the answer's tokens. Rows are batched by length (padded to a power of two from
64) so each batch shape compiles once; a conversation longer than the model's context keeps its last tokens (the
answer and the prompt's end), and the number cut is reported.
"""

from __future__ import annotations

import functools
import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
import transformers
from flax import nnx
from tqdm import tqdm

from alignjax.data.tokenization import encode_chat, pad_token_id
from alignjax.eval.prompt_sets import EvalPrompt
from alignjax.losses.token_logprobs import token_logprobs
from alignjax.models import from_pretrained, reward_model_from_pretrained
from alignjax.models.reward import last_token_values

log = logging.getLogger("alignjax.eval")
BATCH = 16
_MIN_LENGTH = 64


def _rows(prompts: list[EvalPrompt], answers: list[str], tokenizer, context: int) -> tuple[list, list, int]:
    """Per answer: token ids and the answer-token mask, left-cut to `context`; and how many rows were cut."""
    tokens, masks, cut = [], [], 0
    for prompt, answer in zip(prompts, answers):
        example = encode_chat(prompt.messages + [{"role": "assistant", "content": answer}], tokenizer, prompt.where)
        ids, mask = example.tokens_L, example.assistant_L.copy()
        mask[: len(ids) - int(np.argmax(mask[::-1] == 0))] = False  # the last assistant turn only: the answer
        cut += len(ids) > context
        tokens.append(ids[-context:])
        masks.append(mask[-context:])
    return tokens, masks, cut


def _batches(tokens: list, masks: list, pad: int):
    """Yields (indices, tokens_BL, mask_BL, segment_ids_BL) over length-sorted rows, L a power of two >= 64."""
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for start in range(0, len(order), BATCH):
        indices = order[start : start + BATCH]
        L = max(_MIN_LENGTH, 1 << (max(len(tokens[i]) for i in indices) - 1).bit_length())
        tokens_BL = np.full((BATCH, L), pad, np.int32)
        mask_BL = np.zeros((BATCH, L), bool)
        segment_ids_BL = np.zeros((BATCH, L), np.int32)
        for b, i in enumerate(indices):
            n = len(tokens[i])
            tokens_BL[b, :n], mask_BL[b, :n], segment_ids_BL[b, :n] = tokens[i], masks[i], 1
        yield indices, tokens_BL, mask_BL, segment_ids_BL


@functools.partial(jax.jit, static_argnames="graphdef")
def _rewards(params, tokens_BL, segment_ids_BL, *, graphdef):
    positions_BL = jnp.broadcast_to(jnp.arange(tokens_BL.shape[1]), tokens_BL.shape)
    values_BL = nnx.merge(graphdef, params)(tokens_BL, positions_BL, segment_ids_BL)
    return last_token_values(values_BL, segment_ids_BL)


@functools.partial(jax.jit, static_argnames="graphdef")
def _answer_logps(params, tokens_BL, mask_BL, segment_ids_BL, *, graphdef):
    """log p(answer | prompt) per row: the sum over answer tokens of each token's log-probability."""
    positions_BL = jnp.broadcast_to(jnp.arange(tokens_BL.shape[1]), tokens_BL.shape)
    logits_BLV = nnx.merge(graphdef, params)(tokens_BL, positions_BL, segment_ids_BL)
    logps_BL = token_logprobs(logits_BLV[:, :-1], tokens_BL[:, 1:])
    return jnp.sum(jnp.where(mask_BL[:, 1:], logps_BL, 0.0), axis=1)


class _Scorer:
    """A model loaded once, scoring batches of answers with `fn(params, tokens, mask, segments, graphdef=...)`."""

    def __init__(self, path: str, model, fn, max_length: int = 0):
        self.path, self.fn = path, fn
        self.context = min(max_length or model.config.max_position_embeddings, model.config.max_position_embeddings)
        self.graphdef, self.params = nnx.split(model)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)

    def __call__(self, prompts: list[EvalPrompt], answers: list[str]) -> np.ndarray:
        """One value per answer, [N], in input order."""
        tokens, masks, cut = _rows(prompts, answers, self.tokenizer, self.context)
        if cut:
            message = "%s: %d of %d conversations exceed %d tokens; their first tokens were cut"
            log.warning(message, self.path, cut, len(tokens), self.context)
        out = np.zeros(len(tokens), np.float64)
        batches = _batches(tokens, masks, pad_token_id(self.tokenizer))
        total = -(-len(tokens) // BATCH)
        for indices, tokens_BL, mask_BL, segment_ids_BL in tqdm(
            batches, self.path, total, disable=not sys.stderr.isatty()
        ):
            values_B = self.fn(self.params, tokens_BL, mask_BL, segment_ids_BL, graphdef=self.graphdef)
            out[indices] = np.asarray(jax.device_get(values_B))[: len(indices)]
        return out


def reward_model_scorer(path: str, max_length: int = 0) -> _Scorer:
    """The reward model at `path` (ours or a `*ForSequenceClassification` directory): its value of each answer."""

    def rewards(params, tokens_BL, mask_BL, segment_ids_BL, *, graphdef):
        return _rewards(params, tokens_BL, segment_ids_BL, graphdef=graphdef)

    return _Scorer(path, reward_model_from_pretrained(path), rewards, max_length)


def logp_scorer(path: str, max_length: int = 0) -> _Scorer:
    """The causal LM at `path`: log p(answer | prompt) of each answer."""
    return _Scorer(path, from_pretrained(path), _answer_logps, max_length)


def implicit_reward_scorer(policy: str, reference: str, beta: float, max_length: int = 0):
    """DPO's implicit reward beta * (log pi(y|x) - log pi_ref(y|x)) of each answer."""
    policy_logps, reference_logps = logp_scorer(policy, max_length), logp_scorer(reference, max_length)
    return lambda prompts, answers: beta * (policy_logps(prompts, answers) - reference_logps(prompts, answers))
