r"""Mesh utilities: the 1-D mesh value, row padding and placement, host gathers.

The leaf under :mod:`ntkspec.kernels`, :mod:`ntkspec.operators` and
:mod:`ntkspec.sharding` (which re-exports every name here): it imports no other
ntkspec module, so the value modules can take ``mesh=`` without an import cycle. See
:mod:`ntkspec.sharding` for the layout and the multi-host conventions.

References:
    JAX documentation, "Distributed arrays and automatic parallelization" and
    "Manual parallelism with shard_map", https://docs.jax.dev.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "check_mesh",
    "device_count",
    "axis_name",
    "padded_size",
    "pad_rows",
    "row_sharding",
    "replicated",
    "shard_rows",
    "gram_on_mesh",
    "host_array",
    "host_value",
    "device_block",
    "shard_map",
]


def check_mesh(mesh, name: str = "mesh") -> Mesh | None:
    """Check that ``mesh`` is None or a 1-D :class:`jax.sharding.Mesh`; return it.

    Any axis name and any axis type (Auto, Explicit) are accepted.

    Raises:
        TypeError: ``mesh`` is not a Mesh (e.g. a device list or an int).
        ValueError: the mesh has more or fewer than one axis.
    """
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{name} must be None or a 1-D jax.sharding.Mesh (e.g. "
            f"jax.make_mesh((n,), ('x',))); got {type(mesh).__name__}"
        )
    if len(mesh.axis_names) != 1:
        raise ValueError(
            f"{name} must be a 1-D mesh (one axis); got axes {dict(mesh.shape)}"
        )
    return mesh


def device_count(mesh: Mesh | None) -> int:
    """Devices of a 1-D mesh (1 for None)."""
    return 1 if mesh is None else int(mesh.devices.size)


def axis_name(mesh: Mesh):
    """The name of the mesh's only axis."""
    return mesh.axis_names[0]


def padded_size(n: int, devices: int) -> int:
    """The smallest multiple of ``devices`` that is >= n."""
    return -(-int(n) // int(devices)) * int(devices)


def pad_rows(x, multiple: int):
    """``x`` with its last row repeated up to a multiple of ``multiple`` rows."""
    n = x.shape[0]
    pad = padded_size(n, multiple) - n
    if not pad:
        return x
    xp = np if isinstance(x, np.ndarray) else jnp
    return xp.concatenate([x, xp.repeat(x[-1:], pad, axis=0)], axis=0)


def row_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Rows (axis 0) split over the mesh axis, other axes whole."""
    return NamedSharding(mesh, P(axis_name(mesh), *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def shard_rows(x, mesh: Mesh):
    """``x`` placed row-sharded over the mesh (rows must be a multiple of D)."""
    d = device_count(mesh)
    if x.shape[0] % d:
        raise ValueError(
            f"{x.shape[0]} rows cannot be split evenly over {d} devices; pad them "
            f"first (ntkspec.sharding.pad_rows)"
        )
    return jax.device_put(x, row_sharding(mesh, x.ndim))


def gram_on_mesh(fn: Callable, x1, x2, mesh: Mesh | None, **kwargs):
    """``fn(x1, x2, **kwargs)`` (``ntk``/``nngp``), its rows computed over the mesh.

    With a mesh the rows of ``x1`` are padded (last row repeated) to a multiple of D,
    computed row-sharded (``fn(..., mesh=mesh)``) and gathered into a host array of
    the (n1, n2) Gram; without one this is ``fn(x1, x2, **kwargs)``.
    """
    if mesh is None:
        return fn(x1, x2, **kwargs)
    n = x1.shape[0]
    x1 = np.asarray(x1)
    out = fn(
        pad_rows(x1, device_count(mesh)), x1 if x2 is None else x2, mesh=mesh, **kwargs
    )
    return host_array(out)[:n]


def host_array(x) -> np.ndarray:
    """The whole of ``x`` as a NumPy array on this process.

    Also for arrays that span several processes (``jax.distributed``, multi-host):
    their non-local shards are gathered (``multihost_utils.process_allgather``), which
    every process must then call, as the callers here do.
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def host_value(x):
    """``x`` as a NumPy array when it is a ``jax.Array`` on several devices.

    Eager host callbacks (``pure_callback``, e.g. the scipy-backed measurements)
    refuse arrays placed on a mesh; inside ``jit`` they accept them.
    """
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
        return host_array(x)
    return x


def device_block(block_rows: int, mesh: Mesh | None) -> int:
    """Rows per device block when ``block_rows`` rows are split over the mesh."""
    return max(1, -(-int(block_rows) // device_count(mesh)))


def shard_map(fn, mesh, in_specs, out_specs):
    """``jax.shard_map`` with the varying-manual-axes check off (hand collectives)."""
    return jax.shard_map(
        fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
    )
