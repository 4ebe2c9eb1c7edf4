"""DITTO's pair sampler: the user's demonstrations and every iteration's samples, drawn into DPO batches.

DITTO (Shaikh et al. 2024) treats a demonstration as preferred over anything the policy writes for its prompt. Each
iteration t samples M answers per demonstration prompt from the current policy pi_t and keeps them; every update
step then draws `pairs_per_step` comparisons, each from one of three sources, all pairs of one demonstration's
prompt:

  online:       the demonstration over a sample of pi_t (the latest samples kept);
  replay:       the demonstration over a sample of an earlier pi_i;
  inter_model:  a sample of a later pi_i over a sample of an earlier pi_j (the policy improves along the way).

The reference implementation fixes the shares at 0.7 / 0.2 / 0.1 and lets a batch shrink when a source has too few
pairs; here the shares are `rl.algorithm.*_fraction`, and a step always holds `pairs_per_step` pairs (one shape,
one compilation): replay's and inter-model's counts are rounded from their shares, and online comparisons fill
the rest, so iteration 0, which has no earlier samples, holds online pairs only, as does a source switched off
(`replay=False`, `inter_model=False`). Within a step a source's pairs are drawn without replacement while it has
enough of them.

The reference model is pi_0 (the SFT warm-up's policy), never updated: each answer's summed reference log-prob is
taken once, when it enters the memory. The `update_reference` ablation makes pi_t the reference of iteration t, so
every kept answer's reference log-prob is taken again under it. `online=False` (the no-resampling ablation) keeps
only pi_0's samples. The memory's arrays are saved in every checkpoint (`state_dict`), so a resumed run draws the
pairs an uninterrupted one would.
"""

from __future__ import annotations

import itertools

import numpy as np
from ml_collections import ConfigDict

from alignjax.data import DataError
from alignjax.rl.batches import offline_rows
from alignjax.rl.demonstrations import Demonstrations, load_demonstrations
from alignjax.rl.prompts import Prompts
from alignjax.rl.rollout import Rollout, RolloutWorker, token_rows

SOURCES = ("online", "replay", "inter_model")


def source_counts(hyperparameters: ConfigDict, kept_iterations: int) -> dict[str, int]:
    """How many of a step's `pairs_per_step` pairs each source gives, with samples of `kept_iterations`
    iterations in the memory (replay and inter-model comparisons need two)."""
    pairs, earlier = hyperparameters.pairs_per_step, kept_iterations > 1
    replay = round(pairs * hyperparameters.replay_fraction) if hyperparameters.replay and earlier else 0
    inter = round(pairs * hyperparameters.inter_model_fraction) if hyperparameters.inter_model and earlier else 0
    return {"online": pairs - replay - inter, "replay": replay, "inter_model": inter}


def _draw(rng: np.random.Generator, total: int, count: int) -> np.ndarray:
    """`count` indices into `total` items: without replacement while there are enough."""
    if not count:
        return np.zeros(0, np.int64)
    return rng.choice(total, size=count, replace=count > total)


class DittoMemory:
    """The demonstrations and the samples of every iteration so far, with their reference log-probs.

    Args:
      demonstrations: the user's demonstrations (their prompts are what every iteration samples).
      hyperparameters: `rl.algorithm` (`pairs_per_step`, the fractions and the ablation switches).
      worker: the run's rollout worker: the reference's params and the log-probs of answers under given params.
      samples_per_prompt: M, the samples per demonstration in each iteration's rollout.
    """

    def __init__(
        self,
        demonstrations: Demonstrations,
        hyperparameters: ConfigDict,
        worker: RolloutWorker,
        samples_per_prompt: int,
    ):
        self.demonstrations, self.hyperparameters, self.worker = demonstrations, hyperparameters, worker
        D, T = len(demonstrations), worker.max_new_tokens
        self.demo_tokens_DT = np.full((D, T), worker.pad_id, np.int32)
        for d, ids in enumerate(demonstrations.answer_ids):
            self.demo_tokens_DT[d, : len(ids)] = ids
        self.demo_lengths_D = np.asarray([len(ids) for ids in demonstrations.answer_ids], np.int32)
        self.M = samples_per_prompt
        # per kept iteration: its number, answers [D, M, T], their lengths [D, M] and reference log-probs [D, M]
        self.iterations: list[int] = []
        self.tokens_IDMT = np.zeros((0, D, self.M, T), np.int32)
        self.lengths_IDM = np.zeros((0, D, self.M), np.int32)
        self.ref_logps_IDM = np.zeros((0, D, self.M), np.float32)
        self.demo_ref_logps_D = self._logps(worker.ref_params, self.demo_tokens_DT, self.demo_lengths_D)

    @classmethod
    def from_config(cls, config: ConfigDict, tokenizer, worker: RolloutWorker) -> DittoMemory:
        """The memory of a DITTO run: its demonstrations read from `config.data`.

        Raises:
          DataError: a bad demonstration row, or more demonstrations than `rl.prompts_per_iteration` (the prompts
            an iteration samples) allows, naming the first row beyond it.
        """
        rl = config.rl
        demonstrations, _ = load_demonstrations(config.data, tokenizer, rl.max_prompt_len, rl.max_new_tokens)
        budget = rl.prompts_per_iteration
        if len(demonstrations) > budget:
            raise DataError(
                f"{demonstrations.wheres[budget]}: demonstration {budget + 1} of {len(demonstrations)} is beyond the "
                f"sampler's budget: DITTO samples every demonstration's prompt each iteration, and "
                f"rl.prompts_per_iteration={budget}; raise it to {len(demonstrations)} or use fewer demonstrations"
            )
        return cls(demonstrations, rl.algorithm, worker, rl.samples_per_prompt)

    @property
    def prompts(self) -> Prompts:
        """What every iteration samples: each demonstration's prompt, in the file's order."""
        return self.demonstrations.prompts

    def _logps(self, params, tokens_NT: np.ndarray, lengths_N: np.ndarray) -> np.ndarray:
        """Summed log-probs under `params` of answers laid out [D], [D, M] or [I, D, M] (the demonstration axis
        first, or after the iteration axis), in the same layout."""
        shape, T = lengths_N.shape, tokens_NT.shape[-1]
        D = len(self.demonstrations)
        axis = 1 if len(shape) == 3 else 0
        prompt_index_N = np.broadcast_to(
            np.arange(D).reshape([-1 if a == axis else 1 for a in range(len(shape))]), shape
        )
        logps_N = self.worker.answer_logps(
            params, self.prompts, prompt_index_N.reshape(-1), tokens_NT.reshape(-1, T), lengths_N.reshape(-1)
        )
        return logps_N.reshape(shape).astype(np.float32)

    def add(self, iteration: int, rollout: Rollout, sampling_params) -> None:
        """Keeps iteration `iteration`'s samples (`rollout`, M answers to each demonstration's prompt, sampled with
        `sampling_params`); with `update_reference`, those params become the reference of every kept answer. With
        `online=False` only the first iteration's samples are kept."""
        hyperparameters = self.hyperparameters
        if not hyperparameters.online and self.iterations:
            return
        D, M, T = len(self.demonstrations), self.M, self.demo_tokens_DT.shape[1]
        order = np.argsort(rollout.prompt_index_N, kind="stable")  # answers grouped by demonstration, in order
        tokens_DMT = rollout.rows["tokens"][order, rollout.prompt_len :].reshape(D, M, T)
        lengths_DM = rollout.lengths_N[order].reshape(D, M).astype(np.int32)
        ref_logps_DM = np.sum(rollout.ref_logps_NT[order], axis=1).reshape(D, M).astype(np.float32)
        self.iterations.append(iteration)
        self.tokens_IDMT = np.concatenate([self.tokens_IDMT, tokens_DMT[None]])
        self.lengths_IDM = np.concatenate([self.lengths_IDM, lengths_DM[None]])
        self.ref_logps_IDM = np.concatenate([self.ref_logps_IDM, ref_logps_DM[None]])
        if hyperparameters.update_reference:
            self.demo_ref_logps_D = self._logps(sampling_params, self.demo_tokens_DT, self.demo_lengths_D)
            self.ref_logps_IDM = self._logps(sampling_params, self.tokens_IDMT, self.lengths_IDM)

    def minibatches(self, count: int, rng: np.random.Generator) -> tuple[list[dict[str, np.ndarray]], dict[str, int]]:
        """`count` update batches of `pairs_per_step` pairs each, drawn by `rng`, and how many pairs of a batch
        each source gave (`online_pairs`, `replay_pairs`, `inter_model_pairs`)."""
        counts = source_counts(self.hyperparameters, len(self.iterations))
        batches = [self._batch(counts, rng) for _ in range(count)]
        return batches, {f"{source}_pairs": counts[source] for source in SOURCES}

    def _batch(self, counts: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One [P, 2, L] DPO batch, chosen first, with its pairs' sources (`source_P`, indices into SOURCES, kept
        on the host) and the reference's summed log-probs (`ref_logps_BK`)."""
        I, D, M = len(self.iterations), len(self.demonstrations), self.M

        def demonstration(d):
            return d, self.demo_tokens_DT[d], self.demo_lengths_D[d], self.demo_ref_logps_D[d]

        def sample(i, d, m):
            return d, self.tokens_IDMT[i, d, m], self.lengths_IDM[i, d, m], self.ref_logps_IDM[i, d, m]

        pairs, sources = [], []
        for flat in _draw(rng, D * M, counts["online"]):
            d, m = divmod(int(flat), M)
            pairs.append((demonstration(d), sample(I - 1, d, m)))
        for flat in _draw(rng, (I - 1) * D * M, counts["replay"]):
            i, d, m = np.unravel_index(flat, (I - 1, D, M))
            pairs.append((demonstration(d), sample(i, d, m)))
        iteration_pairs = list(itertools.combinations(range(I), 2))  # (earlier, later) kept iterations
        for flat in _draw(rng, D * len(iteration_pairs) * M * M, counts["inter_model"]):
            d, k, m_later, m_earlier = np.unravel_index(flat, (D, len(iteration_pairs), M, M))
            earlier, later = iteration_pairs[k]
            pairs.append((sample(later, d, m_later), sample(earlier, d, m_earlier)))
        for source in SOURCES:
            sources += [SOURCES.index(source)] * counts[source]
        answers = [answer for pair in pairs for answer in pair]  # chosen, rejected, chosen, ...
        prompt_index_N = np.asarray([a[0] for a in answers])
        tokens_NT = np.stack([a[1] for a in answers])
        lengths_N = np.asarray([a[2] for a in answers])
        prompt_len, T = self.worker.max_prompt_len, tokens_NT.shape[1]
        rows = token_rows(self.prompts.token_ids, prompt_index_N, tokens_NT, lengths_N, prompt_len, self.worker.pad_id)
        mask_NT = (np.arange(T) < lengths_N[:, None]).astype(np.float32)
        P = len(pairs)
        batch = {k: v.reshape(P, 2, -1) for k, v in offline_rows(rows, mask_NT, prompt_len).items()}
        batch.update(
            valid_BK=np.ones((P, 2), np.float32),
            scores_BK=np.tile(np.asarray([1.0, 0.0], np.float32), (P, 1)),
            labels_B=np.zeros(P, np.float32),
            ref_logps_BK=np.asarray([a[3] for a in answers], np.float32).reshape(P, 2),
            source_P=np.asarray(sources, np.int32),
        )
        return batch

    def state_dict(self) -> dict:
        """What a checkpoint keeps (JSON: the arrays as lists; float32 values survive the round trip exactly)."""
        return {
            "iterations": list(self.iterations),
            "tokens": self.tokens_IDMT.tolist(),
            "lengths": self.lengths_IDM.tolist(),
            "ref_logps": self.ref_logps_IDM.tolist(),
            "demo_ref_logps": self.demo_ref_logps_D.tolist(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores what `state_dict` returned."""
        shape = (len(state["iterations"]), len(self.demonstrations), self.M)
        self.iterations = list(state["iterations"])
        self.tokens_IDMT = np.asarray(state["tokens"], np.int32).reshape(*shape, self.demo_tokens_DT.shape[1])
        self.lengths_IDM = np.asarray(state["lengths"], np.int32).reshape(shape)
        self.ref_logps_IDM = np.asarray(state["ref_logps"], np.float32).reshape(shape)
        self.demo_ref_logps_D = np.asarray(state["demo_ref_logps"], np.float32)
