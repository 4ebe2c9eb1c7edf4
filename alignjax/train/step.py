"""The pure train and eval steps, and their jitted, sharded builds.

`train_step(state, batch, ref_params, ...) -> (state, metrics)` is a module-level function of arrays only: the
model's graph definition, the loss and the optimizer are bound by `functools.partial` before jit, and the mesh is
visible only through the shardings given to `jax.jit`. The frozen reference model's params (None when the loss
needs none, or when its log-probs are precomputed into the batch) are an argument, so their sharding is as
visible as the policy's. Metrics stay on device; the loop fetches them when it logs, so the step never waits on
the host.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from alignjax import sharding
from alignjax.losses import LossFn, Objective
from alignjax.train.forward import SEQUENCE_KEYS, forward_loss
from alignjax.train.trainee import TrainState

# What a step reads from a batch: the sequences, and for [B, K, L] batches the per-response fields. Host-side
# bookkeeping (`example_index`) stays on the host.
DEVICE_KEYS = SEQUENCE_KEYS + ("valid_BK", "scores_BK", "labels_B", "ref_logps_BK")


def _split_micro_batches(batch: dict, num_micro: int) -> dict:
    """[B, ...] -> [num_micro, B / num_micro, ...]; micro-batch i takes rows i, i + num_micro, ...

    Strided rather than contiguous rows: the batch is split over devices in contiguous blocks, so every device
    contributes to every micro-batch and no rows move between devices.
    """
    return jax.tree.map(lambda x: x.reshape(x.shape[0] // num_micro, num_micro, *x.shape[1:]).swapaxes(0, 1), batch)


def train_step(
    state: TrainState,
    batch: dict,
    ref_params: nnx.State | None,
    *,
    graphdef: nnx.GraphDef,
    objective: Objective,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    grad_accum: int,
) -> tuple[TrainState, dict]:
    """One optimizer step on `batch`, accumulating gradients over `grad_accum` micro-batches.

    The objective is sum(totals) / sum(weights) over all micro-batches, so accumulation changes memory, not
    the gradient, for every loss made of per-row terms (KTO's batch KL estimate is the exception: it is taken
    per micro-batch, as TRL takes it per device batch).
    """
    forward = functools.partial(forward_loss, graphdef=graphdef, objective=objective, loss_fn=loss_fn)

    def micro_step(carry, micro):
        grads_sum, total_sum, weight_sum, metrics_sum = carry

        def objective(params):
            out = forward(params, micro, ref_params)
            return out.total, out

        (_, out), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        grads_sum = jax.tree.map(jnp.add, grads_sum, grads)
        metrics_sum = jax.tree.map(jnp.add, metrics_sum, out.metrics)
        return (grads_sum, total_sum + out.total, weight_sum + out.weight, metrics_sum), None

    micro_batches = _split_micro_batches(batch, grad_accum)
    metric_shapes = jax.eval_shape(
        lambda: forward(state.params, jax.tree.map(lambda x: x[0], micro_batches), ref_params).metrics
    )
    zeros = (
        jax.tree.map(jnp.zeros_like, state.params),
        jnp.zeros((), jnp.float32),
        jnp.zeros((), jnp.float32),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes),
    )
    (grads_sum, total, weight, metrics_sum), _ = jax.lax.scan(micro_step, zeros, micro_batches)
    weight = jnp.maximum(weight, 1.0)
    grads = jax.tree.map(lambda g: g / weight, grads_sum)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": total / weight,
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
        "loss_terms": weight,  # what the loss averages over in this batch: target tokens (SFT) or pairs (DPO)
        **{name: value / weight for name, value in metrics_sum.items()},
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(
    params: nnx.State,
    batch: dict,
    ref_params: nnx.State | None,
    *,
    graphdef: nnx.GraphDef,
    objective: Objective,
    loss_fn: LossFn,
) -> dict:
    """Sums of the loss and of its metrics on a held-out batch; token losses add per-row exact match.

    Exact match is "every loss token is the argmax": under teacher forcing that is exactly "greedy decoding
    reproduces the reference", so it scores generation without decoding.
    """
    if objective.inputs != "tokens":
        out = forward_loss(
            params, batch, ref_params, graphdef=graphdef, objective=objective, loss_fn=loss_fn, with_kl=True
        )
        return {"total": out.total, "weight": out.weight, "metrics": out.metrics}
    model = nnx.merge(graphdef, params)
    logits_BLV = model(batch["tokens"], batch["positions"], batch["segment_ids"])
    out = loss_fn(logits_BLV, batch)
    wrong_BL = (jnp.argmax(logits_BLV, axis=-1) != batch["targets"]) & (batch["loss_mask"] > 0)
    has_loss_B = jnp.any(batch["loss_mask"] > 0, axis=-1)
    exact_match_B = has_loss_B & ~jnp.any(wrong_BL, axis=-1)
    return {"total": out.total, "weight": out.weight, "metrics": out.metrics, "exact_match_B": exact_match_B}


def jit_train_step(
    graphdef, objective, loss_fn, optimizer, schedule, grad_accum, state_shardings, mesh, ref_shardings=None
):
    """`train_step` compiled with explicit shardings; the incoming state's buffers are donated.

    `ref_shardings` are the reference params' shardings (those of the policy's params), None without them.
    """
    step = functools.partial(
        train_step,
        graphdef=graphdef,
        objective=objective,
        loss_fn=loss_fn,
        optimizer=optimizer,
        schedule=schedule,
        grad_accum=grad_accum,
    )
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step,
        in_shardings=(state_shardings, sharding.batch_sharding(mesh), ref_shardings),
        out_shardings=(state_shardings, replicated),
        donate_argnames="state",
    )


def jit_eval_step(graphdef, objective, loss_fn, params_shardings, mesh, ref_shardings=None):
    """`eval_step` compiled for the mesh; results are replicated so that every process can read them."""
    step = functools.partial(eval_step, graphdef=graphdef, objective=objective, loss_fn=loss_fn)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step,
        in_shardings=(params_shardings, sharding.batch_sharding(mesh), ref_shardings),
        out_shardings=replicated,
    )
