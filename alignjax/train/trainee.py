"""The training state: one pytree holding everything a step reads and writes, and where each piece lives.

The model's structure (its `nnx.GraphDef`) stays outside: the state carries only arrays, so the jitted step
sees plain pytrees and checkpoints hold nothing but numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import NamedSharding, PartitionSpec

from alignjax.models.pretrained import state_shardings


@struct.dataclass
class TrainState:
    """step: optimizer steps taken; params: the model's nnx.State; opt_state: the optimizer's; rng: a key."""

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def create_train_state(params: nnx.State, optimizer: optax.GradientTransformation, seed: int, shardings):
    """A fresh state at step 0, built inside a jit so the optimizer state is born with `shardings`."""

    def create(params):
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=jax.random.key_data(jax.random.key(seed)),
        )

    return jax.jit(create, in_shardings=(shardings.params,), out_shardings=shardings, donate_argnums=0)(params)


def train_state_shardings(params: nnx.State, optimizer: optax.GradientTransformation, mesh) -> TrainState:
    """Shardings for every leaf of the train state on `mesh`.

    Parameters follow the logical-axis rules. Optimizer moments are subtrees with exactly the parameters'
    structure (Adam's mu and nu) and are sharded like them; the remaining leaves (step counts) are replicated.
    """
    param_shardings = state_shardings(params, mesh)
    replicated = NamedSharding(mesh, PartitionSpec())
    params_treedef = jax.tree.structure(params)
    opt_abstract = jax.eval_shape(optimizer.init, params)
    opt_shardings = jax.tree.map(
        lambda node: param_shardings if jax.tree.structure(node) == params_treedef else replicated,
        opt_abstract,
        is_leaf=lambda node: jax.tree.structure(node) == params_treedef,
    )
    return TrainState(step=replicated, params=param_shardings, opt_state=opt_shardings, rng=replicated)
