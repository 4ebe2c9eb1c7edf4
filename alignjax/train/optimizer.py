"""The optimizer and learning-rate schedule, built from the `optim` section of an experiment config."""

import jax
import optax
from ml_collections import ConfigDict

SCHEDULES = ("cosine", "linear", "constant")


def learning_rate_schedule(optim: ConfigDict, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to `lr` over `warmup_steps`, then cosine or linear decay to `lr * min_lr_ratio`."""
    warmup = optax.linear_schedule(0.0, optim.lr, max(optim.warmup_steps, 1))
    decay_steps = max(total_steps - optim.warmup_steps, 1)
    end = optim.lr * optim.min_lr_ratio
    if optim.schedule == "cosine":
        decay = optax.cosine_decay_schedule(optim.lr, decay_steps, alpha=optim.min_lr_ratio)
    elif optim.schedule == "linear":
        decay = optax.linear_schedule(optim.lr, end, decay_steps)
    else:
        decay = optax.constant_schedule(optim.lr)
    return optax.join_schedules([warmup, decay], [optim.warmup_steps])


def make_optimizer(optim: ConfigDict, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW with global-norm clipping; weight decay applies to matrices only (not norms or biases)."""
    schedule = learning_rate_schedule(optim, total_steps)
    adamw = optax.adamw(
        schedule,
        b1=optim.b1,
        b2=optim.b2,
        eps=optim.eps,
        weight_decay=optim.weight_decay,
        mask=_matrices,
    )
    chain = [optax.clip_by_global_norm(optim.clip_norm)] if optim.clip_norm > 0 else []
    return optax.chain(*chain, adamw), schedule


def _matrices(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)
