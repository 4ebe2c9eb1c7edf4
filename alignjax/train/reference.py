"""Reference log-probs precomputed once over the dataset (`reference.precompute=True`).

The DPO family compares the policy with a frozen reference on the same responses. Computing the reference in
every step costs a forward pass per step and the reference's params in memory for the whole run; precomputing
costs one forward pass per example before training, after which the reference is dropped. The tables are
indexed by example (`example_index` of every batch), so the per-epoch shuffles and resumption need nothing more.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm

from alignjax import sharding
from alignjax.data import eval_batches as fixed_batches
from alignjax.train.forward import reference_logps
from alignjax.train.step import DEVICE_KEYS


@dataclasses.dataclass(frozen=True)
class ReferenceTables:
    """The reference's summed response log-probs per example of each split: [U, K] (U: the split's examples)."""

    train_UK: np.ndarray
    eval_UK: np.ndarray

    @classmethod
    def compute(cls, graphdef, ref_params: nnx.State, train_iter, eval_batches: list[dict], mesh) -> ReferenceTables:
        """One pass of the reference over every training example (in order) and every eval batch."""
        replicated = NamedSharding(mesh, PartitionSpec())
        params_shardings = jax.tree.map(lambda x: x.sharding, ref_params)
        logps = jax.jit(
            functools.partial(reference_logps, graphdef=graphdef),
            in_shardings=(params_shardings, sharding.batch_sharding(mesh)),
            out_shardings=replicated,
        )
        train_batches = fixed_batches(
            train_iter.examples,
            seq_len=train_iter.seq_len,
            batch_size=train_iter.batch_size,
            pad_id=train_iter.pad_id,
            layout=train_iter.layout,
            length_bucket=train_iter.length_bucket,
        )

        def table(batches: list[dict], count: int, split: str) -> np.ndarray:
            K = batches[0]["tokens"].shape[1] if batches else 1
            out = np.zeros((count, K), np.float32)
            for batch in tqdm(batches, desc=f"reference log-probs ({split})", delay=3.0, disable=None):
                rows = batch["example_index"] >= 0
                logps_BK = logps(ref_params, sharding.put_batch(batch, mesh, DEVICE_KEYS))
                out[batch["example_index"][rows]] = np.asarray(logps_BK)[rows]
            return out

        num_eval = sum(int(np.sum(b["example_index"] >= 0)) for b in eval_batches)
        return cls(table(train_batches, len(train_iter.examples), "train"), table(eval_batches, num_eval, "eval"))

    def attach(self, batch: dict, split: str) -> dict:
        """`batch` with `ref_logps_BK` looked up by its `example_index` (filler rows get zeros)."""
        table = self.train_UK if split == "train" else self.eval_UK
        index_B = batch["example_index"]
        ref_BK = np.where((index_B >= 0)[:, None], table[np.maximum(index_B, 0)], 0.0).astype(np.float32)
        return {**batch, "ref_logps_BK": ref_BK}
