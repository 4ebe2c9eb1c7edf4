"""The trainee: a model being trained, as one bundle of its structure, train state, shardings and optimizer.

The train state is one pytree holding everything a step reads and writes. The model's structure (its
`nnx.GraphDef`) stays outside it: the state carries only arrays, so the jitted step sees plain pytrees and
checkpoints hold nothing but numbers. Every trained model (the SFT or preference policy, the on-policy policy,
PPO's value model, a benchmark's model) is built by `Trainee.create`, so they are born sharded the same way.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from alignjax.models.pretrained import state_shardings
from alignjax.train.optimizer import make_optimizer


@struct.dataclass
class TrainState:
    """step: optimizer steps taken; params: the model's nnx.State; opt_state: the optimizer's; rng: a key."""

    step: jax.Array
    params: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def create_train_state(params: nnx.State, optimizer: optax.GradientTransformation, seed: int, shardings: TrainState):
    """A fresh state at step 0, built inside a jit so the optimizer state is born with `shardings`.

    `params` are donated: the state takes over their buffers.
    """

    def create(params):
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=jax.random.key_data(jax.random.key(seed)),
        )

    return jax.jit(create, in_shardings=(shardings.params,), out_shardings=shardings, donate_argnums=0)(params)


def train_state_shardings(params: nnx.State, optimizer: optax.GradientTransformation, mesh: Mesh) -> TrainState:
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


@dataclasses.dataclass
class Trainee:
    """A model being trained.

    Attributes:
      graphdef: the model's structure (`nnx.split`'s first half); steps merge it with `state.params`.
      state: its `TrainState`, replaced by each step.
      shardings: where each leaf of the state lives on `mesh`.
      optimizer, schedule: the optax transformation and its learning-rate schedule.
      mesh: the device mesh.
    """

    graphdef: nnx.GraphDef
    state: TrainState
    shardings: TrainState
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    mesh: Mesh

    @classmethod
    def create(cls, model: nnx.Module, optim: ConfigDict, total_steps: int, seed: int, mesh: Mesh) -> Trainee:
        """Splits `model` (whose params are then owned by the state) and builds its optimizer and train state.

        Args:
          model: the model to train, its params already on `mesh`.
          optim: the `optim` config section (`train.optimizer.make_optimizer`).
          total_steps: optimizer steps of the whole run, for the schedule's decay.
          seed: the state's random key.
          mesh: the device mesh.
        """
        graphdef, params = nnx.split(model)
        optimizer, schedule = make_optimizer(optim, total_steps)
        shardings = train_state_shardings(params, optimizer, mesh)
        state = create_train_state(params, optimizer, seed, shardings)
        return cls(graphdef, state, shardings, optimizer, schedule, mesh)

    def model(self) -> nnx.Module:
        """The model with the current params (for sampling, evaluation and export)."""
        return nnx.merge(self.graphdef, self.state.params)
