"""The forward pass of a train or eval step: from params and a batch to the loss's `LossOutput`.

What the model must compute depends on what the loss consumes (`losses.Objective.inputs`):

- "tokens": the policy's logits of a [B, L] batch, handed to the loss with the batch (SFT).
- "responses": a [B, K, L] batch of K responses per prompt runs through the policy as one [B*K, L] forward (so
  chosen and rejected share a single pass), and each response is reduced to its summed log-probs. The frozen
  reference's are precomputed in the batch (`ref_logps_BK`) or computed here from `ref_params`, outside the
  gradient.
- "rewards": the same [B, K, L] batch through a reward model, each response reduced to its reward at its last
  token.

Shared by the train and eval steps, so both see exactly the same objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from alignjax.losses import LossFn, LossOutput, Objective, Responses, token_logprobs
from alignjax.losses.kl import exact_kl
from alignjax.models.reward import last_token_values

SEQUENCE_KEYS = ("tokens", "positions", "segment_ids", "targets", "loss_mask")


def _flatten_responses(batch: dict) -> dict:
    """The [B, K, L] sequence arrays as [B*K, L] rows, response k of prompt b at row b*K + k."""
    return {key: batch[key].reshape(-1, batch[key].shape[-1]) for key in SEQUENCE_KEYS}


def _logits_and_logps(model, rows: dict, B: int, K: int) -> tuple[jax.Array, jax.Array]:
    """The logits [B*K, L, V] of the flattened responses and each one's summed log-prob [B, K].

    A response's log-prob sums its tokens under `loss_mask`; prompt and padding positions carry none.
    """
    logits_NLV = model(rows["tokens"], rows["positions"], rows["segment_ids"])
    logps_N = jnp.sum(token_logprobs(logits_NLV, rows["targets"]) * rows["loss_mask"], axis=-1)
    return logits_NLV, logps_N.reshape(B, K)


def _kl_per_token(logits_NLV: jax.Array, ref_logits_NLV: jax.Array, rows: dict, B: int, K: int) -> jax.Array:
    """Per prompt, the mean over its response tokens of KL(policy || reference) over the whole vocabulary, [B].

    Exact on the data's contexts (not a sample estimate), so it is reported whenever the reference runs in the
    step.
    """
    kl_NL = exact_kl(logits_NLV, ref_logits_NLV)
    mask_BKL = rows["loss_mask"].reshape(B, K, -1)
    kl_B = jnp.sum(kl_NL.reshape(B, K, -1) * mask_BKL, axis=(1, 2))
    return kl_B / jnp.maximum(jnp.sum(mask_BKL, axis=(1, 2)), 1.0)


def forward_loss(
    params: nnx.State,
    batch: dict,
    ref_params: nnx.State | None,
    *,
    graphdef: nnx.GraphDef,
    objective: Objective,
    loss_fn: LossFn,
    with_kl: bool = False,
) -> LossOutput:
    """The loss of `batch` under `params` (see the module docstring for what each kind of loss is given).

    Args:
      params: the trained model's parameters.
      batch: token arrays [B, L] ("tokens" losses) or [B, K, L] with `valid_BK`, `scores_BK`, `labels_B` and,
        when the reference is precomputed, `ref_logps_BK`.
      ref_params: the frozen reference's parameters, same structure as `params`; None unless the loss needs a
        reference and the batch does not carry `ref_logps_BK`.
      graphdef: the model's structure (a `Transformer`, or a `RewardModel` for "rewards" losses).
      objective: the registered loss, saying what it consumes.
      loss_fn: its function with the hyperparameters bound.
      with_kl: add the metric `kl_per_token`, the exact KL(policy || reference) per response token, when the
        reference runs here. It costs two vocabulary-wide softmaxes, so evaluation asks for it and training
        does not.
    """
    model = nnx.merge(graphdef, params)
    if objective.inputs == "tokens":
        return loss_fn(model(batch["tokens"], batch["positions"], batch["segment_ids"]), batch)

    B, K, _ = batch["tokens"].shape
    rows = _flatten_responses(batch)
    lengths_BK = jnp.sum(batch["loss_mask"], axis=-1)
    zeros_BK = jnp.zeros((B, K), jnp.float32)
    kl_B = None
    if objective.inputs == "rewards":
        values_NL = model(rows["tokens"], rows["positions"], rows["segment_ids"])
        logps_BK = last_token_values(values_NL, rows["segment_ids"]).reshape(B, K)
        ref_logps_BK = zeros_BK
    else:
        logits_NLV, logps_BK = _logits_and_logps(model, rows, B, K)
        if not objective.reference:
            ref_logps_BK = zeros_BK
        elif "ref_logps_BK" in batch:
            ref_logps_BK = batch["ref_logps_BK"]
        else:
            reference = nnx.merge(graphdef, jax.lax.stop_gradient(ref_params))
            ref_logits_NLV, ref_logps_BK = _logits_and_logps(reference, rows, B, K)
            if with_kl:
                kl_B = jax.lax.stop_gradient(_kl_per_token(logits_NLV, ref_logits_NLV, rows, B, K))
    responses = Responses(
        logps_BK=logps_BK,
        ref_logps_BK=ref_logps_BK,
        lengths_BK=lengths_BK,
        valid_BK=batch["valid_BK"],
        scores_BK=batch["scores_BK"],
        labels_B=batch["labels_B"],
    )
    out = loss_fn(responses)
    if kl_B is None:
        return out
    return out._replace(metrics={**out.metrics, "kl_per_token": jnp.sum(kl_B * batch["valid_BK"][:, 0])})


def reference_logps(params: nnx.State, batch: dict, *, graphdef: nnx.GraphDef) -> jax.Array:
    """The summed response log-probs [B, K] of a [B, K, L] batch: what the reference contributes to a loss."""
    B, K, _ = batch["tokens"].shape
    return _logits_and_logps(nnx.merge(graphdef, params), _flatten_responses(batch), B, K)[1]
