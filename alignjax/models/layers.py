"""Small building blocks of the decoder: parameters with logical axes, projections, RMSNorm and the SwiGLU MLP.

Every parameter is an `nnx.Param` whose `logical_axes` metadata names each dimension (`embed`, `mlp`,
`q_heads`, ...). `alignjax.sharding` maps those names to mesh axes in one table, so no module knows the mesh.
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Initializer = Callable[[jax.Array, tuple, Any], jax.Array]
default_init: Initializer = jax.nn.initializers.normal(stddev=0.02)


def make_param(
    rngs: nnx.Rngs, shape: tuple, logical_axes: tuple, dtype: Any, init: Initializer = default_init
) -> nnx.Param:
    """A parameter of `shape`, tagged with one logical axis name per dimension."""
    assert len(shape) == len(logical_axes), (shape, logical_axes)
    return nnx.Param(init(rngs.params(), shape, dtype), logical_axes=logical_axes)


class RMSNorm(nnx.Module):
    """Root-mean-square norm computed in float32, as Llama and Qwen do, scaled by a learned weight."""

    def __init__(self, dim: int, eps: float, *, param_dtype: Any, rngs: nnx.Rngs):
        self.eps = eps
        self.scale = make_param(rngs, (dim,), ("norm",), param_dtype, jax.nn.initializers.ones)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(x.dtype) * x32.astype(x.dtype)


class MLP(nnx.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden: int, intermediate: int, bias: bool, *, dtype: Any, param_dtype: Any, rngs: nnx.Rngs):
        self.dtype = dtype
        self.gate = make_param(rngs, (hidden, intermediate), ("embed", "mlp"), param_dtype)
        self.up = make_param(rngs, (hidden, intermediate), ("embed", "mlp"), param_dtype)
        self.down = make_param(rngs, (intermediate, hidden), ("mlp", "embed"), param_dtype)
        zeros = jax.nn.initializers.zeros
        self.gate_bias = make_param(rngs, (intermediate,), ("mlp",), param_dtype, zeros) if bias else None
        self.up_bias = make_param(rngs, (intermediate,), ("mlp",), param_dtype, zeros) if bias else None
        self.down_bias = make_param(rngs, (hidden,), ("embed",), param_dtype, zeros) if bias else None

    def __call__(self, x_BLD: jax.Array) -> jax.Array:
        x_BLD = x_BLD.astype(self.dtype)
        gate_BLF = _project(x_BLD, self.gate, self.gate_bias, self.dtype)
        up_BLF = _project(x_BLD, self.up, self.up_bias, self.dtype)
        return _project(jax.nn.silu(gate_BLF) * up_BLF, self.down, self.down_bias, self.dtype)


def _project(x_BLI: jax.Array, kernel: nnx.Param, bias: nnx.Param | None, dtype: Any) -> jax.Array:
    y_BLO = project(x_BLI, kernel[...].astype(dtype), contract=1)
    return y_BLO if bias is None else y_BLO + bias[...].astype(dtype)


def project(x: jax.Array, kernel: jax.Array, *, contract: int, preferred_element_type: Any = None) -> jax.Array:
    """x's last `contract` dimensions times kernel's first `contract`, computed as one 2-D matmul.

    [B, L, *I] @ [*I, *O] -> [B, L, *O], with the batch and length dimensions merged into the matmul's rows and
    the contracted and output dimensions each merged into one. The same product as an einsum, but its gradient
    is also plain 2-D matmuls: written as an einsum over [B, L, ...], the weight gradient contracts two
    dimensions (batch and length), for which XLA:CPU inserted transposes and copies of the activations (the
    measured gain is in benchmarks/RESULTS.md).
    """
    lead, inner = x.shape[: x.ndim - contract], x.shape[x.ndim - contract :]
    assert inner == kernel.shape[:contract], (x.shape, kernel.shape, contract)
    out = kernel.shape[contract:]
    y = jnp.matmul(
        x.reshape(-1, math.prod(inner)),
        kernel.reshape(math.prod(inner), math.prod(out)),
        preferred_element_type=preferred_element_type,
    )
    return y.reshape(*lead, *out)
