"""Creating models: randomly initialised, or loaded from and saved to Hugging Face directories.

Parameters are born where they will live. The model is first traced abstractly (`nnx.eval_shape`), each
parameter's logical axes give its sharding on the mesh, and then values are either initialised inside a jit with
those output shardings or read from the checkpoint slice by slice onto each device. No device ever holds a full
copy of a sharded parameter.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from alignjax import sharding
from alignjax.models.config import ConfigError, ModelConfig, config_from_hf, config_to_hf
from alignjax.models.hf_names import hf_tensors, ignorable
from alignjax.models.safetensors_io import CheckpointError, read_checkpoint, write_checkpoint
from alignjax.models.transformer import Transformer

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


def _abstract_model(cfg: ModelConfig) -> tuple[nnx.GraphDef, nnx.State]:
    return nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))


def state_shardings(abstract_state: nnx.State, mesh) -> nnx.State:
    """The sharding of every parameter in `abstract_state` on `mesh`, as a pytree of the same structure."""
    return jax.tree.map(
        lambda v: v.replace(_param_sharding(v, mesh)),
        abstract_state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def init_model(cfg: ModelConfig, seed: int = 0, mesh=None) -> Transformer:
    """A randomly initialised model whose parameters are created already sharded over `mesh`."""
    graphdef, abstract_state = _abstract_model(cfg)

    def create_state():
        return nnx.split(Transformer(cfg, rngs=nnx.Rngs(seed)))[1]

    state = jax.jit(create_state, out_shardings=state_shardings(abstract_state, mesh))()
    return nnx.merge(graphdef, state)


def load_config(path: str, dtype: Any = None, param_dtype: Any = None) -> ModelConfig:
    """Reads `path/config.json` into a ModelConfig; errors name the file and the field."""
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ConfigError(f"{path}: no {CONFIG_FILE} (is this a Hugging Face model directory?)")
    try:
        with open(config_path) as f:
            hf_config = json.load(f)
    except ValueError as e:
        raise ConfigError(f"{config_path}: not valid JSON ({e})") from e
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
      ConfigError: for a missing or unsupported config.json, naming the field.
      CheckpointError: for a missing, unexpected or misshapen tensor, naming it and its file.
    """
    cfg = load_config(path, dtype, param_dtype)
    tensors, where = read_checkpoint(path)
    expected = hf_tensors(cfg)
    graphdef, abstract_state = _abstract_model(cfg)
    expected_names = {t.name for t in expected.values()}
    unexpected = sorted(n for n in tensors if n not in expected_names and not ignorable(n, cfg))
    if unexpected:
        raise CheckpointError(
            f"{path}: tensors {unexpected[:5]} (in {where[unexpected[0]]}) are not part of a "
            f"{cfg.architecture} with this config.json; the config and the weights disagree"
        )
    loaded = []
    for param_path, variable in nnx.to_flat_state(abstract_state):
        spec = expected[param_path]
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


def save_pretrained(model: Transformer, path: str, tokenizer=None, max_shard_size: int | None = None) -> None:
    """Writes `model` as a Hugging Face directory that `transformers` loads.

    Weights are written in the parameters' dtype. Tokenizer files come from `tokenizer` when given, else from
    the directory the model was loaded from, when it had them. On multi-host runs every process must call this
    (parameters are gathered collectively); only process 0 writes.

    Args:
      model: the model to export.
      path: the output directory, created if needed.
      tokenizer: optional `transformers` tokenizer to save alongside.
      max_shard_size: bytes per safetensors file; beyond it, shards and an index are written.
    """
    cfg = model.config
    names = hf_tensors(cfg)
    tensors = {}
    for param_path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        tensors[names[param_path].name] = names[param_path].to_hf(_to_host(variable[...]))
    if jax.process_index() != 0:
        return
    os.makedirs(path, exist_ok=True)
    saved_dtype = np.dtype(cfg.param_dtype).name
    with open(os.path.join(path, CONFIG_FILE), "w") as f:
        json.dump(config_to_hf(cfg, saved_dtype), f, indent=2)
    write_checkpoint(tensors, path, max_shard_bytes=max_shard_size)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    elif cfg.source and os.path.abspath(cfg.source) != os.path.abspath(path):
        for name in TOKENIZER_FILES:
            if os.path.exists(os.path.join(cfg.source, name)):
                shutil.copy(os.path.join(cfg.source, name), path)
