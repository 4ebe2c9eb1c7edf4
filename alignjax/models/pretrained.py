"""Creating models: randomly initialised, or loaded from and saved to Hugging Face directories.

Parameters are born where they will live. The model is first traced abstractly (`nnx.eval_shape`), each
parameter's logical axes give its sharding on the mesh, and then values are either initialised inside a jit with
those output shardings or read from the checkpoint slice by slice onto each device. No device ever holds a full
copy of a sharded parameter.

Both kinds of model, causal LMs (`Transformer`, `*ForCausalLM`) and reward models (`RewardModel`,
`*ForSequenceClassification`), go through the same reading and writing code; they differ only in their
config.json and in the table of tensor names (`hf_names`).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from alignjax import sharding
from alignjax.models.config import (
    ModelConfig,
    ModelConfigError,
    config_from_hf,
    config_to_hf,
    is_reward_config,
    reward_config_from_hf,
    reward_config_to_hf,
    sequence_classifier_name,
)
from alignjax.models.hf_names import HFTensor, Path, hf_reward_tensors, hf_tensors, ignorable
from alignjax.models.reward import RewardModel, headless
from alignjax.models.safetensors_io import CheckpointError, read_checkpoint, write_checkpoint
from alignjax.models.transformer import Transformer

# Makes a fresh model of one config from its random streams, e.g. `lambda rngs: Transformer(cfg, rngs=rngs)`.
Build = Callable[[nnx.Rngs], nnx.Module]

CONFIG_FILE = "config.json"
# Files a Hugging Face directory may carry besides the weights; copied along on export.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "generation_config.json",
)


def _param_sharding(variable: nnx.Variable, mesh) -> jax.sharding.Sharding:
    if mesh is None:
        return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return sharding.logical_sharding(variable.get_metadata()["logical_axes"], variable.shape, mesh)


def _abstract_model(build: Build) -> tuple[nnx.GraphDef, nnx.State]:
    return nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))))


def _mesh_of(model: nnx.Module):
    """The mesh `model`'s parameters are sharded over, or None when they live on one device."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return getattr(leaves[0].sharding, "mesh", None) if leaves else None


def state_shardings(abstract_state: nnx.State, mesh) -> nnx.State:
    """The sharding of every parameter in `abstract_state` on `mesh`, as a pytree of the same structure."""
    return jax.tree.map(
        lambda v: v.replace(_param_sharding(v, mesh)),
        abstract_state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def _init(build: Build, seed: int, mesh) -> nnx.Module:
    graphdef, abstract_state = _abstract_model(build)

    def create_state():
        return nnx.split(build(nnx.Rngs(seed)))[1]

    state = jax.jit(create_state, out_shardings=state_shardings(abstract_state, mesh))()
    return nnx.merge(graphdef, state)


def init_model(cfg: ModelConfig, seed: int = 0, mesh=None) -> Transformer:
    """A randomly initialised model whose parameters are created already sharded over `mesh`."""
    return _init(lambda rngs: Transformer(cfg, rngs=rngs), seed, mesh)


def _build_reward_model(cfg: ModelConfig) -> Build:
    return lambda rngs: RewardModel(Transformer(cfg, rngs=rngs), rngs=rngs)


def init_reward_model(cfg: ModelConfig, seed: int = 0, mesh=None) -> RewardModel:
    """A randomly initialised reward model (decoder and head), its parameters created already sharded over `mesh`."""
    return _init(_build_reward_model(cfg), seed, mesh)


def reward_model_from_causal(model: Transformer, seed: int = 0) -> RewardModel:
    """A reward model reading `model`'s decoder (e.g. an SFT model) through a new head: how reward training starts.

    The decoder's arrays are shared, not copied (no memory is spent), in new variables: training the reward model
    leaves `model`, which keeps its LM head, unchanged. The head (see RewardModel for its init, drawn from `seed`)
    is placed on the mesh `model` is sharded over.
    """
    reward = RewardModel(model, rngs=nnx.Rngs(seed))
    reward.score = reward.score.replace(
        jax.device_put(reward.score[...], _param_sharding(reward.score, _mesh_of(model)))
    )
    return reward


def _read_hf_config(path: str) -> tuple[dict, str]:
    """The parsed `path/config.json` and its path, for error messages."""
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ModelConfigError(f"{path}: no {CONFIG_FILE} (is this a Hugging Face model directory?)")
    try:
        with open(config_path) as f:
            return json.load(f), config_path
    except ValueError as e:
        raise ModelConfigError(f"{config_path}: not valid JSON ({e})") from e


def load_config(path: str, dtype: Any = None, param_dtype: Any = None) -> ModelConfig:
    """Reads `path/config.json` into a ModelConfig; errors name the file and the field."""
    hf_config, config_path = _read_hf_config(path)
    cfg = config_from_hf(hf_config, source=config_path, dtype=dtype, param_dtype=param_dtype)
    return cfg.replace(source=os.path.abspath(path))


def from_pretrained(path: str, dtype: Any = None, param_dtype: Any = None, mesh=None) -> Transformer:
    """Loads a Hugging Face checkpoint directory (config.json + safetensors, single or sharded).

    Args:
      path: a local directory as written by `transformers` `save_pretrained` (or ours).
      dtype: compute dtype, 'float32' (default) or 'bfloat16'.
      param_dtype: dtype the parameters are kept in, default 'float32'.
      mesh: a mesh from `alignjax.sharding.make_mesh`; each tensor goes straight to its sharding on it.
        Without one, the model lives on the first local device.

    Raises:
      ModelConfigError: for a missing or unsupported config.json, naming the field.
      CheckpointError: for a missing, unexpected or misshapen tensor, naming it and its file.
    """
    cfg = load_config(path, dtype, param_dtype)
    return _load(path, cfg, lambda rngs: Transformer(cfg, rngs=rngs), hf_tensors(cfg), cfg.architecture, mesh)


def reward_model_from_pretrained(
    path: str, dtype: Any = None, param_dtype: Any = None, mesh=None, seed: int = 0
) -> RewardModel:
    """Loads a reward model: a `*ForSequenceClassification` directory, or a causal LM's to put a new head on.

    A `*ForCausalLM` directory (an SFT model, say) gives `reward_model_from_causal` of it, with a warning: its
    head is new (drawn from `seed`), so its rewards mean nothing until trained. The LM head is never loaded.

    Args:
      path: a local Hugging Face directory.
      dtype: compute dtype, 'float32' (default) or 'bfloat16'.
      param_dtype: dtype the parameters are kept in, default 'float32'.
      mesh: a mesh from `alignjax.sharding.make_mesh`; without one, the model lives on the first local device.
      seed: draws the new head of a causal LM's directory; unused otherwise.

    Raises:
      ModelConfigError: for an unsupported architecture or num_labels other than 1, naming the field.
      CheckpointError: for a missing, unexpected or misshapen tensor, naming it and its file.
    """
    hf_config, config_path = _read_hf_config(path)
    if is_reward_config(hf_config):
        cfg = reward_config_from_hf(hf_config, source=config_path, dtype=dtype, param_dtype=param_dtype)
        cfg = cfg.replace(source=os.path.abspath(path))
        architecture = sequence_classifier_name(cfg.architecture)
        return _load(path, cfg, _build_reward_model(cfg), hf_reward_tensors(cfg), architecture, mesh)
    cfg = load_config(path, dtype, param_dtype)
    warnings.warn(
        f"{path} holds a {cfg.architecture}, not a reward model: its decoder gets a new, untrained score head",
        stacklevel=2,
    )
    backbone = _load(
        path, cfg, lambda rngs: headless(Transformer(cfg, rngs=rngs)), hf_tensors(cfg), cfg.architecture, mesh
    )
    return reward_model_from_causal(backbone, seed)


def _load(
    path: str, cfg: ModelConfig, build: Build, names: dict[Path, HFTensor], architecture: str, mesh
) -> nnx.Module:
    """The model `build` makes, each of its parameters read from the checkpoint tensor `names` gives for it.

    Checkpoint tensors that `names` lists but the model lacks (an LM head under a headless decoder) are skipped;
    tensors outside `names` are an error, as they mean the config and the weights disagree.
    """
    tensors, where = read_checkpoint(path)
    graphdef, abstract_state = _abstract_model(build)
    expected_names = {t.name for t in names.values()}
    unexpected = sorted(n for n in tensors if n not in expected_names and not ignorable(n, cfg))
    if unexpected:
        raise CheckpointError(
            f"{path}: tensors {unexpected[:5]} (in {where[unexpected[0]]}) are not part of a "
            f"{architecture} with this config.json; the config and the weights disagree"
        )
    loaded = []
    for param_path, variable in nnx.to_flat_state(abstract_state):
        spec = names[param_path]
        if spec.name not in tensors:
            raise CheckpointError(f"{path}: tensor {spec.name!r} is missing from the checkpoint")
        array = tensors[spec.name]
        if tuple(array.shape) != spec.shape:
            raise CheckpointError(
                f"{where[spec.name]}: tensor {spec.name!r} has shape {tuple(array.shape)}, "
                f"expected {spec.shape} from config.json"
            )
        ours = spec.to_ours(array, variable.shape)
        placed = sharding.put_sharded(ours, _param_sharding(variable, mesh), dtype=variable.dtype)
        loaded.append((param_path, variable.replace(placed)))
    return nnx.merge(graphdef, nnx.from_flat_state(loaded))


def _to_host(array: jax.Array) -> np.ndarray:
    if not array.is_fully_addressable:
        array = multihost_utils.process_allgather(array, tiled=True)
    return np.asarray(jax.device_get(array))


def save_pretrained(
    model: Transformer | RewardModel, path: str, tokenizer=None, max_shard_size: int | None = None
) -> None:
    """Writes `model` as a Hugging Face directory that `transformers` loads.

    A Transformer is written as its `*ForCausalLM`; a RewardModel as `*ForSequenceClassification` with one label
    (`AutoModelForSequenceClassification`), whose `pad_token_id` is the tokenizer's, else the source config's,
    else `config.DEFAULT_PAD_TOKEN_ID` (see `reward_config_to_hf`). Weights are written in the parameters'
    dtype. Tokenizer files come from `tokenizer` when given, else from the directory the model was loaded from,
    when it had them. On multi-host runs every process must call this (parameters are gathered collectively);
    only process 0 writes.

    Args:
      model: the model to export.
      path: the output directory, created if needed.
      tokenizer: optional `transformers` tokenizer to save alongside.
      max_shard_size: bytes per safetensors file; beyond it, shards and an index are written.
    """
    cfg = model.config
    saved_dtype = np.dtype(cfg.param_dtype).name
    if isinstance(model, RewardModel):
        names = hf_reward_tensors(cfg)
        hf_config = reward_config_to_hf(cfg, saved_dtype, getattr(tokenizer, "pad_token_id", None))
    else:
        names = hf_tensors(cfg)
        hf_config = config_to_hf(cfg, saved_dtype)
    tensors = {}
    for param_path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        tensors[names[param_path].name] = names[param_path].to_hf(_to_host(variable[...]))
    if jax.process_index() == 0:
        os.makedirs(path, exist_ok=True)
        write_checkpoint(tensors, path, max_shard_bytes=max_shard_size)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        elif cfg.source and os.path.abspath(cfg.source) != os.path.abspath(path):
            for name in TOKENIZER_FILES:  # contents only: new files, with the mode the umask gives, as the rest
                if os.path.exists(os.path.join(cfg.source, name)):
                    shutil.copyfile(os.path.join(cfg.source, name), os.path.join(path, name))
        # Written last: a directory with config.json holds a complete export (a later stage relies on it).
        with open(os.path.join(path, CONFIG_FILE), "w") as f:
            json.dump(hf_config, f, indent=2)
    if jax.process_count() > 1:  # no process reads the export before process 0 has written it
        multihost_utils.sync_global_devices(f"save_pretrained {path}")
