r"""Mesh utilities shared by the modules that take ``mesh=``: no ntkspec concept here.

The public face of these helpers is :mod:`ntkspec.sharding`, which re-exports them.
They live in this private module so that the modules below the operators
(:mod:`ntkspec.kernels`, :mod:`ntkspec.operators`) and :mod:`ntkspec.networks` can use
them without importing :mod:`ntkspec.sharding`, which imports the operators. This
module imports nothing from ntkspec, so it closes no import cycle.

It also holds the generic :func:`shard`, dispatched on the operator type with
:func:`functools.singledispatch`: each operator type registers its own sharding
beside the code that knows it (``@shard.register(OperatorType)``), so that adding an
operator never edits a central ladder (as lineax registers ``diagonal`` per operator).

References:
    JAX documentation, "Distributed arrays and automatic parallelization" and
    "Manual parallelism with shard_map", https://docs.jax.dev.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# --------------------------------------------------------------------------------------
# The mesh value and row layouts.
# --------------------------------------------------------------------------------------


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
    return jax.shard_map(
        fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False
    )


def as_columns(v, dtype):
    v = jnp.asarray(v, dtype)
    return (v[:, None], True) if v.ndim == 1 else (v, False)


# --------------------------------------------------------------------------------------
# Training: the rows of every gradient block over the mesh.
# --------------------------------------------------------------------------------------


def data_parallel(value_and_grad: Callable, mesh: Mesh) -> Callable:
    """``value_and_grad(forward, params, batches)`` with the batch rows on the mesh.

    ``batches = (x, y, mask, scale)`` with x (k, b, d), y (k, b, c), mask (k, b),
    b a multiple of D: each device computes the loss and gradient of its b/D rows of
    every block (``scale`` is the global 1/(2 y.size)), and ``psum`` adds them, so
    the result is the full-batch loss and gradient on every device.
    """
    ax = axis_name(mesh)

    def wrapped(forward, params, batches):
        xb, yb, mb, scale = batches

        def local(params, xb, yb, mb, scale):
            val = value_and_grad(forward, params, (xb, yb, mb, scale))
            return jax.lax.psum(val, ax)

        rows = P(None, ax)
        return shard_map(local, mesh, (P(), rows, rows, rows, P()), P())(
            params, xb, yb, mb, scale
        )

    return wrapped


def batch_rows(block_rows: int, mesh: Mesh | None) -> int:
    """``block_rows`` rounded up to a multiple of the device count."""
    return padded_size(block_rows, device_count(mesh))


def shard_batches(batches, mesh: Mesh):
    """Place ``(x, y, mask, scale)`` blocks with their rows (axis 1) on the mesh."""
    xb, yb, mb, scale = batches
    ax = axis_name(mesh)

    def put(a):
        spec = P(None, ax, *([None] * (a.ndim - 2)))
        return jax.device_put(a, NamedSharding(mesh, spec))

    return put(xb), put(yb), put(mb), scale


# --------------------------------------------------------------------------------------
# Operators: one generic, one registration per operator type.
# --------------------------------------------------------------------------------------


@functools.singledispatch
def _shard_by_type(operator, mesh: Mesh):
    name = type(operator).__name__
    raise TypeError(
        f"shard cannot place an operator of type {name} on a mesh: no sharding is "
        "registered for that type. Use an ntkspec.operators value, or register one "
        f"with @ntkspec.sharding.shard.register({name}) (a function (operator, mesh) "
        "-> operator)"
    )


def shard(operator, mesh: Mesh | None):
    """The operator spread over ``mesh``; returned unchanged for ``mesh=None``.

    Dispatched on ``type(operator)`` (:func:`functools.singledispatch`): each operator
    type registers its sharding with ``@shard.register(OperatorType)``, a function
    ``(operator, mesh) -> operator`` called with a checked 1-D mesh. An already
    sharded operator is returned as it is. :mod:`ntkspec.sharding` registers the
    operators of :mod:`ntkspec.operators`: blocked Grams (their row blocks dealt to
    the devices), grid operators (channels or slabs), dense operators (rows), and the
    compositions ``Shifted`` (K + ridge I), ``GridTestTrainOperator`` and
    ``ComposedOperator`` (A K A^T: K sharded, A applied replicated).

    Args:
        operator: any operator whose type has a registered sharding.
        mesh: None or a 1-D :class:`jax.sharding.Mesh`.

    Returns:
        The sharded operator (same ``shape``, ``dtype`` and ``matvec`` results, up to
        the order of floating-point sums), or ``operator`` for ``mesh=None``.

    Raises:
        TypeError: ``mesh`` is not a Mesh, or no sharding is registered for the
            operator's type (the message names it).
        ValueError: ``mesh`` has more than one axis.
    """
    mesh = check_mesh(mesh)
    if mesh is None:
        return operator
    return _shard_by_type(operator, mesh)


#: ``@shard.register(OperatorType)``: register the sharding of an operator type.
shard.register = _shard_by_type.register  # type: ignore[attr-defined]
#: ``shard.dispatch(OperatorType)``: the registered function for a type.
shard.dispatch = _shard_by_type.dispatch  # type: ignore[attr-defined]
#: The registered functions by type (what ``functools.singledispatch`` exposes).
shard.registry = _shard_by_type.registry  # type: ignore[attr-defined]
