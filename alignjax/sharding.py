"""Device meshes and the one table that maps logical axis names to mesh axes.

Modules name their parameter dimensions logically (`embed`, `mlp`, `q_heads`, `vocab`, ...); this file alone
decides where each name lands on a mesh with axes `data`, `fsdp` and `tensor`. Changing the parallelism of a run
is a config change (the mesh shape), never a model change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from alignjax.config_errors import require

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axes it is split over (None: replicated). Parameters shard their `embed` dimension over
# `fsdp` (ZeRO-3 style) and their head / mlp / vocab dimensions over `tensor` (Megatron style); activations
# shard the batch over both data-parallel axes.
LOGICAL_AXIS_RULES: Mapping[str, tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "length": None,
    "embed": ("fsdp",),
    "mlp": ("tensor",),
    "q_heads": ("tensor",),
    "kv_heads": ("tensor",),
    "head_dim": None,
    "vocab": ("tensor",),
    "norm": None,
}


def make_mesh(data: int = 1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None):
    """A mesh of shape (data, fsdp, tensor) over `devices` (default: every device of every process).

    Raises:
      ValueError: when the mesh does not use exactly the available devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = (data, fsdp, tensor)
    if any(s < 1 for s in shape) or math.prod(shape) != len(devices):
        raise ValueError(
            f"mesh data={data} x fsdp={fsdp} x tensor={tensor} = {math.prod(shape)} devices, but "
            f"{len(devices)} are available; choose sizes whose product is {len(devices)}"
        )
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, int, int]:
    """(data, fsdp, tensor) of a config's `mesh` section; one size may be -1, meaning 'all remaining devices'.

    Raises:
      ConfigError: naming the sizes, when they cannot fill exactly `num_devices`.
    """
    sizes = [mesh_config.data, mesh_config.fsdp, mesh_config.tensor]
    require(sizes.count(-1) <= 1, f"mesh: at most one of data/fsdp/tensor may be -1, got {sizes}")
    require(all(s == -1 or s >= 1 for s in sizes), f"mesh: sizes must be >= 1 or -1, got {sizes}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        require(num_devices % known == 0, f"mesh: {sizes} cannot fill {num_devices} devices")
        sizes[sizes.index(-1)] = num_devices // known
    require(
        math.prod(sizes) == num_devices,
        f"mesh: data={sizes[0]} x fsdp={sizes[1]} x tensor={sizes[2]} = {math.prod(sizes)} devices, but "
        f"{num_devices} are available; choose sizes whose product is {num_devices} (or set one to -1)",
    )
    return tuple(sizes)


def mesh_from_config(mesh_config):
    """The mesh a config's `mesh` section asks for, over every device of every process."""
    return make_mesh(*mesh_shape(mesh_config, jax.device_count()))


def logical_to_spec(logical_axes: Sequence[str | None], shape: Sequence[int], mesh) -> PartitionSpec:
    """The PartitionSpec for an array of `shape` whose dimensions carry `logical_axes`.

    A mesh axis is dropped from a dimension it does not divide (e.g. 2 key/value heads on a tensor axis of 4):
    that dimension is then replicated over it rather than failing, and each mesh axis is used at most once.
    """
    if len(logical_axes) != len(shape):
        raise ValueError(f"logical axes {tuple(logical_axes)} do not match shape {tuple(shape)}")
    used: set[str] = set()
    spec = []
    for name, size in zip(logical_axes, shape):
        if name is not None and name not in LOGICAL_AXIS_RULES:
            raise ValueError(f"logical axis {name!r} has no sharding rule; known: {sorted(LOGICAL_AXIS_RULES)}")
        chosen = []
        for axis in LOGICAL_AXIS_RULES.get(name) or ():
            split = mesh.shape[axis] * math.prod(mesh.shape[a] for a in chosen)
            if axis not in used and size % split == 0:
                chosen.append(axis)
        used.update(chosen)
        spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    return PartitionSpec(*spec)


def logical_sharding(logical_axes: Sequence[str | None], shape: Sequence[int], mesh) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(logical_axes, shape, mesh))


def batch_sharding(mesh) -> NamedSharding:
    """Batch arrays split their rows over the data-parallel axes (`data` x `fsdp`); other dimensions unsplit."""
    return NamedSharding(mesh, PartitionSpec(LOGICAL_AXIS_RULES["batch"]))


def data_parallel_size(mesh) -> int:
    """How many ways a batch is split: the product of the mesh axes the `batch` rule names."""
    return math.prod(mesh.shape[axis] for axis in LOGICAL_AXIS_RULES["batch"])


def put_sharded(array: np.ndarray, sharding: jax.sharding.Sharding, dtype=None) -> jax.Array:
    """Places a host array (possibly memory-mapped) onto `sharding`, reading and casting only each device's slice."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: np.asarray(array[index], dtype=dtype))


def put_batch(batch: dict[str, np.ndarray], mesh, keys=None) -> dict[str, jax.Array]:
    """A global batch of host arrays onto the mesh, rows split over the data-parallel devices (each process
    supplies only the rows its devices hold); with `keys`, only those arrays (the rest stay on the host)."""
    placement = batch_sharding(mesh)
    return {k: put_sharded(v, placement) for k, v in batch.items() if keys is None or k in keys}


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """Joins a multi-process run through `jax.distributed` (never a home-made launcher).

    On Cloud TPU pods and under SLURM, JAX discovers the coordinator and the process ids itself, so no
    argument is needed; elsewhere pass all three. Call once per process, before anything touches a device.
    CPU runs need `JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo` in the environment for cross-process collectives.
    """
    kwargs = {}
    if coordinator_address:
        kwargs = dict(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id)
    jax.distributed.initialize(**kwargs)
