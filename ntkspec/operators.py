r"""Kernel operators as values: each knows a Gram and applies it, without forming it.

Every operator here is an immutable JAX pytree (arrays are data, shape integers and
flags static) with ``shape``, ``dtype`` and a pure ``matvec`` over (N,) or (N, c); the
algorithms of :mod:`ntkspec.solvers` run on any of them. Building one is the only
place that calls into :mod:`ntkspec.kernels`.

Each operator carries a ``structure`` tag ("dense", "blocked", "circulant",
"toeplitz", "grid_test_train", "composed"; the protocol :class:`KernelOperator`) and
``is_symmetric``; the square ones with an exact eigendecomposition (dense: ``eigh``;
circulant: the DFT) have ``eigendecomposition()``. :func:`structure` is the one place
that reads :class:`~ntkspec.Grid`, ``mapping.is_periodic`` and
``mapping.is_stationary``; :func:`kernel_operator` builds the operator it names. The
entry points choose their algorithm from that tag (as lineax's ``AutoLinearSolver``
chooses from operator tags), never from the inputs again.

* :class:`DenseOperator` (:func:`dense_gram`): the Gram held as a matrix; exact
  ``eigh``.
* :class:`BlockedGramOperator` (:func:`blocked_gram`): scattered points, row blocks
  recomputed on every product (memory O(block x N)).
* :class:`GridKernelOperator` (:func:`grid_operator`): the multilevel circulant
  (periodic mapping; exact eigendecomposition by the DFT) or embedded multilevel
  Toeplitz Gram on a :class:`~ntkspec.Grid`, applied by FFT.
* :class:`GridTestTrainOperator` (:func:`grid_operators`): grid to an r-times finer
  grid; points to points is a rectangular :class:`DenseOperator` or
  :class:`BlockedGramOperator`.
* :class:`Shifted` (:math:`K + \delta I`) and :class:`ComposedOperator`
  (:math:`A K A^\top` for a measurement value A of :mod:`ntkspec.measurements`:
  dense, sparse, a pair of functions, CT or k-space; :func:`composed`).

The grid operators:

For a Fourier mapping the NNGP/NTK is stationary, :math:`K_{ij} = k(x_i - x_j)`, so on a
:class:`~ntkspec.Grid` of shape :math:`(n_1, \dots, n_d)` the Gram depends only on the
integer offsets :math:`o` between multi-indices, through :math:`k(o_1/n_1, \dots,
o_d/n_d)`:

* with integer frequencies (``mapping.is_periodic``) :math:`k` is 1-periodic in every
  axis and the Gram is multilevel *circulant*; its first column is :math:`k(o/n)`,
  :math:`0 \le o_i < n_i`, its eigenvectors are the Fourier modes and its eigenvalues
  the
  d-dimensional DFT of that column;
* otherwise it is multilevel *Toeplitz*; embedded in a circulant of size
  :math:`(2n_1, \dots, 2n_d)` (first column :math:`k` at offsets :math:`o_i/n_i` for
  :math:`o_i < n_i`, :math:`(o_i - 2n_i)/n_i` for :math:`o_i > n_i`, zero at
  :math:`o_i = n_i`), it is applied exactly with FFTs of that size (Dietrich & Newsam
  1997).

The kernel on all offsets needs only
:math:`s(\Delta) = \sum_j a_j^2 \sin^2(\pi b_j^\top \Delta)`
(:math:`\sin^2(\theta_0/2) = s/S`, :math:`S = \sum_j a_j^2`). On a grid the phase is a
sum
of per-axis phases, :math:`\pi b_j^\top\Delta = \sum_i A^{(i)}_{o_i j}`, and
:math:`\sin^2(A + C) = \sin^2 A\cos^2 C + \cos^2 A \sin^2 C + 2 \sin A\cos A \sin C\cos
C`
turns :math:`s` on the whole offset grid into three matrix products of (offsets x m)
factors weighted by :math:`a_j^2`: :math:`O(n^2 m)` BLAS work instead of :math:`n^2 m`
transcendental calls, every term :math:`O(\Delta^2)` (no cancellation near 0, and
:math:`s(0) = 0` exactly). In 3D the first two axes are combined elementwise first. For
integer frequencies the phases are reduced modulo the period in integer arithmetic. The
kernel then comes from :func:`ntkspec.kernels.profile` (its verified Chebyshev fast path
for large inputs).

References:
    Dietrich & Newsam, "Fast and exact simulation of stationary Gaussian processes
    through
    circulant embedding of the covariance matrix", SIAM J. Sci. Comput. 18(4), 1997.
    T. Chan, "An optimal circulant preconditioner for Toeplitz systems", SIAM J. Sci.
    Stat. Comput. 9(4), 1988.
    R. Chan & Ng, "Conjugate gradient methods for Toeplitz systems", SIAM Review 38,
    1996.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from ._mesh import check_mesh, gram_on_mesh
from ._numerics import check_grid_work, dense_cap_bytes, resolve_dtype, x64_scope
from ._validation import (
    as_points,
    check_grid,
    check_kernel,
    check_real,
    is_traced,
)
from .grid import Grid
from .kernels import (
    ReluMLP,
    check_arch,
    check_profile_range,
    exact_pair_values,
    gram_block,
    near_pairs,
    nngp,
    ntk,
    profile,
    profile_coefficients,
    self_kernel_values,
)
from .mappings import FourierMapping, check_mapping, check_stationary_mapping
from .measurements import as_measurement

__all__ = [
    "KernelOperator",
    "STRUCTURES",
    "structure",
    "kernel_operator",
    "offset_sin2",
    "kernel_on_offsets",
    "grid_operator",
    "grid_operators",
    "grid_ratio",
    "GridKernelOperator",
    "GridTestTrainOperator",
    "SectorOperator",
    "symmetry_sectors",
    "even_axes",
    "DenseOperator",
    "dense_gram",
    "gram_diagonal",
    "BlockedGramOperator",
    "blocked_gram",
    "Shifted",
    "Eigendecomposition",
    "measurement",
    "ComposedOperator",
    "composed",
    "circulant_matvec",
    "toeplitz_matvec",
    "t_chan_column",
    "strang_column",
]


# --------------------------------------------------------------------------------------
# The kernel on all grid offsets.
# --------------------------------------------------------------------------------------


def _axis_sin_cos(
    b_axis: np.ndarray, n: int, length: int, periodic: bool, shift: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-axis :math:`\sin` and :math:`\cos` of the phases :math:`\pi b_j \Delta(o)`.

    Each of shape (length, m), float64. ``length`` is n (circulant column) or 2n
    (embedding; index o > n means offset o - 2n). For integer frequencies the phase is
    :math:`\pi k/n` with :math:`k = b o \bmod n` reduced exactly in integers (the 2n
    shift is a whole period), so both come from a table of n values by indexing: no
    transcendental call per entry (on small grids those cost more than the products).
    With ``shift`` the offsets are :math:`(o + \tfrac12)/n` (half a pitch, the
    held-out pixels of :mod:`ntkspec.design`): :math:`k = b(2o + 1) \bmod 2n` over a
    table of 2n phases :math:`\pi k/(2n)`.
    """
    o = np.arange(length, dtype=np.int64)
    if periodic:
        b_int = np.rint(b_axis).astype(np.int64)
        period = 2 * n if shift else n
        idx = np.mod(np.outer(2 * o + 1 if shift else o, b_int), period)
        table = np.pi * (np.arange(period, dtype=np.float64) / period)
        return np.sin(table)[idx], np.cos(table)[idx]
    delta = np.where(o > n, o - 2 * n, o).astype(np.float64) / n
    if shift:
        delta = (o.astype(np.float64) + 0.5) / n
    phase = np.pi * np.outer(delta, b_axis)
    return np.sin(phase), np.cos(phase)


def _s_1d(s0, c0, a2):
    return (s0 * s0) @ a2


def _s_2d(s0, c0, s1, c1, a2):
    return _three_products(s0, c0, s1, c1, a2)


def _s_3d(s0, c0, s1, c1, s2, c2, a2):
    # Angle addition for the first two axes (products only), shape (L0 * L1, m).
    sx = (s0[:, None, :] * c1[None, :, :] + c0[:, None, :] * s1[None, :, :]).reshape(
        -1, a2.shape[0]
    )
    cx = (c0[:, None, :] * c1[None, :, :] - s0[:, None, :] * s1[None, :, :]).reshape(
        -1, a2.shape[0]
    )
    out = _three_products(sx, cx, s2, c2, a2)
    return out.reshape(s0.shape[0], s1.shape[0], s2.shape[0])


def _three_products(s0, c0, s1, c1, a2):
    r""":math:`\sum_j a_j^2 \sin^2(A_{ij} + C_{kj})` for all (i, k), three products."""
    w = a2[None, :]
    return (
        ((s0 * s0) * w) @ (c1 * c1).T
        + ((c0 * c0) * w) @ (s1 * s1).T
        + (2.0 * (s0 * c0) * w) @ (s1 * c1).T
    )


_S_FNS = (_s_1d, _s_2d, _s_3d)


def _offset_factors(
    mapping: FourierMapping,
    shape: tuple[int, ...],
    embed: bool,
    rows: int | None = None,
    shift: bool = False,
) -> list[np.ndarray]:
    """Per-axis (sin, cos) phase factors, host NumPy, from the concrete ``mapping.B``.

    With ``rows`` only the first ``rows`` offsets along axis 0.
    """
    B = np.asarray(mapping.B, dtype=np.float64)
    factors = []
    for i, n in enumerate(shape):
        length = 2 * n if embed else n
        if i == 0 and rows is not None:
            length = rows  # the first rows offsets only (o < rows <= n)
        factors.extend(_axis_sin_cos(B[:, i], n, length, mapping.is_periodic, shift))
    return factors


def _sin2_from_factors(factors, a2):
    r""":math:`s/S = \sum_j a_j^2 \sin^2(\pi b_j^\top \Delta) / \sum_j a_j^2` in [0, 1].

    The one evaluation of the offset kernel's argument (jnp: traceable and
    differentiable in the weights ``a2``), from the per-axis factors.
    """
    s = _S_FNS[len(factors) // 2 - 1](*factors, a2)
    return jnp.clip(s / jnp.sum(a2), 0.0, 1.0)


def offset_sin2(
    mapping: FourierMapping,
    shape: tuple[int, ...],
    *,
    shift: bool = False,
    dtype=np.float64,
) -> jax.Array:
    r""":math:`\sin^2(\theta_0/2) = s(\Delta)/S` on the circulant offsets of a grid.

    Entry :math:`o` is :math:`\sum_j a_j^2 \sin^2(\pi b_j^\top \Delta_o) / S`,
    :math:`\Delta_o = o/n` per axis (:math:`(o + \tfrac12)/n` with ``shift``), for
    :math:`0 \le o_i < n_i`, by the three products of the module docstring with the
    phases reduced in integers when ``mapping.is_periodic``. The amplitudes
    ``mapping.a`` may be traced (``jax.grad`` in :mod:`ntkspec.design`); ``B`` must
    be concrete (it fixes the phases). The stationary kernel is then
    :func:`ntkspec.kernels.profile` of this array.

    Args:
        mapping: a Fourier mapping of dimension ``len(shape)`` (1 to 3).
        shape: the grid shape.
        shift: offsets shifted by half a pitch on every axis.
        dtype: float64 (default) or float32.

    Returns:
        Array of shape ``shape`` and dtype ``dtype``.
    """
    factors = _offset_factors(mapping, tuple(shape), False, shift=shift)
    with x64_scope(dtype):
        a2 = jnp.asarray(mapping.a, dtype=dtype) ** 2
        return _sin2_from_factors([jnp.asarray(f, dtype=dtype) for f in factors], a2)


def _mirror_axis0_jnp(k_half, shape: tuple[int, ...]):
    """Complete an even array from its first n_0 // 2 + 1 rows: k[o] = k[-o mod n]."""
    n0 = shape[0]
    tail = k_half[n0 - np.arange(k_half.shape[0], n0)]
    for axis, n in enumerate(shape[1:], start=1):
        tail = jnp.take(tail, (-np.arange(n)) % n, axis=axis)
    return jnp.concatenate([k_half, tail], axis=0)


@functools.partial(
    jax.jit,
    static_argnames=(
        "shape", "embed", "half", "kernel", "input_dim", "dtype", "symbol", "ratio"
    ),
)  # fmt: skip
def _grid_columns(
    arch, factors, a2, q, coefs, *, shape, embed, half, kernel, input_dim, dtype,
    symbol, ratio,
):  # fmt: skip
    r"""The grid build as one compiled program (issue 17: no eager ops, no host trips).

    :math:`s/S` on the offsets (float64), the profile (the verified Chebyshev fit
    ``coefs`` or, when None, the exact recursion), the mirror of the circulant column
    or the zero planes of the embedding, and, on request, the symbol
    ``rfftn(column).real``; with ``ratio`` also the ``[::r]`` subsampled column of the
    coarser (train) grid and its symbol. Returns a tuple of those arrays.
    """
    s = _sin2_from_factors(factors, a2)
    k = profile(
        arch, s, input_var=q, input_dim=input_dim, kernel=kernel, dtype=dtype,
        coefs=coefs,
    )  # fmt: skip
    if half is not None and half < shape[0]:
        k = _mirror_axis0_jnp(k, shape)
    if embed:
        for axis, n in enumerate(shape):
            k = k.at[(slice(None),) * axis + (n,)].set(0.0)
    out = (k,)
    if symbol:
        out += (jnp.fft.rfftn(k).real.astype(k.dtype),)
    if ratio is not None:
        col = k[tuple(slice(None, None, r) for r in ratio)]
        out += (col, jnp.fft.rfftn(col).real.astype(k.dtype))
    return out


def _offsets_kernel(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    kernel: str,
    embed: bool,
    dtype,
    *,
    symbol: bool = False,
    ratio: tuple[int, ...] | None = None,
):
    """Validated arguments to :func:`_grid_columns`: host factors, fit, one call."""
    # The kernel is even, k(o) = k(-o mod n): on the circulant column only the first
    # n_1 // 2 + 1 offsets along axis 0 are evaluated, the rest are mirrored.
    half = None if embed else grid.shape[0] // 2 + 1
    factors = _offset_factors(mapping, grid.shape, embed, rows=half)
    a2 = np.asarray(mapping.a, dtype=np.float64) ** 2
    m = mapping.num_freqs
    q = mapping.norm_sq / (2 * m)
    check_real(q, "the mapping's input variance", low=0.0, low_inclusive=False)
    # the column's values and its FFT (the eigenvalues) are bounded by size * k(0)
    size = math.prod(2 * n if embed else n for n in grid.shape)
    check_profile_range(arch, q, 2 * m, kernel, dtype, size=size)
    coefs = profile_coefficients(arch, float(q), 2 * m, kernel)
    with x64_scope(np.float64):
        return _grid_columns(
            arch, factors, a2, np.float64(q), coefs, shape=grid.shape, embed=embed,
            half=half, kernel=kernel, input_dim=2 * m, dtype=np.dtype(dtype),
            symbol=symbol, ratio=ratio,
        )  # fmt: skip


def kernel_on_offsets(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    *,
    kernel: str = "ntk",
    embed: bool = False,
    dtype=np.float64,
) -> jax.Array:
    r"""The stationary kernel :math:`k(\Delta)` on all offsets of a grid.

    With ``embed=False`` (periodic mappings only) entry :math:`o` is
    :math:`k(o_1/n_1, \dots, o_d/n_d)`, :math:`0 \le o_i < n_i`: the first column of the
    multilevel circulant Gram. With ``embed=True`` (any Fourier mapping) the array has
    shape :math:`(2n_1, \dots, 2n_d)` and entry :math:`o` is :math:`k` at per-axis
    offset
    :math:`o_i/n_i` for :math:`o_i < n_i`, :math:`(o_i - 2n_i)/n_i` for
    :math:`o_i > n_i`, and 0 where some :math:`o_i = n_i`: the first column of the
    circulant embedding of the multilevel Toeplitz Gram.

    :math:`s(\Delta) = \sum_j a_j^2 \sin^2(\pi b_j^\top\Delta)` is computed by three
    matrix products per the module docstring, then
    :math:`k = h(s/S)` by :func:`ntkspec.kernels.profile` with input variance
    :math:`S/(2m)` and input width :math:`2m`.

    Args:
        arch: the architecture.
        mapping: a Fourier mapping with ``mapping.dim == grid.dim``.
        grid: the grid.
        kernel: "ntk" or "nngp".
        embed: False for the circulant column, True for the circulant embedding.
        dtype: float64 (default) or float32 for the kernel values (offsets are always
            formed in float64).

    Returns:
        ``jax.Array`` of shape ``grid.shape`` (``embed=False``) or
        ``tuple(2 * n for n in grid.shape)`` (``embed=True``).

    Raises:
        TypeError: wrong argument types (``mapping`` must be a FourierMapping).
        ValueError: ``mapping.dim != grid.dim``, a bad ``kernel``, or ``embed=False``
            with a non-periodic mapping.

    Example:
        >>> import ntkspec
        >>> from ntkspec.operators import kernel_on_offsets
        >>> col = kernel_on_offsets(ntkspec.ReluMLP(2), ntkspec.mappings.basic(1),
        ...                         ntkspec.Grid((4,)))
        >>> col.round(6).tolist()
        [2.0, 0.31831, 0.0, 0.31831]
    """
    check_arch(arch)
    check_grid(grid)
    check_stationary_mapping(mapping, grid)
    check_kernel(kernel)
    if not isinstance(embed, bool):
        raise TypeError(f"embed must be True or False; got {embed!r}")
    dtype = resolve_dtype(dtype)
    check_grid_work(grid.shape, embed=embed, what=f"The FFT/Toeplitz work on {grid!r}")
    if not embed and not mapping.is_periodic:
        raise ValueError(
            "embed=False needs a periodic mapping (all frequencies integer), whose "
            "Gram "
            "on the grid is circulant; this mapping is not periodic: use embed=True "
            "(the "
            "circulant embedding of its Toeplitz Gram)"
        )
    return _offsets_kernel(arch, mapping, grid, kernel, embed, dtype)[0]


# --------------------------------------------------------------------------------------
# Pure FFT matvecs (batch-first rows: X of shape (c, N)).
# --------------------------------------------------------------------------------------


@jax.jit
def _rfftn_real(column):
    return jnp.fft.rfftn(column).real


@jax.jit
def _fftn_real(column):
    return jnp.fft.fftn(column).real


@functools.partial(jax.jit, static_argnames=("shape",))
def _t_chan_eigenvalues(column, shape):
    return jnp.fft.fftn(t_chan_column(column, shape)).real


def _symbol(column, circulant: bool):
    """Real half-spectrum of the (even) first column: rfftn over all axes.

    Jitted (one compiled program per shape instead of an eager FFT and an eager
    ``real``, each compiled on first use).
    """
    return _rfftn_real(column)


@functools.partial(jax.jit, static_argnames=("shape",))
def _circulant_rows(symbol, x_rows, shape):
    d = len(shape)
    axes = tuple(range(1, d + 1))
    x = x_rows.reshape((x_rows.shape[0],) + shape)
    y = jnp.fft.irfftn(jnp.fft.rfftn(x, axes=axes) * symbol[None], s=shape, axes=axes)
    return y.reshape(x_rows.shape).astype(x_rows.dtype)


@functools.partial(jax.jit, static_argnames=("shape",))
def _toeplitz_rows(symbol, x_rows, shape):
    # Zero-padded FFTs axis by axis: the forward transforms along leading axes run on
    # arrays whose later axes are not yet padded, and the inverse crops each axis as
    # soon
    # as it is transformed back, which saves about a third of a full (2n)^d FFT pair.
    d = len(shape)
    x = x_rows.reshape((x_rows.shape[0],) + shape)
    y = jnp.fft.rfft(x, n=2 * shape[-1], axis=-1)
    for ax in range(d - 2, -1, -1):
        y = jnp.fft.fft(y, n=2 * shape[ax], axis=ax + 1)
    y = y * symbol[None]
    for ax in range(d - 1):
        y = jnp.fft.ifft(y, axis=ax + 1)
        y = jax.lax.slice_in_dim(y, 0, shape[ax], axis=ax + 1)
    y = jnp.fft.irfft(y, n=2 * shape[-1], axis=-1)[..., : shape[-1]]
    return y.reshape(x_rows.shape).astype(x_rows.dtype)


def circulant_matvec(symbol, v, shape: tuple[int, ...]):
    r"""Multilevel circulant matvec :math:`C v` by FFT, a pure jittable function.

    Args:
        symbol: the real half-spectrum ``rfftn(column).real`` of the first column,
            shape ``shape[:-1] + (shape[-1] // 2 + 1,)``.
        v: vector (N,) or block (N, c), N = prod(shape), in C order of the grid.
        shape: the grid shape (static).

    Returns:
        :math:`C v`, same shape as ``v``.
    """
    rows = v[None, :] if v.ndim == 1 else v.T
    out = _circulant_rows(symbol, rows, shape)
    return out[0] if v.ndim == 1 else out.T


def toeplitz_matvec(symbol, v, shape: tuple[int, ...]):
    r"""Multilevel Toeplitz matvec :math:`T v` by circulant embedding ; pure.

    Args:
        symbol: the real half-spectrum of the embedding's first column, shape
            ``(2 n_1, ..., 2 n_{d-1}, n_d + 1)``.
        v: vector (N,) or block (N, c).
        shape: the grid shape (static).

    Returns:
        :math:`T v`, same shape as ``v``.

    A block is transformed one column at a time (``lax.map``): the zero-padded
    per-axis FFTs of a whole block touch c times the memory per pass, and on a CPU,
    where the FFT is memory-bound, they can cost more per column than a loop over
    columns (``python -m analysis bench_matvec`` measures both).
    """
    if v.ndim == 1 or v.shape[1] == 1:
        rows = v[None, :] if v.ndim == 1 else v.T
        out = _toeplitz_rows(symbol, rows, shape)
        return out[0] if v.ndim == 1 else out.T
    out = jax.lax.map(lambda row: _toeplitz_rows(symbol, row[None], shape)[0], v.T)
    return out.T


@functools.partial(jax.jit, static_argnames=("shape", "circulant"))
def _grid_matvec(symbol, v, shape, circulant):
    """One compiled program for the matvec, transposes included (no eager ops)."""
    fn = circulant_matvec if circulant else toeplitz_matvec
    return fn(symbol, v, shape)


def t_chan_column(embed_column, shape: tuple[int, ...]):
    r"""First column of T. Chan's Frobenius-optimal (multilevel) circulant.

    Per axis :math:`c_o = ((n - o) t_o + o\, t_{o - n})/n`; the multilevel optimum
    applies
    this level by level (the weights factorise).
    """
    c = embed_column
    d = len(shape)
    for axis, n in enumerate(shape):
        o = jnp.arange(n, dtype=c.dtype)
        bshape = (1,) * axis + (n,) + (1,) * (d - axis - 1)
        w_near = ((n - o) / n).reshape(bshape)
        w_far = (o / n).reshape(bshape)
        near = jax.lax.slice_in_dim(c, 0, n, axis=axis)
        far = jax.lax.slice_in_dim(c, n, 2 * n, axis=axis)  # offsets o - n (o >= 1)
        c = w_near * near + w_far * far
    return c


def strang_column(embed_column, shape: tuple[int, ...]):
    r"""First column of Strang's circulant.

    Per axis :math:`t_o` for :math:`o \le n/2`, else :math:`t_{o-n}`.
    """
    c = embed_column
    for axis, n in enumerate(shape):
        o = np.arange(n)
        src = np.where(o <= n // 2, o, o + n)  # o - n + 2n in the embedding
        c = jnp.take(c, jnp.asarray(src), axis=axis)
    return c


# --------------------------------------------------------------------------------------
# The operator value.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["column", "symbol"],
    meta_fields=["grid", "is_circulant", "even_axes"],
)
@dataclasses.dataclass(frozen=True)
class GridKernelOperator:
    r"""The Gram :math:`K_{ij} = k(x_i - x_j)` of a stationary kernel on a grid.

    An immutable value and a JAX pytree (``column`` and ``symbol`` are data; the grid
    and the structure flag are static), built by :func:`grid_operator`. Points are in
    the grid's C order, so a vector is ``image.reshape(N)`` or ``image.reshape(N, c)``.

    Attributes:
        column: the offset kernel, shape ``grid.shape`` (circulant) or
            ``(2 n_1, ..., 2 n_d)`` (embedded Toeplitz), see :func:`kernel_on_offsets`.
        symbol: ``rfftn(column).real``, the real half-spectrum used by the matvec.
        grid: the grid.
        is_circulant: True for periodic mappings (multilevel circulant Gram).
        even_axes: the axes i in which the kernel is even on its own,
            :math:`k(\Delta) = k(\Delta')` with :math:`\Delta'` = :math:`\Delta` with
            its i-th component negated (exact, read off the mapping's frequencies by
            :func:`grid_operator`); the Gram then commutes with the reflection of axis
            i. Every stationary kernel is even under the point reflection of all axes
            at once; :func:`symmetry_sectors` uses both.
    """

    column: jax.Array
    symbol: jax.Array
    grid: Grid
    is_circulant: bool
    even_axes: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(N, N)."""
        return (self.grid.size, self.grid.size)

    @property
    def dtype(self):
        """The dtype of the kernel values."""
        return self.column.dtype

    @property
    def structure(self) -> str:
        """The structure tag: circulant (periodic mapping) or toeplitz (embedded)."""
        return "circulant" if self.is_circulant else "toeplitz"

    is_symmetric = True

    @property
    def diagonal_value(self):
        r"""The constant diagonal :math:`k(0)`, so :math:`\mathrm{tr} K = N k(0)`."""
        return self.column[(0,) * self.grid.dim]

    def matvec(self, v):
        r""":math:`K v` for v of shape (N,) or (N, c), by FFT in O(N log N).

        FFTs of size ``grid.shape`` (circulant) or :math:`(2n_1, \dots, 2n_d)`
        (embedding).

        Pure in (``self``, ``v``): it can be jitted, or called with the operator as an
        argument of a jitted function.
        """
        n = self.grid.size
        if v.ndim not in (1, 2) or v.shape[0] != n:
            raise ValueError(f"v must have shape ({n},) or ({n}, c); got {v.shape}")
        with x64_scope(self.dtype):
            v = jnp.asarray(v, dtype=self.dtype)
            return _grid_matvec(self.symbol, v, self.grid.shape, self.is_circulant)

    def eigenvalues_by_frequency(self):
        r"""All N eigenvalues, shape ``grid.shape``, in FFT order (circulant only).

        Entry at index :math:`o` belongs to the Fourier mode
        :math:`\exp(2\pi i\, m^\top x)` with :math:`m` = ``grid.frequencies()`` at o:
        :math:`\Lambda(m) = \sum_o k(o/n) e^{-2\pi i\, m^\top (o/n)}` (real, the kernel
        is
        even).

        Raises:
            ValueError: the operator is an embedded Toeplitz (non-periodic mapping).
        """
        if not self.is_circulant:
            raise ValueError(
                "eigenvalues_by_frequency needs a circulant operator (periodic "
                "mapping); "
                "this one is Toeplitz: use ntkspec.spectrum(..., k=...) (Lanczos) or "
                "t_chan_preconditioner() for an approximation"
            )
        with x64_scope(self.dtype):
            return _fftn_real(self.column)

    def eigendecomposition(self) -> Eigendecomposition:
        r"""The exact eigendecomposition by the DFT (circulant only).

        Raises:
            ValueError: the operator is an embedded Toeplitz.
        """
        lam = self.eigenvalues_by_frequency()
        return Eigendecomposition(lam, None, self.grid.shape)

    def t_chan_preconditioner(self):
        r"""Eigenvalues (``grid.shape``, FFT order) of T. Chan's optimal circulant.

        The circulant :math:`C` minimising :math:`\|C - K\|_F`; its first column is
        :math:`c_o = ((n-o) t_o + o\, t_{o-n})/n` per axis. Use :math:`C^{-1}` as a PCG
        preconditioner: with ``r`` reshaped to ``grid.shape``, :math:`C^{-1} r` =
        ``ifftn(fftn(r) / eig).real`` (or ``irfftn(rfftn(r) / eig[..., : n_d // 2 + 1],
        s=grid.shape)``). For a circulant :math:`K` it is :math:`K` itself.
        """
        with x64_scope(self.dtype):
            if self.is_circulant:
                return _fftn_real(self.column)
            return _t_chan_eigenvalues(self.column, self.grid.shape)


def grid_operator(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    *,
    kernel: str = "ntk",
    dtype=np.float64,
) -> GridKernelOperator:
    r"""The kernel Gram on a grid as a :class:`GridKernelOperator` (no N x N matrix).

    Circulant when ``mapping.is_periodic`` (column of shape ``grid.shape``), otherwise
    the
    circulant embedding of the multilevel Toeplitz Gram (column of shape
    :math:`(2n_1, \dots, 2n_d)`). Memory O(N); each matvec O(N log N).

    Args:
        arch: the architecture.
        mapping: a Fourier mapping with ``mapping.dim == grid.dim``.
        grid: the grid.
        kernel: "ntk" or "nngp".
        dtype: float64 (default) or float32.

    Returns:
        The operator.

    Example:
        >>> import numpy as np, ntkspec
        >>> from ntkspec.operators import grid_operator
        >>> op = grid_operator(ntkspec.ReluMLP(2), ntkspec.mappings.basic(1),
        ...                    ntkspec.Grid((4,)))
        >>> np.asarray(op.matvec(np.eye(4)[:, 0])).round(6).tolist()
        [2.0, 0.31831, 0.0, 0.31831]
    """
    check_arch(arch)
    check_grid(grid)
    check_stationary_mapping(mapping, grid)
    dtype = resolve_dtype(dtype)
    check_kernel(kernel)
    circulant = mapping.is_periodic
    check_grid_work(
        grid.shape, embed=not circulant, what=f"The FFT/Toeplitz work on {grid!r}"
    )
    column, symbol = _offsets_kernel(
        arch, mapping, grid, kernel, not circulant, dtype, symbol=True
    )
    return GridKernelOperator(column, symbol, grid, circulant, even_axes(mapping))


# --------------------------------------------------------------------------------------
# Symmetry sectors of a grid operator.
# --------------------------------------------------------------------------------------


def even_axes(mapping) -> tuple[int, ...]:
    r"""The axes in which the kernel of a Fourier ``mapping`` is even on its own.

    The stationary kernel depends on the offset only through
    :math:`s(\Delta) = \sum_j a_j^2 \sin^2(\pi b_j^\top \Delta)`. Negating component
    i of :math:`\Delta` is the same as negating column i of B, and :math:`\pm b_j`
    give the same term, so the kernel is even in axis i whenever the multiset of
    :math:`(a_j^2, \pm b_j)` is mapped onto itself by that negation. The test is
    exact (negation is exact in floating point; terms with :math:`a_j = 0` or
    :math:`b_j = 0` are constant and left out): axis-aligned mappings (``basic``,
    ``positional``) pass in every axis, random Gaussian frequencies in none.

    Args:
        mapping: a FourierMapping (anything else, or traced frequencies, gives ()).

    Returns:
        The sorted axes, a tuple of ints.
    """
    B, a = getattr(mapping, "B", None), getattr(mapping, "a", None)
    concrete = (np.ndarray, jax.Array)
    if not isinstance(B, concrete) or not isinstance(a, concrete):
        return ()
    if is_traced(B) or is_traced(a):
        return ()
    B = np.asarray(B, dtype=np.float64)
    a2 = np.asarray(a, dtype=np.float64) ** 2
    if B.ndim != 2 or a2.shape != (B.shape[0],):
        return ()
    keep = (a2 != 0.0) & np.any(B != 0.0, axis=1)
    B, a2 = B[keep], a2[keep]

    def canonical(freqs):
        # b and -b give the same term: the first non-zero entry made positive.
        first = np.argmax(freqs != 0.0, axis=1)
        sign = np.sign(freqs[np.arange(freqs.shape[0]), first])
        rows = np.column_stack([a2, freqs * sign[:, None]]) + 0.0  # no -0.0
        return rows[np.lexsort(rows.T[::-1])]

    ref = canonical(B)
    axes = []
    for axis in range(B.shape[1]):
        flipped = B.copy()
        flipped[:, axis] = -flipped[:, axis]
        if np.array_equal(canonical(flipped), ref):
            axes.append(axis)
    return tuple(axes)


_HALF = 1.0 / math.sqrt(2.0)


def _half_project(x, axis: int, sign: int):
    """Coordinates of x in the even (sign +1) or odd (-1) part along ``axis``."""
    m = x.shape[axis]
    h = m // 2
    lo = jax.lax.slice_in_dim(x, 0, h, axis=axis)
    hi = jnp.flip(jax.lax.slice_in_dim(x, m - h, m, axis=axis), axis=axis)
    part = (lo + hi if sign > 0 else lo - hi) * _HALF
    if sign > 0 and m % 2:
        part = jnp.concatenate(
            [part, jax.lax.slice_in_dim(x, h, h + 1, axis=axis)], axis=axis
        )
    return part


def _half_lift(y, axis: int, sign: int, m: int):
    """The transpose of :func:`_half_project`: back to length m along ``axis``."""
    h = m // 2
    lo = jax.lax.slice_in_dim(y, 0, h, axis=axis) * _HALF
    parts = [lo]
    if m % 2 and sign > 0:
        parts.append(jax.lax.slice_in_dim(y, h, h + 1, axis=axis))
    elif m % 2:
        shape = y.shape[:axis] + (1,) + y.shape[axis + 1 :]
        parts.append(jnp.zeros(shape, y.dtype))
    parts.append(jnp.flip(lo if sign > 0 else -lo, axis=axis))
    return jnp.concatenate(parts, axis=axis)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["operator"],
    meta_fields=["groups", "signs"],
)
@dataclasses.dataclass(frozen=True)
class SectorOperator:
    r"""A grid Gram restricted to one symmetry sector, in an orthonormal basis of it.

    The grid axes are split into groups :math:`G_1, \dots, G_r`; the reflection
    :math:`P_l` reverses every axis of :math:`G_l` at once (index :math:`o_i \to
    n_i - 1 - o_i`), and each commutes with the Gram. The sector of signs
    :math:`\epsilon \in \{\pm 1\}^r` is the joint eigenspace
    :math:`P_l v = \epsilon_l v`. Its orthonormal basis :math:`B` pairs each index with
    its mirror image, :math:`(e_o + \epsilon_l e_{P_l o})/\sqrt 2`, group by group (a
    group flattened in C order, M entries: :math:`\lceil M/2 \rceil` even coordinates,
    the fixed point of an odd M among them, and :math:`\lfloor M/2 \rfloor` odd ones),
    so the sectors have unequal sizes on odd grids. ``matvec`` applies
    :math:`B^\top K B` (one matvec of the grid operator); :meth:`lift` is :math:`B`,
    :meth:`project` is :math:`B^\top`. Built by :func:`symmetry_sectors`.

    Attributes:
        operator: the :class:`GridKernelOperator`.
        groups: the axis groups, each a tuple of axes.
        signs: the parity (+1 or -1) in each group.
    """

    operator: GridKernelOperator
    groups: tuple[tuple[int, ...], ...]
    signs: tuple[int, ...]

    structure = "sector"
    is_symmetric = True

    @property
    def lengths(self) -> tuple[int, ...]:
        """The number of grid points of each group (product of its axis lengths)."""
        shape = self.operator.grid.shape
        return tuple(math.prod(shape[a] for a in g) for g in self.groups)

    @property
    def sector_shape(self) -> tuple[int, ...]:
        """The coordinates per group: ceil(M/2) (even) or floor(M/2) (odd)."""
        return tuple(
            m - m // 2 if s > 0 else m // 2
            for m, s in zip(self.lengths, self.signs, strict=True)
        )

    @property
    def size(self) -> int:
        """The sector's dimension."""
        return math.prod(self.sector_shape)

    @property
    def shape(self) -> tuple[int, int]:
        """(size, size)."""
        return (self.size, self.size)

    @property
    def dtype(self):
        """The grid operator's dtype."""
        return self.operator.dtype

    def _perm(self) -> tuple[int, ...]:
        return tuple(a for g in self.groups for a in g)

    def project(self, x):
        r""":math:`B^\top x` for x (N,) or (N, c): shape (size,) or (size, c)."""
        with x64_scope(self.dtype):
            return _sector_project(self, jnp.asarray(x, self.dtype))

    def lift(self, y):
        r""":math:`B y` for y of shape (size,) or (size, c): shape (N,) or (N, c)."""
        with x64_scope(self.dtype):
            return _sector_lift(self, jnp.asarray(y, self.dtype))

    def matvec(self, v):
        r""":math:`B^\top K B v` for v of shape (size,) or (size, c)."""
        if v.ndim not in (1, 2) or v.shape[0] != self.size:
            raise ValueError(
                f"v must have shape ({self.size},) or ({self.size}, c); got {v.shape}"
            )
        with x64_scope(self.dtype):
            v = jnp.asarray(v, self.dtype)
            return _sector_project(self, self.operator.matvec(_sector_lift(self, v)))


@jax.jit
def _sector_project(sector: SectorOperator, x):
    shape = sector.operator.grid.shape
    batch = tuple(x.shape[1:])
    tail = tuple(range(len(shape), len(shape) + len(batch)))
    x = x.reshape(shape + batch)
    x = jnp.transpose(x, sector._perm() + tail).reshape(sector.lengths + batch)
    for axis, sign in enumerate(sector.signs):
        x = _half_project(x, axis, sign)
    return x.reshape((sector.size,) + batch)


@jax.jit
def _sector_lift(sector: SectorOperator, y):
    shape = sector.operator.grid.shape
    batch = tuple(y.shape[1:])
    tail = tuple(range(len(shape), len(shape) + len(batch)))
    perm = sector._perm()
    y = y.reshape(sector.sector_shape + batch)
    for axis, (m, sign) in enumerate(zip(sector.lengths, sector.signs, strict=True)):
        y = _half_lift(y, axis, sign, m)
    y = y.reshape(tuple(shape[a] for a in perm) + batch)
    inv = tuple(int(i) for i in np.argsort(perm))
    return jnp.transpose(y, inv + tail).reshape((math.prod(shape),) + batch)


def symmetry_sectors(operator: GridKernelOperator) -> tuple[SectorOperator, ...]:
    r"""The grid Gram split into its exact symmetry sectors (block diagonal).

    The kernel is even, :math:`k(\Delta) = k(-\Delta)`, so the Gram of a stationary
    kernel on a grid commutes with the point reflection of the grid (every axis
    reversed: in C order, index :math:`i \to N - 1 - i`). Where the kernel is also
    even in single axes (``operator.even_axes``, exact from the mapping) the
    reflection of each such axis commutes with it too. The groups are then: each
    even axis alone, and the other axes together (reflected at once); with all but
    one axis even, every axis is alone (the last reflection is the product of the
    point reflection and the others). One :class:`SectorOperator` per combination
    of parities, empty sectors left out: 2 sectors without axis symmetry, :math:`2^d`
    with all axes even. Their orthonormal bases together form an orthonormal basis
    of :math:`\mathbb{R}^N` in which the Gram is block diagonal, so the union of the
    sectors' eigenvalues is the Gram's spectrum.

    Args:
        operator: a :class:`GridKernelOperator` (circulant or embedded Toeplitz).

    Returns:
        The sectors, a tuple of :class:`SectorOperator`; sizes sum to N.

    Raises:
        TypeError: ``operator`` is not a :class:`GridKernelOperator`.
    """
    if not isinstance(operator, GridKernelOperator):
        raise TypeError(
            "operator must be a GridKernelOperator (a kernel Gram on a Grid); got "
            f"{type(operator).__name__}"
        )
    d = operator.grid.dim
    even = tuple(sorted(set(operator.even_axes)))
    rest = tuple(a for a in range(d) if a not in even)
    if len(rest) <= 1:
        groups = tuple((a,) for a in range(d))
    else:
        groups = tuple(sorted([(a,) for a in even] + [rest]))
    out = []
    for signs in np.ndindex(*(2,) * len(groups)):
        sector = SectorOperator(operator, groups, tuple(1 - 2 * s for s in signs))
        if sector.size > 0:
            out.append(sector)
    return tuple(out)


# --------------------------------------------------------------------------------------
# Exact eigendecompositions (dense and circulant), shared by the dynamics.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Eigendecomposition:
    r"""An exact eigendecomposition :math:`K = U \Lambda U^*` as two transforms.

    Dense: :math:`U` = the ``eigh`` eigenvectors, ``eigenvalues`` shape (N,).
    Circulant: :math:`U^*` is the unnormalised d-dimensional DFT over the grid axes and
    ``eigenvalues`` has the grid's shape (FFT order), so :math:`U \,\mathrm{diag}(g)\,
    U^* v` = ``ifftn(g * fftn(v))``. Either way
    ``from_modes(g[..., None] * to_modes(v)) = g(K) v`` for v of shape (N, c).

    Attributes:
        eigenvalues: :math:`\Lambda`, float64.
        vectors: the dense eigenvectors (N, N), or None for a circulant.
        grid_shape: the grid shape for a circulant, else None.
    """

    eigenvalues: jax.Array
    vectors: jax.Array | None = None
    grid_shape: tuple[int, ...] | None = None

    def to_modes(self, v):
        """Coefficients :math:`U^* v` for v (N, c): (N, c) or grid_shape + (c,)."""
        with x64_scope(self.eigenvalues.dtype):
            if self.vectors is not None:
                return self.vectors.T @ v
            shape = self.grid_shape
            v = jnp.asarray(v, self.eigenvalues.dtype)
            return jnp.fft.fftn(
                v.reshape(shape + v.shape[1:]), axes=tuple(range(len(shape)))
            )

    def from_modes(self, coef):
        """:math:`U c`, real, shape (N, c)."""
        with x64_scope(self.eigenvalues.dtype):
            if self.vectors is not None:
                return self.vectors @ coef
            shape = self.grid_shape
            out = jnp.fft.ifftn(jnp.asarray(coef), axes=tuple(range(len(shape)))).real
            return out.reshape((-1,) + coef.shape[len(shape) :])


# --------------------------------------------------------------------------------------
# Dense Gram, shifted operators.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["matrix"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class DenseOperator:
    r"""A kernel matrix held densely: :math:`K` of shape (M, N), ``matvec`` = ``K @ v``.

    Attributes:
        matrix: the (M, N) array (float64 unless built otherwise).
    """

    matrix: jax.Array

    structure = "dense"

    @property
    def is_symmetric(self) -> bool:
        """True for a square matrix (a self-Gram; the symmetry is not re-checked)."""
        return self.matrix.shape[0] == self.matrix.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N)."""
        return tuple(self.matrix.shape)

    @property
    def dtype(self):
        """The dtype of the entries."""
        return self.matrix.dtype

    def matvec(self, v):
        """:math:`K v` for v of shape (N,) or (N, c)."""
        with x64_scope(self.dtype):
            return self.matrix @ jnp.asarray(v, self.dtype)

    def eigendecomposition(self) -> Eigendecomposition:
        r"""``eigh`` of the (symmetric) matrix: ascending :math:`\Lambda`, :math:`U`."""
        with x64_scope(self.dtype):
            lam, vecs = jnp.linalg.eigh(self.matrix)
        return Eigendecomposition(lam, vecs)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["operator", "shift"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Shifted:
    r""":math:`K + \delta I` for a square operator :math:`K` and a scalar shift.

    Attributes:
        operator: the square operator.
        shift: :math:`\delta` (the ridge).
    """

    operator: object
    shift: jax.Array | float

    @property
    def structure(self) -> str:
        r"""The operator's: a shift keeps circulant, Toeplitz and dense structure."""
        return self.operator.structure

    @property
    def is_symmetric(self) -> bool:
        """The operator's."""
        return self.operator.is_symmetric

    def eigendecomposition(self) -> Eigendecomposition:
        r"""The operator's, eigenvalues shifted by :math:`\delta` (where it exists)."""
        eig = self.operator.eigendecomposition()
        with x64_scope(self.dtype):
            return dataclasses.replace(eig, eigenvalues=eig.eigenvalues + self.shift)

    @property
    def shape(self) -> tuple[int, int]:
        """The operator's shape."""
        return self.operator.shape

    @property
    def dtype(self):
        """The operator's dtype."""
        return self.operator.dtype

    def matvec(self, v):
        r""":math:`K v + \delta v`."""
        with x64_scope(self.dtype):
            v = jnp.asarray(v, self.dtype)
            return self.operator.matvec(v) + self.shift * v


def dense_gram(
    arch: ReluMLP,
    mapping,
    x1,
    x2=None,
    *,
    kernel: str = "ntk",
    max_bytes: float | None = None,
    mesh=None,
) -> DenseOperator:
    r"""The dense Gram :math:`k(\gamma(x_1), \gamma(x_2))` as a :class:`DenseOperator`.

    Args:
        arch: the architecture.
        mapping: a FourierMapping or IdentityMapping, applied to the raw points.
        x1: raw points, shape (n1, d).
        x2: raw points (n2, d); None for the self-Gram of ``x1``.
        kernel: "ntk" or "nngp".
        max_bytes: memory cap of the matrix (default 4 GiB).
        mesh: None or a 1-D mesh: the Gram's rows are computed over its devices
            (:func:`ntkspec.sharding.gram_on_mesh`); the matrix is then gathered.
    """
    mesh = check_mesh(mesh)
    check_arch(arch)
    check_mapping(mapping)
    check_kernel(kernel)
    fn = ntk if kernel == "ntk" else nngp
    f1 = mapping(x1)
    f2 = None if x2 is None else mapping(x2)
    with x64_scope(np.float64):
        mat = gram_on_mesh(
            functools.partial(fn, arch),
            f1,
            f2,
            mesh,
            max_bytes=max_bytes,
            progress=False,
        )
        return DenseOperator(jnp.asarray(mat, jnp.float64))


def gram_diagonal(arch: ReluMLP, mapping, x, *, kernel: str = "ntk") -> jax.Array:
    r"""The diagonal :math:`k(\gamma(x_i), \gamma(x_i))`, shape (n,), without the Gram.

    Args:
        arch: the architecture.
        mapping: a FourierMapping or IdentityMapping, applied to the raw points.
        x: raw points, shape (n, d).
        kernel: "ntk" or "nngp".
    """
    check_arch(arch)
    check_mapping(mapping)
    check_kernel(kernel)
    return self_kernel_values(arch, mapping(x), kernel=kernel)


# --------------------------------------------------------------------------------------
# Matrix-free blocked Gram (scattered points).
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "arch",
        "row_blocks",
        "offsets",
        "columns",
        "coefs",
        "corr_rows",
        "corr_cols",
        "corr_vals",
    ],
    meta_fields=["num_rows", "kernel", "self_kernel"],
)
@dataclasses.dataclass(frozen=True)
class BlockedGramOperator:
    r"""Matrix-free Gram :math:`K(\text{rows}, \text{cols})`, blocks made per matvec.

    Memory :math:`O(b\,n)` for blocks of b rows, time :math:`O(M N)` kernel entries per
    product. Pairs whose first-layer angle is tiny (duplicates, near neighbours) are
    found once at construction and corrected by their exact (cancellation-free) value,
    as :func:`ntkspec.ntk` does; ``corr_*`` hold those corrections.

    Attributes:
        arch: the architecture (its floats are data).
        row_blocks: features of the rows, padded to (blocks, b, d).
        offsets: first row index of each block, (blocks,).
        columns: features of the columns, (N, d).
        coefs: Chebyshev profile coefficients (equal-norm inputs) or None.
        corr_rows: row indices of corrected pairs.
        corr_cols: column indices of corrected pairs.
        corr_vals: exact minus blocked value at those pairs.
        num_rows: M (static).
        kernel: "ntk" or "nngp" (static).
        self_kernel: rows are the columns (static).
    """

    arch: ReluMLP
    row_blocks: jax.Array
    offsets: jax.Array
    columns: jax.Array
    coefs: tuple | None
    corr_rows: jax.Array
    corr_cols: jax.Array
    corr_vals: jax.Array
    num_rows: int
    kernel: str
    self_kernel: bool

    structure = "blocked"

    @property
    def is_symmetric(self) -> bool:
        """True for a self-Gram (rows are the columns)."""
        return self.self_kernel

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N)."""
        return (self.num_rows, self.columns.shape[0])

    @property
    def dtype(self):
        """float64."""
        return self.columns.dtype

    def block(self, i):
        """Row block i of the Gram (b, N), before near-pair corrections."""
        return gram_block(
            self.arch,
            self.row_blocks[i],
            self.columns,
            self.offsets[i],
            kernel=self.kernel,
            self_kernel=self.self_kernel,
            coefs=self.coefs,
        )

    def matvec(self, v):
        """:math:`K v` for v of shape (N,) or (N, c)."""
        with x64_scope(self.dtype):
            return _blocked_matvec(self, jnp.asarray(v, self.dtype))


@jax.jit
def _blocked_matvec(op: BlockedGramOperator, v):
    V = v[:, None] if v.ndim == 1 else v

    def one(args):
        xb, off = args
        out = gram_block(
            op.arch,
            xb,
            op.columns,
            off,
            kernel=op.kernel,
            self_kernel=op.self_kernel,
            coefs=op.coefs,
        )
        return out @ V

    out = jax.lax.map(one, (op.row_blocks, op.offsets))
    out = out.reshape(-1, V.shape[1])[: op.num_rows]
    out = out.at[op.corr_rows].add(op.corr_vals[:, None] * V[op.corr_cols])
    return out[:, 0] if v.ndim == 1 else out


def blocked_gram(
    arch: ReluMLP,
    rows,
    columns=None,
    *,
    kernel: str = "ntk",
    block_rows: int | None = None,
) -> BlockedGramOperator:
    r"""The Gram of features ``rows`` x ``columns`` as a :class:`BlockedGramOperator`.

    Args:
        arch: the architecture.
        rows: features (M, d) (already mapped, e.g. ``mapping(x)``).
        columns: features (N, d); None for the self-Gram of ``rows``.
        kernel: "ntk" or "nngp".
        block_rows: rows per block (default about 2**20 / N).
    """
    check_arch(arch)
    check_kernel(kernel)
    self_kernel = columns is None
    f_rows = np.asarray(as_points(rows, "rows"), np.float64)
    f_cols = f_rows if self_kernel else np.asarray(as_points(columns, "columns"))
    n, d = f_rows.shape
    block = block_rows or max(1, min(n, 2**20 // f_cols.shape[0]))
    nb = -(-n // block)
    padded = np.concatenate([f_rows, np.repeat(f_rows[-1:], nb * block - n, axis=0)])
    q_all = np.concatenate([np.sum(f_rows**2, axis=1), np.sum(f_cols**2, axis=1)]) / d
    equal = q_all[0] > 0 and np.max(np.abs(q_all - q_all[0])) <= 1e-13 * q_all[0]
    fit = profile_coefficients(arch, float(q_all[0]), d, kernel) if equal else None
    with x64_scope(np.float64):
        coefs = None if fit is None else tuple(jnp.asarray(c) for c in fit)
        xblocks = jnp.asarray(padded.reshape(nb, block, d))
        x1 = jnp.asarray(f_rows)
        x2 = jnp.asarray(f_cols)
        corr = ([], [], [])
        for b in range(nb):
            near = np.asarray(
                near_pairs(xblocks[b], x2, b * block, self_kernel=self_kernel)
            )
            r, c = np.nonzero(near)
            keep = r + b * block < n
            r, c = r[keep], c[keep]
            if r.size:
                exact = exact_pair_values(arch, x1, x2, r + b * block, c, kernel=kernel)
                approx = gram_block(
                    arch,
                    xblocks[b],
                    x2,
                    b * block,
                    kernel=kernel,
                    self_kernel=self_kernel,
                    coefs=coefs,
                )[r, c]
                for lst, val in zip(
                    corr, (r + b * block, c, exact - approx), strict=True
                ):
                    lst.append(np.asarray(val))
        cat = [np.concatenate(x) if x else np.zeros(0) for x in corr]
        return BlockedGramOperator(
            arch,
            xblocks,
            jnp.arange(nb) * block,
            x2,
            coefs,
            jnp.asarray(cat[0], jnp.int32),
            jnp.asarray(cat[1], jnp.int32),
            jnp.asarray(cat[2], jnp.float64),
            n,
            kernel,
            self_kernel,
        )


# --------------------------------------------------------------------------------------
# Grid to finer grid (test-train).
# --------------------------------------------------------------------------------------


def grid_ratio(train_grid: Grid, test_grid: Grid) -> tuple[int, ...]:
    """The per-axis refinement r with ``test_grid.shape = r * train_grid.shape``.

    Train points are then exactly the test points ``[::r_1, ..., ::r_d]``.

    Raises:
        ValueError: the grids have different dimensions or a test side is not a
            positive integer multiple of the train side.
    """
    if train_grid.dim != test_grid.dim:
        raise ValueError(
            f"x_test Grid has dimension {test_grid.dim} but x_train Grid has "
            f"{train_grid.dim}; they must match"
        )
    ratio = []
    for i, (nt, nf) in enumerate(zip(train_grid.shape, test_grid.shape, strict=True)):
        if nf % nt:
            raise ValueError(
                f"x_test Grid {test_grid.shape} is not compatible with x_train Grid "
                f"{train_grid.shape}: each test side must be a positive integer "
                f"multiple r_i of the train side (so that the train points are "
                f"test[::r_i]); "
                f"axis {i} has {nf} test and {nt} train points"
            )
        ratio.append(nf // nt)
    return tuple(ratio)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["fine"],
    meta_fields=["train_shape", "ratio"],
)
@dataclasses.dataclass(frozen=True)
class GridTestTrainOperator:
    r""":math:`K(\text{fine}, \text{train})` from a grid to an r-times finer grid.

    Train points are the fine points ``[::r_1, ..., ::r_d]``, so
    :math:`K(\text{fine}, \text{train})\alpha = K_{\rm fine}\, \mathrm{up}(\alpha)`
    with :math:`\mathrm{up}` the zero-upsampling onto the fine grid: one FFT
    convolution (circulant or embedded Toeplitz) on the fine grid.

    Attributes:
        fine: the fine grid's :class:`GridKernelOperator`.
        train_shape: the train grid's shape (static).
        ratio: per-axis refinement r (static).
    """

    fine: GridKernelOperator
    train_shape: tuple[int, ...]
    ratio: tuple[int, ...]

    structure = "grid_test_train"
    is_symmetric = False

    @property
    def shape(self) -> tuple[int, int]:
        """(N_fine, N_train)."""
        return (self.fine.grid.size, int(np.prod(self.train_shape)))

    @property
    def dtype(self):
        """The fine operator's dtype."""
        return self.fine.dtype

    def upsample(self, v):
        """Zero-upsample (N_train,) or (N_train, c) onto the fine grid."""
        tail = v.shape[1:]
        up = jnp.zeros(self.fine.grid.shape + tail, v.dtype)
        sl = tuple(slice(None, None, r) for r in self.ratio)
        up = up.at[sl].set(v.reshape(self.train_shape + tail))
        return up.reshape((-1,) + tail)

    def matvec(self, v):
        r""":math:`K(\text{fine}, \text{train})\, v` for v (N_tr,) or (N_tr, c)."""
        with x64_scope(self.dtype):
            return _test_train_matvec(self, jnp.asarray(v, self.dtype))


@jax.jit
def _test_train_matvec(op, v):
    """Upsample and fine-grid matvec as one compiled program (no eager ops)."""
    return op.fine.matvec(op.upsample(v))


def grid_operators(
    arch: ReluMLP,
    mapping: FourierMapping,
    train_grid: Grid,
    test_grid: Grid,
    *,
    kernel: str = "ntk",
) -> tuple[GridKernelOperator, GridTestTrainOperator]:
    r"""The train Gram and the test-train operator of two nested grids, one kernel call.

    The kernel is evaluated once on the fine grid's offsets; the train grid's column is
    its ``[::r]`` subsample (offset :math:`o/n_i = r_i o/(r_i n_i)`, with the same 0 at
    :math:`o = n_i` in the embedding).

    Returns:
        ``(train operator, test-train operator)``.
    """
    check_grid(train_grid, "x_train")
    check_grid(test_grid, "x_test")
    ratio = grid_ratio(train_grid, test_grid)
    check_arch(arch)
    check_stationary_mapping(mapping, test_grid)
    check_kernel(kernel)
    check_grid_work(
        test_grid.shape, embed=True, what=f"The FFT/Toeplitz work on {test_grid!r}"
    )
    circ = mapping.is_periodic
    # One compiled program: fine column and symbol, train column and symbol.
    col_f, sym_f, col_t, sym_t = _offsets_kernel(
        arch, mapping, test_grid, kernel, not circ, np.float64, symbol=True, ratio=ratio
    )
    fine = GridKernelOperator(col_f, sym_f, test_grid, circ)
    train = GridKernelOperator(col_t, sym_t, train_grid, circ)
    return train, GridTestTrainOperator(fine, train_grid.shape, ratio)


# --------------------------------------------------------------------------------------
# Linear measurements and A K A^T.
# --------------------------------------------------------------------------------------


def measurement(A, adjoint: Callable | None = None, *, shape=None):
    r"""Deprecated spelling of :func:`ntkspec.measurements.as_measurement`.

    Kept so that older code runs; there is one measurement concept, the values of
    :mod:`ntkspec.measurements` (``shape``, ``forward``, ``adjoint``).
    ``measurement(A)`` is ``as_measurement(A)`` and ``measurement(fn, adjoint,
    shape=(M, N))`` is ``as_measurement((fn, adjoint), shape=(M, N))``.

    Raises:
        TypeError: a function without its adjoint, or an unsupported ``A``.
        ValueError: a matrix that is not 2-D, or a bad ``shape``.
    """
    if callable(A) and not _is_measurement(A):
        if not callable(adjoint):
            raise TypeError("adjoint must be given (a function) when A is a function")
        return as_measurement((A, adjoint), shape=shape)
    return as_measurement(A)


def _is_measurement(value) -> bool:
    return callable(getattr(value, "forward", None)) and callable(
        getattr(value, "adjoint", None)
    )


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["measurement", "operator"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class ComposedOperator:
    r"""The measured Gram :math:`A K A^\top` (M x M) for a linear measurement A.

    Attributes:
        measurement: a measurement value of :mod:`ntkspec.measurements` (``shape``
            (M, N), ``forward`` and ``adjoint``).
        operator: the kernel operator :math:`K` (N x N).
    """

    measurement: object
    operator: object

    structure = "composed"
    is_symmetric = True

    @property
    def shape(self) -> tuple[int, int]:
        """(M, M)."""
        m = self.measurement.shape[0]
        return (m, m)

    @property
    def dtype(self):
        """The kernel operator's dtype."""
        return self.operator.dtype

    def matvec(self, u):
        r""":math:`A K A^\top u` for u of shape (M,) or (M, c)."""
        with x64_scope(self.dtype):
            u = jnp.asarray(u, self.dtype)
            return self.measurement.forward(
                self.operator.matvec(self.measurement.adjoint(u))
            )


def composed(measurement_op, operator) -> ComposedOperator:
    r"""The operator :math:`A K A^\top` of a measurement A and a kernel operator K.

    ``measurement_op`` is a measurement value of :mod:`ntkspec.measurements` or
    anything :func:`~ntkspec.measurements.as_measurement` accepts (a dense or sparse
    matrix, a pair of functions with ``shape`` given through ``as_measurement``); K
    must be N x N for A of N columns.

    Raises:
        ValueError: A has N columns but the operator is not N x N.
    """
    if not _is_measurement(measurement_op):
        measurement_op = as_measurement(measurement_op)
    n = measurement_op.shape[1]
    if tuple(operator.shape) != (n, n):
        raise ValueError(
            f"the measurement has {n} columns but the operator has shape "
            f"{tuple(operator.shape)}; it must be ({n}, {n})"
        )
    return ComposedOperator(measurement_op, operator)


# --------------------------------------------------------------------------------------
# The operator protocol and the one path choice.
# --------------------------------------------------------------------------------------

#: The structure tags of the kernel operators, and what each one offers:
#: "dense" (a matrix; ``eigendecomposition`` by ``eigh``), "blocked" (scattered
#: points, rows recomputed per product), "circulant" (periodic mapping on a Grid;
#: exact ``eigendecomposition`` by the DFT), "toeplitz" (Fourier mapping on a Grid;
#: FFT matvec of the circulant embedding, no cheap eigendecomposition),
#: "grid_test_train" (grid to finer grid), "composed" (:math:`A K A^\top`),
#: "sector" (a grid Gram on one symmetry sector, :func:`symmetry_sectors`).
STRUCTURES = (
    "dense",
    "blocked",
    "circulant",
    "toeplitz",
    "grid_test_train",
    "composed",
    "sector",
)


@runtime_checkable
class KernelOperator(Protocol):
    r"""What every operator of this module offers (lineax's ``AbstractLinearOperator``).

    ``shape`` (M, N); ``dtype``; ``matvec`` over (N,) or (N, c); ``structure``, one
    of :data:`STRUCTURES`; ``is_symmetric``. Square operators with an exact
    eigendecomposition (dense, circulant, and their :class:`Shifted`) also have
    ``eigendecomposition()``. Algorithms choose from these tags, never from the
    inputs the operator was built from.
    """

    @property
    def shape(self) -> tuple[int, int]: ...  # noqa: D102

    @property
    def dtype(self): ...  # noqa: D102

    @property
    def structure(self) -> str: ...  # noqa: D102

    @property
    def is_symmetric(self) -> bool: ...  # noqa: D102

    def matvec(self, v): ...  # noqa: D102


def structure(mapping, x, x_test=None) -> str:
    r"""The structure of the kernel Gram of ``mapping`` on ``x`` (and ``x_test``).

    The one place that reads :class:`~ntkspec.Grid`, ``mapping.is_periodic`` and
    ``mapping.is_stationary`` to choose a path; :func:`kernel_operator` builds what
    it names, and the entry points (``kernel_regression``, ``gd_dynamics``,
    ``spectrum``, ``design.predicted_error``, the CLI) ask it, or the operator's
    ``structure`` tag, instead of re-deriving the choice:

    * "circulant": ``x`` (and ``x_test``) are Grids and the mapping is stationary
      with integer frequencies: the Gram is multilevel circulant;
    * "toeplitz": Grids and a stationary, non-periodic mapping: multilevel Toeplitz;
    * "points": anything else (raw coordinates, a non-stationary mapping, point
      arrays): a dense or blocked Gram, chosen by size in :func:`kernel_operator`.

    Args:
        mapping: the input mapping.
        x: a Grid or points (n, d).
        x_test: None, a Grid or points; the grid structures need both to be Grids.

    Returns:
        "circulant", "toeplitz" or "points".
    """
    grids = isinstance(x, Grid) and (x_test is None or isinstance(x_test, Grid))
    if not grids or not bool(getattr(mapping, "is_stationary", False)):
        return "points"
    return "circulant" if bool(getattr(mapping, "is_periodic", False)) else "toeplitz"


def kernel_operator(
    arch: ReluMLP,
    mapping,
    x,
    x_test=None,
    *,
    kernel: str = "ntk",
    max_bytes: float | None = None,
    block_rows: int | None = None,
):
    r"""The kernel Gram of ``x`` (and the test-train operator) with the best structure.

    :func:`structure` picks it: a :class:`GridKernelOperator` (circulant or embedded
    Toeplitz, :func:`grid_operator` / :func:`grid_operators`) on Grids with a Fourier
    mapping; otherwise on the points (a Grid's points in C order) a
    :class:`DenseOperator` when the (n, n) float64 Gram fits under the memory cap
    ``max_bytes``, else a :class:`BlockedGramOperator`.

    Args:
        arch: the architecture.
        mapping: a FourierMapping or IdentityMapping.
        x: a Grid or raw points (n, d).
        x_test: None, or a Grid (an r-times finer grid of ``x``) or points.
        kernel: "ntk" or "nngp".
        max_bytes: memory cap of a dense Gram (default 4 GiB or the environment's).
        block_rows: rows per block of a blocked Gram.

    Returns:
        The operator of ``x``; with ``x_test`` the pair ``(train, test_train)``.
    """
    kind = structure(mapping, x, x_test)
    if kind != "points":
        if x_test is None:
            return grid_operator(arch, mapping, x, kernel=kernel)
        return grid_operators(arch, mapping, x, x_test, kernel=kernel)
    pts = x.points() if isinstance(x, Grid) else np.asarray(x, np.float64)
    n = pts.shape[0]
    if 8.0 * n * n <= dense_cap_bytes(max_bytes):
        train = dense_gram(arch, mapping, pts, kernel=kernel, max_bytes=max_bytes)
        if x_test is None:
            return train
        te = x_test.points() if isinstance(x_test, Grid) else x_test
        return train, dense_gram(
            arch, mapping, te, pts, kernel=kernel, max_bytes=max_bytes
        )
    f_tr = mapping(pts)
    train = blocked_gram(arch, f_tr, kernel=kernel, block_rows=block_rows)
    if x_test is None:
        return train
    te = x_test.points() if isinstance(x_test, Grid) else x_test
    return train, blocked_gram(
        arch, mapping(te), f_tr, kernel=kernel, block_rows=block_rows
    )
