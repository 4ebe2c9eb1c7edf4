"""What a run builds from its config before the first step: the tokenizer, the model and the frozen reference.

The model is a causal LM, or a reward model when the loss consumes rewards (`losses.Objective.inputs`). The
reference, for losses that need one, is the policy's starting point unless `reference.path` names another
checkpoint; its params are sharded exactly like the policy's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import transformers
from flax import nnx
from ml_collections import ConfigDict

from alignjax.data import load_builtin_tokenizer
from alignjax.losses import Objective
from alignjax.models import (
    ModelConfig,
    RopeConfig,
    from_pretrained,
    init_model,
    init_reward_model,
    reward_model_from_pretrained,
    state_shardings,
)
from alignjax.models.config import dtype_from_name

BUILTIN_TOKENIZER = "builtin:"


def load_tokenizer(config: ConfigDict):
    """The tokenizer named by `model.tokenizer`, else the model directory's, else a builtin dataset's own.

    `model.tokenizer` is a directory or hub id, or "builtin:NAME" for a builtin dataset's tokenizer (which lets a
    new model train on files, e.g. a smoke test on real data without a checkpoint).
    """
    name = config.model.tokenizer or config.model.path
    if name.startswith(BUILTIN_TOKENIZER):
        return load_builtin_tokenizer(name[len(BUILTIN_TOKENIZER) :])
    if name:
        return transformers.AutoTokenizer.from_pretrained(name)
    if config.data.source == "builtin":
        return load_builtin_tokenizer(config.data.path)
    raise ValueError(
        "model.path and model.tokenizer are empty and data.source is not 'builtin': set model.path to a model "
        "directory, or model.tokenizer to a tokenizer directory or 'builtin:NAME'"
    )


def _new_model_config(config: ConfigDict, vocab_size: int) -> ModelConfig:
    m, init = config.model, config.model.init
    return ModelConfig(
        architecture=init.architecture,
        vocab_size=vocab_size,
        hidden_size=init.hidden_size,
        intermediate_size=init.intermediate_size,
        num_layers=init.num_layers,
        num_heads=init.num_heads,
        num_kv_heads=init.num_kv_heads,
        head_dim=init.hidden_size // init.num_heads,
        rope=RopeConfig(theta=init.rope_theta),
        max_position_embeddings=init.max_position_embeddings or config.data.seq_len,
        tie_word_embeddings=init.tie_word_embeddings,
        remat=m.remat,
        dtype=dtype_from_name(m.dtype),
        param_dtype=dtype_from_name(m.param_dtype, "param_dtype"),
    )


def build_model(config: ConfigDict, objective: Objective, vocab_size: int, mesh) -> nnx.Module:
    """The model to train: loaded from `model.path`, or new of shape `model.init`; a reward model for "rewards".

    A causal-LM directory given to a reward-model run gets a new scalar head on its decoder, the usual way to
    start a reward model from an SFT model.
    """
    m = config.model
    wants_rewards = objective.inputs == "rewards"
    if not m.path:
        new = init_reward_model if wants_rewards else init_model
        return new(_new_model_config(config, vocab_size), seed=config.seed, mesh=mesh)
    load = reward_model_from_pretrained if wants_rewards else from_pretrained
    seed = dict(seed=config.seed) if wants_rewards else {}  # a causal LM directory gets a new head drawn from it
    model = load(m.path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh, **seed)
    backbone = model.backbone if wants_rewards else model
    backbone.config = backbone.config.replace(remat=m.remat)
    return model


def reference_params(config: ConfigDict, policy_params: nnx.State, mesh) -> nnx.State:
    """The frozen reference's params, sharded like `policy_params`.

    From `reference.path` when set; otherwise a copy of the policy's starting params (a copy, because the train
    state's buffers are donated to the step). Call it before the first step.
    """
    path, m = config.reference.path, config.model
    if not path:
        return jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=state_shardings(policy_params, mesh))(
            policy_params
        )
    params = nnx.state(from_pretrained(path, dtype=m.dtype, param_dtype=m.param_dtype, mesh=mesh))
    shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)  # noqa: E731
    if jax.tree.structure(params) != jax.tree.structure(policy_params) or shapes(params) != shapes(policy_params):
        raise ValueError(
            f"reference.path={path!r} holds a model of another structure or shape than the policy "
            f"({m.path or 'model.init'}); the reference must have the policy's architecture"
        )
    return params
