"""Rollouts: the current policy answers a batch of prompts, and every answer is scored and compared with the reference.

A rollout of N = prompts x k answers holds, per answer, the token row the train step reads (the prompt
left-padded to `max_prompt_len`, then the answer's T = `max_new_tokens` slots), and per answer token its
log-prob under the sampling policy, under the frozen reference and, for PPO, the value model's estimate. Fixed
widths make every rollout the same shape, so the sampler, the scoring functions and the train step each compile
once for a whole run.

An answer ends at the first stop token (the tokenizer's EOS), which the sampler includes in it; an answer that
runs out of `max_new_tokens` first loses `missing_eos_penalty` from its reward.

The policy's log-probs are the sampler's own (under the model's temperature-1 distribution, the one the train
step differentiates), so no extra forward pass is spent on them; the reference's forward pass runs each prompt
once for its k answers.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax import sharding
from alignjax.data import pad_token_id
from alignjax.losses import token_logprobs
from alignjax.losses.kl import exact_kl, kl_per_token
from alignjax.models import Transformer
from alignjax.models.shared_prompt import shared_prompt_hidden_states
from alignjax.rl.prompts import Prompts
from alignjax.rl.rewards import Scorer
from alignjax.sampling import GREEDY, SamplingConfig, generate

ROW_KEYS = ("tokens", "positions", "segment_ids")
ANSWER_LOGPS_CHUNK = 16  # rows per data-parallel device in each call of `RolloutWorker.answer_logps`


def answer_hidden_states(model: Transformer, rows: dict, *, prompt_len: int, group_size: int = 1) -> jax.Array:
    """The final hidden states at the positions that predict each answer slot, [N, T, D]: the prompt's last slot
    and the answer's slots but its last.

    With `group_size` k > 1 the rows come in groups of k answers to one prompt (as a rollout lays them out), and
    each group's prompt runs through the model once (`shared_prompt_hidden_states`), with the same result.
    """
    if group_size == 1:
        h_NLD = model.hidden_states(rows["tokens"], rows["positions"], rows["segment_ids"])
        return h_NLD[:, prompt_len - 1 : -1]
    h_GPD, h_NTD = shared_prompt_hidden_states(model, rows, prompt_len=prompt_len, group_size=group_size)
    return jnp.concatenate([jnp.repeat(h_GPD[:, -1:], group_size, axis=0), h_NTD[:, :-1]], axis=1)


def answer_logits(params, rows: dict, *, graphdef: nnx.GraphDef, prompt_len: int, group_size: int = 1) -> jax.Array:
    """The logits that predict each answer slot, [N, T, V]: the LM head runs on those positions only (the prompt's
    other positions predict nothing an on-policy loss uses), as TRL's `logits_to_keep`. `group_size` as for
    `answer_hidden_states`."""
    model = nnx.merge(graphdef, params)
    return model.logits(answer_hidden_states(model, rows, prompt_len=prompt_len, group_size=group_size))


def response_logps(params, rows: dict, *, graphdef: nnx.GraphDef, prompt_len: int, group_size: int = 1) -> jax.Array:
    """log p(answer token t | prompt, answer before t) for every answer slot, [N, T] (meaningless past the end);
    `group_size` as for `answer_hidden_states`."""
    logits_NTV = answer_logits(params, rows, graphdef=graphdef, prompt_len=prompt_len, group_size=group_size)
    return token_logprobs(logits_NTV, rows["tokens"][:, prompt_len:])


def response_values(
    params, rows: dict, *, graphdef: nnx.GraphDef, prompt_len: int, group_size: int = 1
) -> jax.Array:
    """A value model's estimate for the state before each answer token, [N, T]; `group_size` as for
    `answer_hidden_states`."""
    critic = nnx.merge(graphdef, params)
    return critic.values(answer_hidden_states(critic.backbone, rows, prompt_len=prompt_len, group_size=group_size))


def answer_kl(params, ref_params, rows: dict, *, graphdef: nnx.GraphDef, prompt_len: int) -> jax.Array:
    """Each answer's exact KL(policy || reference), summed over its tokens, [N].

    At every answer position the KL is taken over the whole vocabulary (`losses.kl.exact_kl`, not estimated from
    the sampled token), so it measures how far the policy moved on the contexts it produces, without sampling
    noise.
    """
    logits_NTV = answer_logits(params, rows, graphdef=graphdef, prompt_len=prompt_len)
    ref_logits_NTV = answer_logits(ref_params, rows, graphdef=graphdef, prompt_len=prompt_len)
    return jnp.sum(exact_kl(logits_NTV, ref_logits_NTV) * rows["segment_ids"][:, prompt_len:], axis=-1)


_jit_answer_kl = jax.jit(answer_kl, static_argnames=("graphdef", "prompt_len"))
_jit_response_logps = jax.jit(response_logps, static_argnames=("graphdef", "prompt_len", "group_size"))
_jit_response_values = jax.jit(response_values, static_argnames=("graphdef", "prompt_len", "group_size"))


@dataclasses.dataclass
class Rollout:
    """N answers (answer j of prompt i at row i * k + j), as host arrays.

    rows: `tokens`, `positions`, `segment_ids`, [N, L] with L = prompt_len + T; padding has segment id 0.
    mask_NT: 1.0 on answer tokens (the stop token included), 0.0 after the end.
    logps_NT / ref_logps_NT: log-probs of the answer tokens under the sampling policy / the frozen reference.
    values_NT: the value model's estimates (an algorithm with a value model), else None.
    scores_N: the reward function's or model's score; rewards_N: the score less the missing-EOS penalty.
    stopped_N: whether the answer ended with a stop token; lengths_N: its tokens, stop token included.
    prompt_index_N: which of the iteration's prompts row n answers; answers: the decoded texts.
    """

    rows: dict[str, np.ndarray]
    prompt_len: int
    samples_per_prompt: int
    mask_NT: np.ndarray
    logps_NT: np.ndarray
    ref_logps_NT: np.ndarray
    values_NT: np.ndarray | None
    scores_N: np.ndarray
    rewards_N: np.ndarray
    stopped_N: np.ndarray
    lengths_N: np.ndarray
    prompt_index_N: np.ndarray
    answers: list[str]

    @property
    def num_prompts(self) -> int:
        return len(self.rewards_N) // self.samples_per_prompt

    @property
    def rewards_BK(self) -> np.ndarray:
        """The rewards of the K answers to each of the B prompts."""
        return self.rewards_N.reshape(self.num_prompts, self.samples_per_prompt)

    def kl_N(self) -> np.ndarray:
        """Each answer's summed log-ratio to the reference: the k1 estimate of its sequence KL."""
        return np.sum(kl_per_token(self.logps_NT, self.ref_logps_NT, "k1") * self.mask_NT, axis=1)


def token_rows(prompt_ids: list[list[int]], prompt_index_N, tokens_NT, lengths_N, prompt_len: int, pad_id: int):
    """Model inputs for prompt + answer rows: prompts left-padded to `prompt_len`, answers after them."""
    N, T = tokens_NT.shape
    tokens_NL = np.full((N, prompt_len + T), pad_id, np.int32)
    real_NL = np.zeros((N, prompt_len + T), bool)
    for n, p in enumerate(prompt_index_N):
        ids = prompt_ids[p]
        tokens_NL[n, prompt_len - len(ids) : prompt_len] = ids
        real_NL[n, prompt_len - len(ids) : prompt_len] = True
    tokens_NL[:, prompt_len:] = tokens_NT
    real_NL[:, prompt_len:] = np.arange(T) < np.asarray(lengths_N)[:, None]
    positions_NL = np.maximum(np.cumsum(real_NL, axis=1) - 1, 0).astype(np.int32)
    return {"tokens": tokens_NL, "positions": positions_NL, "segment_ids": real_NL.astype(np.int32)}


class RolloutWorker:
    """Samples answers from given policy params and scores them; holds what stays fixed over a run.

    Args:
      model: the policy (its structure; the params sampled with are passed to each call).
      ref_params: the frozen reference's params.
      scorer: the reward.
      tokenizer: stop token (EOS), pad token and decoding of answers.
      mesh: where params live; rollout rows are split over its data-parallel devices.
      max_prompt_len, max_new_tokens: the fixed widths of every rollout.
      sampling: the decoding strategy of rollouts (evaluation decodes greedily).
      missing_eos_penalty: subtracted from the reward of an answer that never emitted the stop token.
      critic_graphdef: the value model's structure, for PPO.
    """

    def __init__(
        self,
        model,
        ref_params,
        scorer: Scorer,
        tokenizer,
        mesh,
        *,
        max_prompt_len: int,
        max_new_tokens: int,
        sampling: SamplingConfig,
        missing_eos_penalty: float,
        critic_graphdef: nnx.GraphDef | None = None,
    ):
        self.model, self.graphdef = model, nnx.graphdef(model)
        self.ref_params, self.scorer, self.tokenizer, self.mesh = ref_params, scorer, tokenizer, mesh
        self.max_prompt_len, self.max_new_tokens = max_prompt_len, max_new_tokens
        self.sampling, self.missing_eos_penalty = sampling, missing_eos_penalty
        self.critic_graphdef = critic_graphdef
        self.pad_id = pad_token_id(tokenizer)

    def _sample(self, params, prompts: Prompts, rng, num_samples: int, sampling: SamplingConfig):
        return generate(
            self.model,
            prompts.token_ids,
            params,
            rng,
            max_new_tokens=self.max_new_tokens,
            config=sampling,
            num_samples=num_samples,
            tokenizer=self.tokenizer,
            pad_id=self.pad_id,
            mesh=self.mesh,
            length_bucket=self.max_prompt_len,
        )

    def _on_mesh(self, rows: dict, multiple: int) -> dict:
        """`rows` on the mesh with padding rows (segment id 0) up to a whole multiple of `multiple` rows on each
        data-parallel device (a prompt's group of answers, or a fixed chunk); results computed from them are cut
        back to the real rows."""
        extra = -len(rows["tokens"]) % (sharding.data_parallel_size(self.mesh) * multiple)
        return sharding.put_batch({k: np.pad(v, ((0, extra), (0, 0))) for k, v in rows.items()}, self.mesh)

    def _device_rows(self, prompts: Prompts, sample, group_size: int) -> tuple[dict, dict]:
        """A sample's rows as host arrays, and on the mesh (`_on_mesh`)."""
        tokens_NT, lengths_N = jax.device_get((sample.tokens, sample.lengths))
        prompt_len, pad_id = self.max_prompt_len, self.pad_id
        rows = token_rows(prompts.token_ids, sample.prompt_index, tokens_NT, lengths_N, prompt_len, pad_id)
        return rows, self._on_mesh(rows, group_size)

    def answer_logps(self, params, prompts: Prompts, prompt_index_N, tokens_NT, lengths_N) -> np.ndarray:
        """Each answer's log-prob under `params`, summed over its tokens (stop token included), [N]: for answers
        that no rollout of these params sampled (a user's demonstrations, or earlier samples under a new
        reference). Answer n answers prompt `prompt_index_N[n]` and has `lengths_N[n]` tokens of `tokens_NT[n]`.
        The rows go through in chunks of one size, so one program serves every call."""
        N, T = tokens_NT.shape
        chunk = ANSWER_LOGPS_CHUNK * sharding.data_parallel_size(self.mesh)
        rows = token_rows(prompts.token_ids, prompt_index_N, tokens_NT, lengths_N, self.max_prompt_len, self.pad_id)
        logps_NT = np.zeros((N, T), np.float32)
        for start in range(0, N, chunk):
            device_rows = self._on_mesh({k: v[start : start + chunk] for k, v in rows.items()}, ANSWER_LOGPS_CHUNK)
            logps = _jit_response_logps(params, device_rows, graphdef=self.graphdef, prompt_len=self.max_prompt_len)
            logps_NT[start : start + chunk] = jax.device_get(logps)[: min(chunk, N - start)]
        return np.sum(logps_NT * (np.arange(T) < np.asarray(lengths_N)[:, None]), axis=1)

    def collect(
        self, params, prompts: Prompts, rng: jax.Array, num_samples: int, critic_params=None
    ) -> tuple[Rollout, dict[str, float]]:
        """`num_samples` answers to each prompt, scored; also the seconds spent generating and scoring."""
        start = time.perf_counter()
        sample = self._sample(params, prompts, rng, num_samples, self.sampling)  # texts decoded: on the host
        generated = time.perf_counter()
        rows, device_rows = self._device_rows(prompts, sample, num_samples)
        prompt_values = [prompts.values[p] for p in sample.prompt_index]
        scores_N = self.scorer(prompt_values, sample.texts, device_rows)
        ref_logps_NT = _jit_response_logps(
            self.ref_params, device_rows, graphdef=self.graphdef, prompt_len=self.max_prompt_len, group_size=num_samples
        )
        values_NT = None
        if critic_params is not None:
            values_NT = _jit_response_values(
                critic_params, device_rows, graphdef=self.critic_graphdef, prompt_len=self.max_prompt_len,
                group_size=num_samples,
            )
        logps_NT, lengths_N, stopped_N, ref_logps_NT, values_NT = jax.device_get(
            (sample.logprobs, sample.lengths, sample.stopped, ref_logps_NT, values_NT)
        )
        N = len(lengths_N)
        ref_logps_NT, values_NT = ref_logps_NT[:N], None if values_NT is None else values_NT[:N]
        scored = time.perf_counter()
        mask_NT = (np.arange(self.max_new_tokens) < lengths_N[:, None]).astype(np.float32)
        rollout = Rollout(
            rows=rows,
            prompt_len=self.max_prompt_len,
            samples_per_prompt=num_samples,
            mask_NT=mask_NT,
            logps_NT=np.asarray(logps_NT) * mask_NT,
            ref_logps_NT=np.asarray(ref_logps_NT) * mask_NT,
            values_NT=None if values_NT is None else np.asarray(values_NT) * mask_NT,
            scores_N=scores_N,
            rewards_N=scores_N - self.missing_eos_penalty * ~np.asarray(stopped_N),
            stopped_N=np.asarray(stopped_N),
            lengths_N=np.asarray(lengths_N),
            prompt_index_N=sample.prompt_index,
            answers=sample.texts,
        )
        return rollout, {"generate_seconds": generated - start, "score_seconds": scored - generated}

    def greedy_scores(self, params, prompts: Prompts) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The evaluation of a policy: the scores of its greedy answers to `prompts`, each answer's exact KL to
        the reference (`answer_kl`), and the answers."""
        sample = self._sample(params, prompts, 0, 1, GREEDY)
        _, device_rows = self._device_rows(prompts, sample, 1)
        kl_N = _jit_answer_kl(
            params, self.ref_params, device_rows, graphdef=self.graphdef, prompt_len=self.max_prompt_len
        )
        scores_N = self.scorer(prompts.values, sample.texts, device_rows)
        return scores_N, np.asarray(jax.device_get(kl_N))[: len(prompts)], sample.texts
