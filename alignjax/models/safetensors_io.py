"""Reading and writing Hugging Face safetensors checkpoints, single-file or sharded with an index.

Reading memory-maps each file and hands out numpy views, so that loading onto a mesh copies only the slice each
device owns (`safetensors.numpy` would materialise whole tensors and has no bfloat16; its `flax` backend would
put every tensor whole on one device). Writing uses `safetensors.numpy.save_file`, then gives the file the mode
any other new file gets (`write_safetensors`).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping

import ml_dtypes
import numpy as np
import safetensors.numpy

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


class CheckpointError(ValueError):
    """A checkpoint directory or file is missing, malformed, or does not match the model."""


def _map_file(path: str) -> dict[str, np.ndarray]:
    """Memory-maps one .safetensors file: tensor name -> read-only numpy view."""
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
    except (OSError, struct.error, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which is not supported")
        begin, end = info["data_offsets"]
        tensors[name] = data[begin:end].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return tensors


def checkpoint_files(directory: str) -> list[str]:
    """The safetensors files of a checkpoint directory: those its index names, else `model.safetensors`."""
    index_path = os.path.join(directory, INDEX_FILE)
    if os.path.exists(index_path):
        try:
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{index_path}: expected JSON with a 'weight_map' object ({e})") from e
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not os.path.exists(os.path.join(directory, f))]
        if missing:
            raise CheckpointError(f"{index_path} names files that do not exist: {missing}")
        return [os.path.join(directory, f) for f in files]
    single = os.path.join(directory, SINGLE_FILE)
    if not os.path.exists(single):
        raise CheckpointError(f"{directory}: neither {SINGLE_FILE} nor {INDEX_FILE} found")
    return [single]


def read_checkpoint(directory: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a checkpoint as lazy views, and the file each one lives in (for error messages)."""
    tensors, where = {}, {}
    for path in checkpoint_files(directory):
        for name, array in _map_file(path).items():
            tensors[name], where[name] = array, path
    return tensors, where


def _new_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file: 0o666 less the umask (0o644 under the usual 022).

    Python reads the umask only by setting it. For the moment between the two calls it is 0o077, so that a file
    another thread creates meanwhile is at most less open than the user asked, never more.
    """
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def write_safetensors(tensors: Mapping[str, np.ndarray], path: str) -> None:
    """Writes one .safetensors file, readable by the same users as the config and tokenizer files beside it.

    `safetensors` writes to a temporary file (mode 0600, so that no one reads it half-written) and renames it,
    so the file would keep 0600: another user sharing the export could read config.json but not the weights.
    """
    safetensors.numpy.save_file(dict(tensors), path, metadata={"format": "pt"})
    os.chmod(path, _new_file_mode())


def write_checkpoint(tensors: Mapping[str, np.ndarray], directory: str, max_shard_bytes: int | None = None) -> None:
    """Writes `tensors` as `model.safetensors`, or as shards plus an index when they exceed `max_shard_bytes`."""
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in tensors.items():
        if max_shard_bytes and shards[-1] and size + array.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = np.ascontiguousarray(array)
        size += array.nbytes
    # Files of an earlier save in the same directory would shadow or contradict this one.
    old_shards = [f for f in os.listdir(directory) if f.startswith("model-") and f.endswith(".safetensors")]
    for stale in [INDEX_FILE, SINGLE_FILE, *old_shards]:
        if os.path.exists(os.path.join(directory, stale)):
            os.remove(os.path.join(directory, stale))
    if len(shards) == 1:
        write_safetensors(shards[0], os.path.join(directory, SINGLE_FILE))
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        filename = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(shard, os.path.join(directory, filename))
        weight_map.update({name: filename for name in shard})
    index = {"metadata": {"total_size": sum(a.nbytes for a in tensors.values())}, "weight_map": weight_map}
    with open(os.path.join(directory, INDEX_FILE), "w") as f:
        json.dump(index, f, indent=2)
