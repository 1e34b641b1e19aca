r"""Scale-out over a 1-D :class:`jax.sharding.Mesh`: the mesh tools, sharded operators.

The public entry points (``ntk``, ``nngp``, ``kernel_regression``, ``spectrum``,
``gd_dynamics``, ``inverse_regression``, ``networks.train``) take ``mesh=None`` (one
device) or a 1-D mesh, whatever its axis name and axis type (``Explicit`` axes from
:func:`jax.make_mesh`, ``Auto`` axes from ``Mesh(devices, names)``). They validate it
with :func:`check_mesh` and hand it to the functions here; the algorithms of
:mod:`ntkspec.solvers` run unchanged on the sharded operators.

Layout. With D devices, a kernel operator's *work* is split over the devices inside
``jax.shard_map`` and its matvec returns a *replicated* vector: every reduction of CG
and Lanczos (inner products over the N points) then acts on replicated arrays, so
nothing contracts a sharded axis outside ``shard_map`` (under Explicit axes
``jnp.vdot`` of two sharded vectors raises ``ShardingTypeError``). Vectors are O(N)
per device; the O(N^2) or O(2^d N) work and its memory are divided by D:

* scattered points (:class:`ShardedBlockedGram`): the row blocks of
  :math:`K = [k(x_i, x_j)]` are dealt to the devices; each device builds one block of
  :math:`\lceil b/D\rceil` rows at a time, so memory per device is
  :math:`O(\lceil b/D\rceil N)` (b = rows per step over all devices), never the Gram;
  the per-device blocks are gathered (``all_gather``) into :math:`K v`;
* grids (:class:`ShardedGridOperator`): with c >= D right-hand sides (channels,
  images) the FFT matvec is batched over channels, padded with zero channels to a
  multiple of D; with fewer channels than devices on a grid of dimension >= 2 whose
  first side and (embedded) second side are multiples of D, the grid is sharded along
  its first axis ("slab" decomposition): FFTs along the local axes, an ``all_to_all``
  transposition, the FFT along axis 0, the symbol, and back, one channel at a time;
  each device's complex FFT workspace is :math:`1/D` of the
  :math:`(2n_1)\cdots(2n_d)` embedding (the operator's real column and
  half-spectrum stay replicated). Otherwise (1-D grids) the channels are padded to D.
* a dense Gram (:func:`sharded_gram`, ``ntk(..., mesh=)``): rows
  :math:`[iN/D, (i+1)N/D)` are computed on device i (one ``shard_map``) and the
  result is one row-sharded ``jax.Array``.
* training (:func:`data_parallel`): the rows of every gradient block are split over
  the devices and the loss and gradient are summed by ``psum``; ensembles
  (:func:`ntkspec.networks.train_ensemble`) split their members over the devices,
  each device ``vmap``-ing its own (``shard_map``).

Operators are placed by :func:`shard` (``shard_operator`` is the same function),
dispatched on the operator type with ``functools.singledispatch``. The
registrations for the operators of :mod:`ntkspec.operators` are below, one block per
type; a new operator type registers its own (``@shard.register(NewOperator)``) and
edits no central ladder. The mesh utilities live in the private
``ntkspec._mesh`` and the row-sharded Gram in :mod:`ntkspec.kernels`, so that the
modules below the operators never import this one: this module imports
:mod:`ntkspec.operators`, never the other way round.

Multi-host: after ``jax.distributed.initialize()``, a mesh over ``jax.devices()``
spans all hosts and the collectives run over it; results the library needs on the host
are gathered by :func:`host_array` (``multihost_utils.process_allgather`` for arrays
with shards on other processes), so every process makes the same calls. Tested with two
processes of 2 CPU devices each (tests/test_multihost.py).

References:
    JAX documentation, "Distributed arrays and automatic parallelization" and
    "Manual parallelism with shard_map", https://docs.jax.dev.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import operators as ops
from ._mesh import as_columns, shard_map
from ._mesh import axis_name as axis_name
from ._mesh import batch_rows as batch_rows
from ._mesh import check_mesh as check_mesh
from ._mesh import data_parallel as data_parallel
from ._mesh import device_block as device_block
from ._mesh import device_count as device_count
from ._mesh import gram_on_mesh as gram_on_mesh
from ._mesh import host_array as host_array
from ._mesh import host_value as host_value
from ._mesh import pad_rows as pad_rows
from ._mesh import padded_size as padded_size
from ._mesh import replicated as replicated
from ._mesh import row_sharding as row_sharding
from ._mesh import shard as shard
from ._mesh import shard_batches as shard_batches
from ._mesh import shard_rows as shard_rows
from ._numerics import x64_scope
from .kernels import sharded_gram as sharded_gram

__all__ = [
    "check_mesh",
    "device_count",
    "axis_name",
    "padded_size",
    "pad_rows",
    "row_sharding",
    "replicated",
    "shard_rows",
    "sharded_gram",
    "gram_on_mesh",
    "host_value",
    "host_array",
    "device_block",
    "ShardedBlockedGram",
    "ShardedGridOperator",
    "ShardedDense",
    "shard",
    "shard_operator",
    "data_parallel",
    "batch_rows",
    "shard_batches",
    "train_ensemble",
]

#: The same function as :func:`shard` (its name before issue 23; kept, not deprecated).
shard_operator = shard

# --------------------------------------------------------------------------------------
# Scattered points: the blocked Gram.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["op"], meta_fields=["mesh"]
)
@dataclasses.dataclass(frozen=True)
class ShardedBlockedGram:
    r"""A :class:`~ntkspec.operators.BlockedGramOperator` with its blocks on a mesh.

    ``op.row_blocks`` (padded to a multiple of D blocks) and ``op.offsets`` are
    sharded over the mesh axis; columns, profile coefficients and near-pair
    corrections are replicated. A matvec builds, on each device, one block of
    ``b`` rows (``op``'s block size) at a time: memory per device
    :math:`O(b N)` for the block plus O(N (d + c)) for the columns and vectors.

    Attributes:
        op: the blocked operator (placed).
        mesh: the 1-D mesh (static).
    """

    op: object
    mesh: Mesh

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N)."""
        return self.op.shape

    @property
    def structure(self) -> str:
        """The blocked operator's structure tag (sharding keeps it)."""
        return self.op.structure

    @property
    def is_symmetric(self) -> bool:
        """The blocked operator's."""
        return self.op.is_symmetric

    @property
    def dtype(self):
        """The kernel dtype."""
        return self.op.dtype

    @property
    def devices(self) -> int:
        """Devices used."""
        return device_count(self.mesh)

    def matvec(self, v):
        """:math:`K v` for v of shape (N,) or (N, c), replicated over the mesh."""
        with x64_scope(self.dtype):
            return _sharded_blocked_matvec(self, jnp.asarray(v, self.dtype))


@jax.jit
def _sharded_blocked_matvec(sop: ShardedBlockedGram, v):
    op, mesh = sop.op, sop.mesh
    ax = axis_name(mesh)
    V = v[:, None] if v.ndim == 1 else v

    def local(blocks, offsets, arch, columns, coefs, V):
        lop = dataclasses.replace(
            op,
            row_blocks=blocks,
            offsets=offsets,
            arch=arch,
            columns=columns,
            coefs=coefs,
        )
        out = jax.lax.map(lambda i: lop.block(i) @ V, jnp.arange(blocks.shape[0]))
        return jax.lax.all_gather(out, ax, axis=0, tiled=True)

    specs = (P(ax), P(ax), P(), P(), P(), P())
    out = shard_map(local, mesh, specs, P())(
        op.row_blocks, op.offsets, op.arch, op.columns, op.coefs, V
    )
    out = out.reshape(-1, V.shape[1])[: op.num_rows]
    out = out.at[op.corr_rows].add(op.corr_vals[:, None] * V[op.corr_cols])
    return out[:, 0] if v.ndim == 1 else out


@shard.register(ops.BlockedGramOperator)
def _shard_blocked(op, mesh: Mesh) -> ShardedBlockedGram:
    d = device_count(mesh)
    nb = op.row_blocks.shape[0]
    pad = padded_size(nb, d) - nb
    blocks, offsets = op.row_blocks, op.offsets
    with x64_scope(op.dtype):
        if pad:
            blocks = jnp.concatenate([blocks, jnp.repeat(blocks[-1:], pad, axis=0)])
            offsets = jnp.concatenate([offsets, jnp.repeat(offsets[-1:], pad)])
        rest = jax.device_put(
            dataclasses.replace(
                op, row_blocks=op.row_blocks[:1], offsets=op.offsets[:1]
            ),
            replicated(mesh),
        )
        placed = dataclasses.replace(
            rest,
            row_blocks=jax.device_put(blocks, row_sharding(mesh, 3)),
            offsets=jax.device_put(offsets, row_sharding(mesh, 1)),
        )
    return ShardedBlockedGram(placed, mesh)


# --------------------------------------------------------------------------------------
# Dense matrices (row-sharded).
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["matrix"],
    meta_fields=["num_rows", "mesh"],
)
@dataclasses.dataclass(frozen=True)
class ShardedDense:
    r"""A dense (M, N) matrix with its rows (padded to a multiple of D) on a mesh.

    Attributes:
        matrix: the (M_pad, N) row-sharded matrix.
        num_rows: M (static).
        mesh: the mesh (static).
    """

    matrix: jax.Array
    num_rows: int
    mesh: Mesh

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N)."""
        return (self.num_rows, self.matrix.shape[1])

    #: The structure tag: a dense matrix (its rows on the mesh).
    structure = "dense"

    @property
    def is_symmetric(self) -> bool:
        """True for a square matrix (a self-Gram; the symmetry is not re-checked)."""
        return self.num_rows == self.matrix.shape[1]

    @property
    def dtype(self):
        """The dtype of the entries."""
        return self.matrix.dtype

    def matvec(self, v):
        """:math:`K v`, replicated over the mesh."""
        with x64_scope(self.dtype):
            return _sharded_dense_matvec(self, jnp.asarray(v, self.dtype))


@jax.jit
def _sharded_dense_matvec(sop: ShardedDense, v):
    ax = axis_name(sop.mesh)

    def local(m, v):
        return jax.lax.all_gather(m @ v, ax, axis=0, tiled=True)

    out = shard_map(local, sop.mesh, (P(ax), P()), P())(sop.matrix, v)
    return out[: sop.num_rows]


def _shard_dense(matrix, mesh: Mesh) -> ShardedDense:
    d = device_count(mesh)
    m = matrix.shape[0]
    with x64_scope(matrix.dtype):
        mat = jnp.asarray(matrix)
        pad = padded_size(m, d) - m
        if pad:
            mat = jnp.concatenate([mat, jnp.zeros((pad, mat.shape[1]), mat.dtype)])
        return ShardedDense(jax.device_put(mat, row_sharding(mesh, 2)), m, mesh)


# --------------------------------------------------------------------------------------
# Grids: FFT operators batched over channels, or sharded along the first grid axis.
# --------------------------------------------------------------------------------------


def _fft_lengths(op) -> tuple[int, ...]:
    shape = op.grid.shape
    return shape if op.is_circulant else tuple(2 * n for n in shape)


def _slab_ok(op, devices: int) -> bool:
    shape, lengths = op.grid.shape, _fft_lengths(op)
    return len(shape) >= 2 and shape[0] % devices == 0 and lengths[1] % devices == 0


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["base", "full_symbol"],
    meta_fields=["mesh"],
)
@dataclasses.dataclass(frozen=True)
class ShardedGridOperator:
    r"""A :class:`~ntkspec.operators.GridKernelOperator` applied across a mesh.

    ``matvec`` of a block (N, c): with c >= D, or when the grid cannot be sharded
    along its first axis, the channels are padded with zeros to a multiple of D and
    each device runs the FFT matvec of its channels. With c < D on a grid of
    dimension >= 2 with ``n_1 % D == 0`` and ``L_2 % D == 0`` (L the FFT lengths,
    :math:`2n` for the embedded Toeplitz) the grid is sharded along axis 0: complex
    FFTs along axes 2..d on :math:`n_1/D` slabs, an ``all_to_all`` to slabs along
    axis 2, the FFT along axis 1 (length :math:`L_1`), the full symbol
    (``fftn(column).real``, sharded along axis 2), and back. Results are replicated.

    Everything else (``grid``, ``column``, eigenvalues, T. Chan preconditioner) is the
    base operator's.

    Attributes:
        base: the single-device operator.
        full_symbol: ``fftn(column).real`` sharded along its axis 1 (slab layout), or
            None when the grid cannot be sharded.
        mesh: the mesh (static).
    """

    base: object
    full_symbol: jax.Array | None
    mesh: Mesh

    @property
    def structure(self) -> str:
        """The base operator's structure tag (circulant or toeplitz)."""
        return self.base.structure

    #: A self-Gram on a grid.
    is_symmetric = True

    @property
    def grid(self):
        """The grid."""
        return self.base.grid

    @property
    def column(self):
        """The base operator's offset kernel."""
        return self.base.column

    @property
    def symbol(self):
        """The base operator's half-spectrum."""
        return self.base.symbol

    @property
    def is_circulant(self) -> bool:
        """Whether the Gram is circulant."""
        return self.base.is_circulant

    @property
    def shape(self) -> tuple[int, int]:
        """(N, N)."""
        return self.base.shape

    @property
    def dtype(self):
        """The kernel dtype."""
        return self.base.dtype

    @property
    def devices(self) -> int:
        """Devices used."""
        return device_count(self.mesh)

    @property
    def diagonal_value(self):
        """The constant diagonal k(0)."""
        return self.base.diagonal_value

    def eigenvalues_by_frequency(self):
        """The base operator's eigenvalues (circulant only)."""
        return self.base.eigenvalues_by_frequency()

    def eigendecomposition(self):
        """The base operator's exact eigendecomposition (circulant only)."""
        return self.base.eigendecomposition()

    def t_chan_preconditioner(self):
        """The base operator's T. Chan eigenvalues."""
        return self.base.t_chan_preconditioner()

    def layout(self, channels: int) -> str:
        """The split of a matvec of ``channels`` columns: "slab" or "channels"."""
        d = self.devices
        return "slab" if self.full_symbol is not None and channels < d else "channels"

    def matvec(self, v):
        """:math:`K v` for v of shape (N,) or (N, c), replicated over the mesh."""
        n = self.grid.size
        if v.ndim not in (1, 2) or v.shape[0] != n:
            raise ValueError(f"v must have shape ({n},) or ({n}, c); got {v.shape}")
        with x64_scope(self.dtype):
            V, squeeze = as_columns(v, self.dtype)
            if self.layout(V.shape[1]) == "slab":
                out = _slab_matvec(self, V)
            else:
                out = _channel_matvec(self, V)
            return out[:, 0] if squeeze else out


@jax.jit
def _channel_matvec(sop: ShardedGridOperator, V):
    mesh = sop.mesh
    ax = axis_name(mesh)
    d = device_count(mesh)
    c = V.shape[1]
    pad = padded_size(c, d) - c
    Vp = jnp.concatenate([V, jnp.zeros((V.shape[0], pad), V.dtype)], axis=1)
    per = Vp.shape[1] // d

    def local(base, Vp):
        i = jax.lax.axis_index(ax)
        mine = jax.lax.dynamic_slice_in_dim(Vp, i * per, per, axis=1)
        out = base.matvec(mine)
        return jax.lax.all_gather(out, ax, axis=1, tiled=True)

    out = shard_map(local, mesh, (P(), P()), P())(sop.base, Vp)
    return out[:, :c]


@jax.jit
def _slab_matvec(sop: ShardedGridOperator, V):
    mesh = sop.mesh
    ax = axis_name(mesh)
    d = device_count(mesh)
    shape = sop.grid.shape
    lengths = _fft_lengths(sop.base)
    dim = len(shape)
    r = shape[0] // d

    def one(sym, v):
        """One channel, v (N,): slab FFTs, all_to_all, FFT along axis 1, back."""
        i = jax.lax.axis_index(ax)
        x = v.reshape(shape)
        x = jax.lax.dynamic_slice_in_dim(x, i * r, r, axis=0)  # (n1/D, n2, ...)
        x = x.astype(jnp.result_type(x.dtype, jnp.complex64))
        for a in range(dim - 1, 0, -1):
            x = jnp.fft.fft(x, n=lengths[a], axis=a)
        x = jax.lax.all_to_all(x, ax, 1, 0, tiled=True)  # (n1, L2/D, ...)
        x = jnp.fft.fft(x, n=lengths[0], axis=0) * sym
        x = jax.lax.slice_in_dim(jnp.fft.ifft(x, axis=0), 0, shape[0], axis=0)
        x = jax.lax.all_to_all(x, ax, 0, 1, tiled=True)  # (n1/D, L2, ...)
        for a in range(1, dim):
            x = jax.lax.slice_in_dim(jnp.fft.ifft(x, axis=a), 0, shape[a], axis=a)
        y = jax.lax.all_gather(x.real, ax, axis=0, tiled=True)  # (n1, n2, ...)
        return y.reshape(-1).astype(v.dtype)

    # Channels one at a time (fewer than D of them take this path): XLA:CPU's FFT
    # rejects the layouts that layout assignment gives to batched slabs here.
    def local(sym, V):
        return jax.lax.map(lambda v: one(sym, v), V.T).T

    spec = P(None, ax)
    return shard_map(local, mesh, (spec, P()), P())(sop.full_symbol, V)


@shard.register(ops.GridKernelOperator)
def _shard_grid(op, mesh: Mesh) -> ShardedGridOperator:
    d = device_count(mesh)
    full = None
    with x64_scope(op.dtype):
        if _slab_ok(op, d):
            full = jax.device_put(
                jnp.fft.fftn(op.column).real,
                NamedSharding(mesh, P(None, axis_name(mesh))),
            )
        base = jax.device_put(op, replicated(mesh))
    return ShardedGridOperator(base, full, mesh)


# --------------------------------------------------------------------------------------
# The other registrations (blocked Grams and grids register beside their types above).
# --------------------------------------------------------------------------------------


@shard.register(ShardedBlockedGram)
@shard.register(ShardedGridOperator)
@shard.register(ShardedDense)
def _already_sharded(operator, mesh: Mesh):
    return operator


@shard.register(ops.DenseOperator)
def _shard_dense_operator(operator, mesh: Mesh) -> ShardedDense:
    return _shard_dense(operator.matrix, mesh)


@shard.register(ops.Shifted)
def _shard_shifted(operator, mesh: Mesh):
    return ops.Shifted(shard(operator.operator, mesh), operator.shift)


@shard.register(ops.GridTestTrainOperator)
def _shard_test_train(operator, mesh: Mesh):
    return ops.GridTestTrainOperator(
        shard(operator.fine, mesh), operator.train_shape, operator.ratio
    )


@shard.register(ops.ComposedOperator)
def _shard_composed(operator, mesh: Mesh):
    # A K A^T: K sharded, A applied replicated.
    return ops.ComposedOperator(operator.measurement, shard(operator.operator, mesh))


# --------------------------------------------------------------------------------------
# Deprecated.
# --------------------------------------------------------------------------------------


def train_ensemble(
    loss_fn: Callable,
    params,
    data,
    *,
    steps: int,
    optimizer,
    mesh: Mesh | None = None,
    learning_rates=None,
):
    """Deprecated alias of :func:`ntkspec.networks.train_stacked`.

    ``ntkspec.networks.train_ensemble`` (networks and parameter lists) is the one
    ensemble trainer; this lower-level call form (a loss over stacked parameters and
    data) keeps working for one minor release, with a ``DeprecationWarning``.
    """
    warnings.warn(
        "ntkspec.sharding.train_ensemble is deprecated and will be removed in the "
        "next minor release; use ntkspec.networks.train_ensemble (networks and "
        "parameter lists) or ntkspec.networks.train_stacked (this call form)",
        DeprecationWarning,
        stacklevel=2,
    )
    # Imported here so that `import ntkspec` does not load optax (networks does not
    # import this module: no cycle).
    from .networks.ensemble import train_stacked

    return train_stacked(
        loss_fn,
        params,
        data,
        steps=steps,
        optimizer=optimizer,
        mesh=mesh,
        learning_rates=learning_rates,
    )
