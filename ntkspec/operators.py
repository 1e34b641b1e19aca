r"""Structured (FFT) operators for stationary kernels on regular grids.

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

import jax
import jax.numpy as jnp
import numpy as np

from ._numerics import check_grid_work, resolve_dtype, x64_scope
from ._validation import is_traced
from .grid import Grid
from .kernels import ReluMLP, profile
from .mappings import FourierMapping

__all__ = [
    "kernel_on_offsets",
    "grid_operator",
    "GridKernelOperator",
    "circulant_matvec",
    "toeplitz_matvec",
]


# --------------------------------------------------------------------------------------
# Validation shared with ntkspec.spectra.
# --------------------------------------------------------------------------------------


def _check_arch(arch) -> None:
    if not isinstance(arch, ReluMLP):
        raise TypeError(f"arch must be a ntkspec.ReluMLP; got {type(arch).__name__}")


def _check_kernel(kernel) -> None:
    if kernel not in ("ntk", "nngp"):
        raise ValueError(f"kernel must be 'ntk' or 'nngp'; got {kernel!r}")


def _check_grid(grid) -> None:
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a ntkspec.Grid; got {type(grid).__name__}")


def _check_stationary_mapping(mapping, grid: Grid) -> None:
    """A concrete FourierMapping whose input dimension is the grid's."""
    if not isinstance(mapping, FourierMapping):
        raise TypeError(
            "mapping must be a FourierMapping (a stationary kernel) for the grid "
            f"operators; got {type(mapping).__name__}. Raw coordinates (no mapping) "
            f"give "
            "no stationary kernel: use the dense path (ntkspec.ntk / ntkspec.spectrum "
            "on "
            "grid.points())."
        )
    if mapping.dim != grid.dim:
        raise ValueError(
            f"mapping has input dimension {mapping.dim} but grid has dimension "
            f"{grid.dim} (shape {grid.shape}); mapping.dim must equal grid.dim"
        )
    if is_traced(mapping.B) or is_traced(mapping.a):
        raise TypeError(
            "mapping must hold concrete frequencies and amplitudes for the grid "
            "operators (they decide periodicity and the FFT sizes); got traced arrays"
        )


# --------------------------------------------------------------------------------------
# The kernel on all grid offsets.
# --------------------------------------------------------------------------------------


def _axis_phases(b_axis: np.ndarray, n: int, length: int, periodic: bool) -> np.ndarray:
    r"""Per-axis phases :math:`\pi b_j \Delta(o)`, shape (length, m), float64.

    ``length`` is n (circulant column) or 2n (embedding; index o > n means offset o -
    2n).
    """
    o = np.arange(length, dtype=np.int64)
    if periodic:
        # Exact reduction: b o / n mod 1 in integers (the 2n shift is a whole period).
        b_int = np.rint(b_axis).astype(np.int64)
        frac = np.mod(np.outer(o, b_int), n).astype(np.float64) / n
        return np.pi * frac
    delta = np.where(o > n, o - 2 * n, o).astype(np.float64) / n
    return np.pi * np.outer(delta, b_axis)


def _s_1d(phase0, a2):
    return (jnp.sin(phase0) ** 2) @ a2


def _s_2d(phase0, phase1, a2):
    s0, c0 = jnp.sin(phase0), jnp.cos(phase0)
    s1, c1 = jnp.sin(phase1), jnp.cos(phase1)
    return _three_products(s0, c0, s1, c1, a2)


def _s_3d(phase0, phase1, phase2, a2):
    s0, c0 = jnp.sin(phase0), jnp.cos(phase0)
    s1, c1 = jnp.sin(phase1), jnp.cos(phase1)
    # Angle addition for the first two axes (products only), shape (L0 * L1, m).
    sx = (s0[:, None, :] * c1[None, :, :] + c0[:, None, :] * s1[None, :, :]).reshape(
        -1, a2.shape[0]
    )
    cx = (c0[:, None, :] * c1[None, :, :] - s0[:, None, :] * s1[None, :, :]).reshape(
        -1, a2.shape[0]
    )
    s2, c2 = jnp.sin(phase2), jnp.cos(phase2)
    out = _three_products(sx, cx, s2, c2, a2)
    return out.reshape(phase0.shape[0], phase1.shape[0], phase2.shape[0])


def _three_products(s0, c0, s1, c1, a2):
    r""":math:`\sum_j a_j^2 \sin^2(A_{ij} + C_{kj})` for all (i, k), three products."""
    w = a2[None, :]
    return (
        ((s0 * s0) * w) @ (c1 * c1).T
        + ((c0 * c0) * w) @ (s1 * s1).T
        + (2.0 * (s0 * c0) * w) @ (s1 * c1).T
    )


# Compiled once per shape: the eager op-by-op dispatch cost more than the work itself on
# small grids (about 3 ms of 4 ms at 64 x 64).
_S_JIT = (jax.jit(_s_1d), jax.jit(_s_2d), jax.jit(_s_3d))


def _offsets_sin2(
    mapping: FourierMapping, grid: Grid, embed: bool, rows: int | None = None
) -> np.ndarray:
    r""":math:`s(\Delta)/S` on all offsets, clipped to [0, 1], float64 NumPy array.

    With ``rows`` only the first ``rows`` offsets along axis 0.
    """
    B = np.asarray(mapping.B, dtype=np.float64)
    a2 = np.asarray(mapping.a, dtype=np.float64) ** 2
    periodic = mapping.is_periodic
    phases = [
        _axis_phases(B[:, i], n, 2 * n if embed else n, periodic)
        for i, n in enumerate(grid.shape)
    ]
    if rows is not None:
        phases[0] = phases[0][:rows]
    with x64_scope(np.float64):
        args = [jnp.asarray(p) for p in phases] + [jnp.asarray(a2)]
        fn = _S_JIT[grid.dim - 1]
        s = np.asarray(fn(*args))
    return np.clip(s / np.sum(a2), 0.0, 1.0)


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
    _check_arch(arch)
    _check_grid(grid)
    _check_stationary_mapping(mapping, grid)
    _check_kernel(kernel)
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
    # The kernel is even, k(o) = k(-o mod n): on the circulant column only the first
    # n_1 // 2 + 1 offsets along axis 0 are evaluated, the rest are mirrored.
    half = None if embed else grid.shape[0] // 2 + 1
    s = _offsets_sin2(mapping, grid, embed, rows=half)
    m = mapping.num_freqs
    k = profile(
        arch,
        s,
        input_var=mapping.norm_sq / (2 * m),
        input_dim=2 * m,
        kernel=kernel,
        dtype=dtype,
    )
    if half is not None and half < grid.shape[0]:
        k = _mirror_axis0(np.asarray(k), grid.shape)
        with x64_scope(dtype):
            k = jnp.asarray(k, dtype=dtype)
    if embed:
        with x64_scope(dtype):
            for axis, n in enumerate(grid.shape):
                idx = (slice(None),) * axis + (n,)
                k = k.at[idx].set(0.0)
    return k


def _mirror_axis0(k_half: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Complete an even array from its first n_0 // 2 + 1 rows: k[o] = k[-o mod n]."""
    n0 = shape[0]
    src0 = n0 - np.arange(k_half.shape[0], n0)
    tail = k_half[src0]
    for axis, n in enumerate(shape[1:], start=1):
        tail = np.take(tail, (-np.arange(n)) % n, axis=axis)
    return np.concatenate([k_half, tail], axis=0)


# --------------------------------------------------------------------------------------
# Pure FFT matvecs (batch-first rows: X of shape (c, N)).
# --------------------------------------------------------------------------------------


def _symbol(column, circulant: bool):
    """Real half-spectrum of the (even) first column: rfftn over all axes."""
    return jnp.fft.rfftn(column).real


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
    """
    rows = v[None, :] if v.ndim == 1 else v.T
    out = _toeplitz_rows(symbol, rows, shape)
    return out[0] if v.ndim == 1 else out.T


def _chan_column(embed_column, shape: tuple[int, ...]):
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


def _strang_column(embed_column, shape: tuple[int, ...]):
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
    meta_fields=["grid", "is_circulant"],
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
    """

    column: jax.Array
    symbol: jax.Array
    grid: Grid
    is_circulant: bool

    @property
    def shape(self) -> tuple[int, int]:
        """(N, N)."""
        return (self.grid.size, self.grid.size)

    @property
    def dtype(self):
        """The dtype of the kernel values."""
        return self.column.dtype

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
            fn = circulant_matvec if self.is_circulant else toeplitz_matvec
            return fn(self.symbol, v, self.grid.shape)

    def _matvec_rows(self, rows):
        """K applied to each row of ``rows`` (c, N); internal batch-first layout."""
        fn = _circulant_rows if self.is_circulant else _toeplitz_rows
        return fn(self.symbol, rows, self.grid.shape)

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
            return jnp.fft.fftn(self.column).real

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
                return jnp.fft.fftn(self.column).real
            return jnp.fft.fftn(_chan_column(self.column, self.grid.shape)).real


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
    _check_arch(arch)
    _check_grid(grid)
    _check_stationary_mapping(mapping, grid)
    dtype = resolve_dtype(dtype)
    circulant = mapping.is_periodic
    column = kernel_on_offsets(
        arch, mapping, grid, kernel=kernel, embed=not circulant, dtype=dtype
    )
    with x64_scope(dtype):
        symbol = _symbol(column, circulant)
    return GridKernelOperator(column, symbol, grid, circulant)
