r"""Linear measurement operators :math:`A: \mathbb{R}^N \to \mathbb{R}^M` with adjoints.

In indirect supervision a network (or the infinitely wide one, through its NTK) is
fitted to linear measurements :math:`y = A f(X)` of a signal sampled on the N points
of a :class:`~ntkspec.Grid`, in C order of the grid's multi-index. A *measurement* is
an immutable JAX pytree value that knows its ``shape`` = (M, N) and applies

.. math::

    \texttt{forward}(x) = A x, \qquad \texttt{adjoint}(y) = A^\top y,

to a vector of shape (N,) or a block of c channels of shape (N, c) (and (M,) or
(M, c) for the adjoint). Both are pure and jit-able; they compute in the floating dtype
of their input (float64 when called inside the entry points' scoped x64 context).
Kinds:

* :class:`DenseMeasurement`: a dense (M, N) matrix.
* :class:`SparseMeasurement`: CSR arrays of :math:`A` and :math:`A^\top`; jittable
  products by ``scipy.sparse`` on the host (CPU) or ``jax.experimental.sparse.BCSR``.
* :class:`FunctionMeasurement`: a pair of pure JAX functions :math:`(A, A^\top)`.
* :class:`KSpaceMask`: the kept coefficients of the orthonormal d-dimensional DFT.

:func:`as_measurement` turns a dense array, a ``scipy.sparse`` matrix, a BCOO matrix
or a pair of functions into one of these values. Two constructors give the tasks of
Tancik et al. (2020), Table 1:

* :func:`ct_projections` -- parallel-beam CT as the official notebook computes it: the
  image is rotated by each angle :math:`\theta_a` with nearest-neighbour sampling and
  averaged over its rows,

  .. math::

      (A f)_{a, j} = \frac{1}{H} \sum_{i=0}^{H-1} f\big(r_a(i, j)\big), \qquad
      \theta_a = \pi a / n_\theta,

  where :math:`r_a(i, j)` is the pixel nearest to pixel (i, j) rotated by
  :math:`\theta_a` about the image centre (zero outside the image). It is a sparse
  matrix with at most :math:`n_\theta N` non-zeros.
* :func:`mri_kspace` -- MRI: a mask :math:`S` on the orthonormal DFT :math:`F`, the
  kept coefficients split into real and imaginary parts,
  :math:`A x = [\mathrm{Re}(F x)_S;\ \mathrm{Im}(F x)_S]`, with the notebook's Gaussian
  sampling pattern. For a circulant C (:math:`C = F^H \mathrm{diag}(\lambda) F`),
  :math:`A C A^\top` only couples each kept frequency with its negative, so
  :meth:`KSpaceMask.solve_circulant` inverts :math:`A C A^\top + \delta I` exactly
  in O(N log N): the MRI kernel regression for periodic mappings, and a
  preconditioner for Toeplitz Grams (with T. Chan's circulant, CG at :math:`64^3`
  took 133 iterations instead of 1689).

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (notebooks ``2d_CT`` and
    ``3d_MRI`` of github.com/tancik/fourier-feature-networks).
    Kak & Slaney, "Principles of Computerized Tomographic Imaging", IEEE Press, 1988
    (parallel-beam projections).
    Lustig, Donoho & Pauly, "Sparse MRI: The application of compressed sensing for
    rapid MR imaging", Magn. Reson. Med. 58(6), 2007 (variable-density k-space
    sampling).
    T. Chan, "An optimal circulant preconditioner for Toeplitz systems", SIAM J. Sci.
    Stat. Comput. 9(4), 1988.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._numerics import check_allocation, x64_scope
from ._validation import check_positive_int, check_real, is_traced

__all__ = [
    "DenseMeasurement",
    "SparseMeasurement",
    "FunctionMeasurement",
    "KSpaceMask",
    "KSpacePreconditioner",
    "as_measurement",
    "ct_projections",
    "ct_ray_extents",
    "kspace_preconditioner",
    "kspace_sample_mask",
    "mri_kspace",
]


# --------------------------------------------------------------------------------------
# Shared checks (static facts only: they run at trace time too).
# --------------------------------------------------------------------------------------


def _check_operand(v, rows: int, name: str, symbol: str):
    """Check ``v`` is a real floating (rows,) or (rows, c) array; return it as JAX."""
    if isinstance(v, list | tuple):
        v = np.asarray(v)
    if not hasattr(v, "shape") or not hasattr(v, "dtype"):
        raise TypeError(
            f"{name} must be an array of shape ({symbol},) or ({symbol}, c); "
            f"got {type(v).__name__}"
        )
    if v.ndim not in (1, 2) or v.shape[0] != rows:
        raise ValueError(
            f"{name} must have shape ({rows},) or ({rows}, c) ({symbol} = {rows}); "
            f"got shape {tuple(v.shape)}"
        )
    if not jnp.issubdtype(v.dtype, jnp.floating):
        raise TypeError(
            f"{name} must hold real floating-point numbers (float32 or float64); "
            f"got dtype {v.dtype}"
        )
    return jnp.asarray(v)


def _check_grid_shape(grid_shape, name: str, dims: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(grid_shape, numbers.Integral) and not isinstance(grid_shape, bool):
        grid_shape = (grid_shape,) * max(dims)
    if not isinstance(grid_shape, tuple | list):
        raise TypeError(
            f"{name} must be a tuple of {' or '.join(map(str, dims))} positive "
            f"integers; got {grid_shape!r}"
        )
    if len(grid_shape) not in dims:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, dims))} entries; got "
            f"{tuple(grid_shape)!r}"
        )
    return tuple(
        check_positive_int(n, f"{name}[{i}]") for i, n in enumerate(grid_shape)
    )


def _check_finite_matrix(values, name: str) -> None:
    if not is_traced(values) and not bool(np.all(np.isfinite(np.asarray(values)))):
        raise ValueError(f"{name} must be finite; it contains NaN or inf")


# --------------------------------------------------------------------------------------
# Values.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["matrix"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True, eq=False)
class DenseMeasurement:
    r"""A measurement held as a dense matrix, :math:`A` of shape (M, N).

    Attributes:
        matrix: the real (M, N) matrix (a JAX array).

    Example:
        >>> import numpy as np
        >>> from ntkspec import measurements
        >>> A = measurements.as_measurement(np.array([[1.0, 2.0, 0.0]]))
        >>> A.shape, np.asarray(A.forward(np.ones(3))).tolist()
        ((1, 3), [3.0])
    """

    matrix: jax.Array

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N): measurements x grid points."""
        return tuple(self.matrix.shape)

    def forward(self, x):
        """:math:`A x` for x of shape (N,) or (N, c); returns (M,) or (M, c)."""
        x = _check_operand(x, self.shape[1], "x", "N")
        return self.matrix.astype(x.dtype) @ x

    def adjoint(self, y):
        r""":math:`A^\top y` for y of shape (M,) or (M, c); returns (N,) or (N, c)."""
        y = _check_operand(y, self.shape[0], "y", "M")
        return self.matrix.T.astype(y.dtype) @ y


class _HostCSR:
    """Host ``scipy.sparse`` CSR matrices of A and A^T for the ``"host"`` products.

    A static pytree field: compared and hashed by identity, so a jitted function is
    compiled once per measurement value and never copies the matrix into the
    callback (passing the CSR arrays as callback operands costs a copy of all nnz
    entries per product). The arrays are views of the value's leaves (no second copy
    on CPU).
    """

    __slots__ = ("a", "at")

    def __init__(self, a, at):
        self.a = a
        self.at = at

    def __repr__(self) -> str:
        return f"_HostCSR(shape={self.a.shape}, nnz={self.a.nnz})"


def _host_callback(mat, core_ndim: int, dtype):
    """A NumPy function ``bits(v) -> bits(mat @ v)`` for pure_callback.

    Operands and results travel as raw ``uint32`` words (float64 values as pairs in a
    trailing axis). JAX converts callback operands with ``device_put`` on the thread
    that runs the callback; XLA's CPU runtime may run it on a worker thread, where the
    caller's scoped x64 setting does not hold, so a float64 operand would arrive
    truncated to float32 (observed inside a jitted CG loop with FFTs at 128^2). Words
    are not converted. Under ``vmap`` the operand carries leading batch axes.
    """
    m, n = mat.shape
    dtype = np.dtype(dtype)
    wide = dtype.itemsize == 8

    def apply(bits):
        v = np.ascontiguousarray(np.asarray(bits)).view(dtype)
        if wide:
            v = v[..., 0]
        batch = v.shape[: v.ndim - core_ndim]
        core = v.shape[v.ndim - core_ndim :]
        flat = v.reshape((-1, *core))  # (B, n) or (B, n, c)
        cols = np.moveaxis(flat, 0, -1).reshape(n, -1)
        out = np.asarray(mat @ cols.astype(np.float64, copy=False))
        out = np.moveaxis(out.reshape((m, *core[1:], flat.shape[0])), -1, 0)
        out = np.ascontiguousarray(out.reshape((*batch, m, *core[1:])), dtype=dtype)
        words = out.view(np.uint32)
        return words.reshape((*out.shape, 2)) if wide else words

    return apply


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _host_apply(host: _HostCSR, transpose: bool, v):
    # A v (or A^T v) by scipy on the host; reverse mode applies the other one.
    mat = host.at if transpose else host.a
    wide = jnp.dtype(v.dtype).itemsize == 8
    shape = (mat.shape[0], *v.shape[1:]) + ((2,) if wide else ())
    out = jax.ShapeDtypeStruct(shape, jnp.uint32)
    bits = jax.lax.bitcast_convert_type(v, jnp.uint32)
    words = jax.pure_callback(
        _host_callback(mat, v.ndim, v.dtype), out, bits, vmap_method="expand_dims"
    )
    return jax.lax.bitcast_convert_type(words, v.dtype)


def _host_apply_fwd(host, transpose, v):
    return _host_apply(host, transpose, v), None


def _host_apply_bwd(host, transpose, _, g):
    return (_host_apply(host, not transpose, g),)


_host_apply.defvjp(_host_apply_fwd, _host_apply_bwd)


def _host_matrices(data, indices, indptr, t_data, t_indices, t_indptr, dims):
    import scipy.sparse

    def csr(d, i, p, shape):
        return scipy.sparse.csr_array(
            (np.asarray(d), np.asarray(i), np.asarray(p)), shape=shape
        )

    return _HostCSR(
        csr(data, indices, indptr, dims), csr(t_data, t_indices, t_indptr, dims[::-1])
    )


_SPARSE_METHODS = ("host", "bcsr")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["data", "indices", "indptr", "t_data", "t_indices", "t_indptr"],
    meta_fields=["dims", "method", "host"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class SparseMeasurement:
    r"""A sparse measurement: CSR arrays of :math:`A` and of :math:`A^\top`.

    Both products are jittable and follow the input's dtype; memory and time per
    product are O(nnz + N + M). Two methods (static):

    * ``"host"`` (the default on CPU): ``scipy.sparse`` CSR products on the host
      through ``jax.pure_callback``, with a custom VJP (the adjoint), so they work
      inside ``jit``, ``lax.while_loop`` (a CG loop), ``vmap`` and ``grad``.
    * ``"bcsr"``: ``jax.experimental.sparse.BCSR`` products compiled by XLA (the
      default on GPU/TPU, where host round trips would dominate).

    ``"host"`` is the default on CPU because it was the fastest there, on a par with
    eager scipy and ahead of ``"bcsr"`` and ``BCOO`` products (timings in
    ``docs/results/benchmarks.md``).
    The host matrices are closed over by the callback (a static field compared by
    identity), so each product copies only x and Ax; a pytree map over the leaves
    does not change them (use ``"bcsr"`` for that).

    Attributes:
        data: CSR values of :math:`A` (float64).
        indices: CSR column indices of :math:`A` (int32).
        indptr: CSR row pointers of :math:`A` (int32).
        t_data: CSR values of :math:`A^\top`.
        t_indices: CSR column indices of :math:`A^\top`.
        t_indptr: CSR row pointers of :math:`A^\top`.
        dims: (M, N) (static).
        method: ``"host"`` or ``"bcsr"`` (static).

    Example:
        >>> import numpy as np, scipy.sparse
        >>> from ntkspec import measurements
        >>> S = scipy.sparse.csr_array(np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 0.0]]))
        >>> A = measurements.as_measurement(S)
        >>> A.shape, np.asarray(A.adjoint(np.ones(3))).tolist()
        ((3, 2), [1.0, 2.0])
    """

    data: jax.Array
    indices: jax.Array
    indptr: jax.Array
    t_data: jax.Array
    t_indices: jax.Array
    t_indptr: jax.Array
    dims: tuple[int, int]
    method: str = "host"
    host: _HostCSR | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        if self.method not in _SPARSE_METHODS:
            raise ValueError(
                f"method must be one of {_SPARSE_METHODS}; got {self.method!r}"
            )
        if self.method == "host" and self.host is None:
            if any(is_traced(a) for a in (self.data, self.t_data)):
                raise ValueError(
                    "a host SparseMeasurement needs its host matrices; build it with "
                    "as_measurement or ct_projections outside jit"
                )
            host = _host_matrices(
                self.data,
                self.indices,
                self.indptr,
                self.t_data,
                self.t_indices,
                self.t_indptr,
                self.dims,
            )
            object.__setattr__(self, "host", host)

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N): measurements x grid points."""
        return self.dims

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.data.shape[0])

    def with_method(self, method: str) -> SparseMeasurement:
        """The same matrix applied by ``method`` (``"host"`` or ``"bcsr"``)."""
        return dataclasses.replace(self, method=method, host=None)

    def _bcsr(self, data, indices, indptr, v, dims):
        from jax.experimental import sparse as jsparse

        mat = jsparse.BCSR((data.astype(v.dtype), indices, indptr), shape=dims)
        return mat @ v

    def forward(self, x):
        """:math:`A x` for x of shape (N,) or (N, c); returns (M,) or (M, c)."""
        x = _check_operand(x, self.dims[1], "x", "N")
        if self.method == "host":
            return _host_apply(self.host, False, x)
        return self._bcsr(self.data, self.indices, self.indptr, x, self.dims)

    def adjoint(self, y):
        r""":math:`A^\top y` for y of shape (M,) or (M, c); returns (N,) or (N, c)."""
        y = _check_operand(y, self.dims[0], "y", "M")
        if self.method == "host":
            return _host_apply(self.host, True, y)
        return self._bcsr(
            self.t_data, self.t_indices, self.t_indptr, y, self.dims[::-1]
        )

    def to_scipy(self):
        """The matrix as a ``scipy.sparse.csr_array`` (float64, on the host)."""
        import scipy.sparse

        return scipy.sparse.csr_array(
            (
                np.asarray(self.data, dtype=np.float64),
                np.asarray(self.indices),
                np.asarray(self.indptr),
            ),
            shape=self.dims,
        )


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[],
    meta_fields=["apply_fn", "adjoint_fn", "dims", "batched"],
)
@dataclasses.dataclass(frozen=True)
class FunctionMeasurement:
    r"""A measurement given by a pair of pure JAX functions :math:`(A, A^\top)`.

    The functions must map (N,) to (M,) and (M,) to (N,) (checked once by
    :func:`as_measurement` with ``jax.eval_shape``); a (N, c) block is applied
    column by column with ``jax.vmap`` unless the functions accept it themselves
    (``batched=True``).

    Attributes:
        apply_fn: :math:`x \mapsto A x` (static).
        adjoint_fn: :math:`y \mapsto A^\top y` (static).
        dims: (M, N).
        batched: whether the functions accept (N, c) / (M, c) blocks directly.
    """

    apply_fn: Callable
    adjoint_fn: Callable
    dims: tuple[int, int]
    batched: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N): measurements x grid points."""
        return self.dims

    def _apply(self, fn, v):
        if v.ndim == 1 or self.batched:
            return fn(v)
        return jax.vmap(fn, in_axes=1, out_axes=1)(v)

    def forward(self, x):
        """:math:`A x` for x of shape (N,) or (N, c); returns (M,) or (M, c)."""
        x = _check_operand(x, self.dims[1], "x", "N")
        return self._apply(self.apply_fn, x)

    def adjoint(self, y):
        r""":math:`A^\top y` for y of shape (M,) or (M, c); returns (N,) or (N, c)."""
        y = _check_operand(y, self.dims[0], "y", "M")
        return self._apply(self.adjoint_fn, y)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["indices"],
    meta_fields=["grid_shape"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class KSpaceMask:
    r"""Kept coefficients of the orthonormal DFT on a grid, as real measurements.

    With :math:`F` the orthonormal d-dimensional DFT on the grid (``fftn(...,
    norm="ortho")`` of ``x.reshape(grid_shape)``, a unitary map) and :math:`S` the K
    kept flat indices (FFT order, ascending),

    .. math::

        A x = \begin{bmatrix} \mathrm{Re}\,(F x)_S \\ \mathrm{Im}\,(F x)_S
        \end{bmatrix} \in \mathbb{R}^{2K}, \qquad
        A^\top y = \mathrm{Re}\, F^{H} P_S^\top (y_{1:K} + i\, y_{K+1:2K}),

    which is the exact adjoint for real x: :math:`\langle Ax, y\rangle =
    \mathrm{Re}\langle P_S F x, y_c\rangle_{\mathbb{C}} = \langle x, A^\top
    y\rangle`. Then :math:`\lVert Ax - Ab\rVert^2 = \sum_{k\in S}|(F(x-b))_k|^2`, the
    notebook's loss (up to its mean and its unnormalised FFT). For real x the rows
    are not independent: the imaginary row of a self-conjugate frequency (zero,
    Nyquist) is zero, and a frequency kept together with its negative gives repeated
    information, so :math:`A A^\top` is singular in general (use a ridge, or keep
    ridge 0 only for consistent data).

    Attributes:
        indices: the kept flat indices into the grid in FFT order, shape (K,), int32.
        grid_shape: the grid's points per axis (static).
    """

    indices: jax.Array
    grid_shape: tuple[int, ...]

    @property
    def num_kept(self) -> int:
        """K, the number of kept DFT coefficients."""
        return int(self.indices.shape[0])

    @property
    def keep_fraction(self) -> float:
        """K / N, the fraction of k-space kept."""
        return self.num_kept / math.prod(self.grid_shape)

    @property
    def shape(self) -> tuple[int, int]:
        """(M, N) = (2K, N)."""
        return (2 * self.num_kept, math.prod(self.grid_shape))

    def forward(self, x):
        """:math:`A x` for x of shape (N,) or (N, c); returns (2K,) or (2K, c)."""
        n = self.shape[1]
        x = _check_operand(x, n, "x", "N")
        d = len(self.grid_shape)
        block = x.reshape(n, -1)
        c = block.shape[1]
        coef = jnp.fft.fftn(
            block.reshape(*self.grid_shape, c), axes=tuple(range(d)), norm="ortho"
        ).reshape(n, c)[self.indices]
        out = jnp.concatenate([coef.real, coef.imag], axis=0).astype(x.dtype)
        return out if x.ndim == 2 else out[:, 0]

    def adjoint(self, y):
        r""":math:`A^\top y` for y of shape (2K,) or (2K, c); returns (N,) or (N, c)."""
        n = self.shape[1]
        k = self.num_kept
        y = _check_operand(y, 2 * k, "y", "M")
        d = len(self.grid_shape)
        block = y.reshape(2 * k, -1)
        c = block.shape[1]
        coef = jax.lax.complex(block[:k], block[k:])
        full = jnp.zeros((n, c), coef.dtype).at[self.indices].set(coef)
        img = jnp.fft.ifftn(
            full.reshape(*self.grid_shape, c), axes=tuple(range(d)), norm="ortho"
        )
        out = img.real.reshape(n, c).astype(y.dtype)
        return out if y.ndim == 2 else out[:, 0]

    def solve_circulant(self, eigenvalues, y, *, ridge=0.0):
        r"""Exact :math:`(A C A^\top + \delta I)^{+} y` for a symmetric circulant C.

        With :math:`C = F^H \mathrm{diag}(\lambda) F` (real, even eigenvalues
        :math:`\lambda_{-k} = \lambda_k \ge 0` in FFT order: the Gram of a
        periodic stationary kernel on the grid, or T. Chan's circulant approximation
        of a Toeplitz one), :math:`A C A^\top` only couples a kept frequency k with
        its negative :math:`\bar k = -k`. In complex form, with
        :math:`y_k = y^{re}_k + i\,y^{im}_k`, the solution :math:`\alpha \leftrightarrow
        z` is

        .. math::

            z_k = \begin{cases}
            \tfrac12\Big(\frac{y_k + \overline{y_{\bar k}}}{\lambda_k + \delta}
            + \frac{y_k - \overline{y_{\bar k}}}{\delta}\Big)
            & \bar k \in S \ (\text{incl. } \bar k = k),\\
            \frac{y_k}{\lambda_k/2 + \delta} & \bar k \notin S,
            \end{cases}

        and :math:`\alpha = [\mathrm{Re}\, z; \mathrm{Im}\, z]`. A zero
        denominator (:math:`\delta = 0`, or :math:`\lambda_k = 0`) contributes 0:
        the minimum-norm (pseudo-inverse) solution, exact for consistent data
        :math:`y = A f` with real f, where :math:`y_k = \overline{y_{\bar k}}`. Then
        :math:`f^\star = C A^\top \alpha` is the kernel prediction of
        :math:`f^\star = C A^\top (A C A^\top + \delta I)^{-1} y` in O(N log N);
        for a Toeplitz Gram this is a preconditioner for CG on
        :math:`A K A^\top + \delta I`. Pure and jit-able.

        Args:
            eigenvalues: :math:`\lambda`, real, shape ``grid_shape`` or (N,), in FFT
                order (``fftn`` of the circulant's first column, real part).
            y: (2K,) or (2K, c) in the stacked layout of :meth:`forward`.
            ridge: :math:`\delta \ge 0`.

        Returns:
            :math:`\alpha`, the shape of ``y``.

        Raises:
            TypeError: non-real ``eigenvalues`` or ``y``.
            ValueError: wrong shapes or a negative ``ridge``.
        """
        n = self.shape[1]
        k = self.num_kept
        y = _check_operand(y, 2 * k, "y", "M")
        check_real(ridge, "ridge", low=0.0)
        if not hasattr(eigenvalues, "shape") or tuple(eigenvalues.shape) not in (
            self.grid_shape,
            (n,),
        ):
            got = getattr(eigenvalues, "shape", type(eigenvalues).__name__)
            raise ValueError(
                f"eigenvalues must have shape {self.grid_shape} or ({n},); got {got}"
            )
        if not jnp.issubdtype(eigenvalues.dtype, jnp.floating):
            raise TypeError(
                f"eigenvalues must be real floating-point; got {eigenvalues.dtype}"
            )
        lam = jnp.reshape(jnp.asarray(eigenvalues), (n,)).astype(y.dtype)
        ridge = jnp.asarray(ridge, dtype=y.dtype)
        idx = self.indices
        # Flat index of -k for every kept k, and its place in S (or -1).
        multi = jnp.unravel_index(idx, self.grid_shape)
        neg = tuple((-i) % m for i, m in zip(multi, self.grid_shape, strict=True))
        neg_flat = jnp.ravel_multi_index(neg, self.grid_shape, mode="wrap")
        place = (
            jnp.full((n,), -1, dtype=idx.dtype)
            .at[idx]
            .set(jnp.arange(k, dtype=idx.dtype))
        )
        partner = place[neg_flat]
        paired = (partner >= 0)[:, None]
        block = y.reshape(2 * k, -1)
        yc = jax.lax.complex(block[:k], block[k:])
        ybar = jnp.conj(yc[jnp.maximum(partner, 0)])
        lam_k = lam[idx][:, None]

        def safe_div(num, den):
            ok = den > 0
            return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)

        z_pair = 0.5 * (safe_div(yc + ybar, lam_k + ridge) + safe_div(yc - ybar, ridge))
        z_single = safe_div(yc, 0.5 * lam_k + ridge)
        z = jnp.where(paired, z_pair, z_single)
        out = jnp.concatenate([z.real, z.imag], axis=0).astype(y.dtype)
        return out if y.ndim == 2 else out[:, 0]


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["mask", "eigenvalues", "ridge"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class KSpacePreconditioner:
    r"""PCG preconditioner :math:`(A C A^\top + \delta I)^{-1}` for a k-space mask A.

    For a stationary kernel on a grid, :math:`K` is multilevel Toeplitz and close to
    a circulant :math:`C = F^H \mathrm{diag}(\lambda) F` (T. Chan's optimum, or
    :math:`K` itself for a periodic mapping). Then :math:`A C A^\top + \delta I` is
    inverted exactly in O(N log N) by :meth:`KSpaceMask.solve_circulant`, which makes
    it the preconditioner of CG on :math:`A K A^\top + \delta I` (exact, one
    iteration, when K is circulant). It is symmetric positive definite for
    :math:`\delta > 0` and positive eigenvalues; at :math:`\delta = 0` it is the
    pseudo-inverse, whose null space (conjugate-antisymmetric pairs of kept
    frequencies, :math:`\ker A^\top`) is that of :math:`A K A^\top`, so PCG on
    consistent data stays in the range. Built by :func:`kspace_preconditioner`.

    Attributes:
        mask: the :class:`KSpaceMask`.
        eigenvalues: :math:`\lambda`, real, shape ``mask.grid_shape``, FFT order.
        ridge: :math:`\delta \ge 0`.
    """

    mask: KSpaceMask
    eigenvalues: jax.Array
    ridge: jax.Array

    def apply(self, r):
        r""":math:`(A C A^\top + \delta I)^{+} r` for r of shape (2K,) or (2K, c)."""
        return self.mask.solve_circulant(self.eigenvalues, r, ridge=self.ridge)


def kspace_preconditioner(mask: KSpaceMask, eigenvalues, *, ridge: float = 0.0):
    r"""The :class:`KSpacePreconditioner` of a mask and circulant eigenvalues.

    Eigenvalues below :math:`10^{-12}` of the largest (a circulant approximation of a
    positive definite Toeplitz matrix can have tiny or slightly negative ones) are
    raised to that floor, so that the preconditioner stays positive definite.

    Args:
        mask: a :class:`KSpaceMask`.
        eigenvalues: :math:`\lambda`, real, shape ``mask.grid_shape`` or (N,), in FFT
            order, e.g. ``operator.t_chan_preconditioner()`` of a
            :class:`~ntkspec.operators.GridKernelOperator` on the mask's grid.
        ridge: :math:`\delta \ge 0`, the ridge of the system being preconditioned.

    Returns:
        A :class:`KSpacePreconditioner` (float64).

    Raises:
        TypeError: ``mask`` is not a :class:`KSpaceMask`, or non-real eigenvalues.
        ValueError: eigenvalues of the wrong shape or not finite, a negative ridge.

    Example:
        >>> import numpy as np
        >>> from ntkspec import measurements
        >>> A = measurements.mri_kspace((8, 8), num_samples=40, seed=0)
        >>> P = measurements.kspace_preconditioner(A, np.ones((8, 8)), ridge=0.5)
        >>> y = A.forward(np.ones(64))  # A A^T + 0.5 I acts as 1.5 on it
        >>> bool(np.allclose(P.apply(y), y / 1.5))
        True
    """
    if not isinstance(mask, KSpaceMask):
        raise TypeError(f"mask must be a KSpaceMask; got {type(mask).__name__}")
    check_real(ridge, "ridge", low=0.0)
    lam = np.asarray(eigenvalues)
    n = mask.shape[1]
    if lam.shape not in (mask.grid_shape, (n,)):
        raise ValueError(
            f"eigenvalues must have shape {mask.grid_shape} or ({n},); got {lam.shape}"
        )
    if not np.issubdtype(lam.dtype, np.floating):
        raise TypeError(f"eigenvalues must be real floating-point; got {lam.dtype}")
    lam = lam.astype(np.float64).reshape(mask.grid_shape)
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be finite; they contain NaN or inf")
    top = float(np.max(np.abs(lam)))
    lam = np.maximum(lam, 1e-12 * top if top > 0 else 1.0)
    with x64_scope(np.float64):
        return KSpacePreconditioner(
            mask, jnp.asarray(lam), jnp.asarray(float(ridge), dtype=jnp.float64)
        )


_MEASUREMENT_TYPES = (
    DenseMeasurement,
    SparseMeasurement,
    FunctionMeasurement,
    KSpaceMask,
)


# --------------------------------------------------------------------------------------
# Conversion.
# --------------------------------------------------------------------------------------


def _check_shape_pair(shape) -> tuple[int, int]:
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise ValueError(
            "shape must be (M, N), two positive integers, when forward is a pair of "
            f"functions; got {shape!r}"
        )
    return (
        check_positive_int(shape[0], "shape[0] (M)"),
        check_positive_int(shape[1], "shape[1] (N)"),
    )


def _check_function_shapes(fn, n_in: int, n_out: int, what: str, batched: bool):
    probe = (n_in, 2) if batched else (n_in,)
    want = (n_out, 2) if batched else (n_out,)
    with x64_scope(np.float64):
        try:
            out = jax.eval_shape(fn, jax.ShapeDtypeStruct(probe, np.float64))
        except Exception as err:  # any failure to trace names the function
            raise ValueError(
                f"{what} could not be applied to an array of shape {probe}: {err}"
            ) from err
    if not hasattr(out, "shape") or tuple(out.shape) != want:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{what} must map shape {probe} to {want}; got {got}")


def as_measurement(
    forward, *, shape=None, batched: bool = False, method: str | None = None
):
    r"""A measurement value from a matrix, a sparse matrix or a pair of functions.

    Args:
        forward: one of

            * a measurement value (returned unchanged);
            * a dense real (M, N) array (NumPy or JAX) -> :class:`DenseMeasurement`;
            * a ``scipy.sparse`` matrix or array, or a
              ``jax.experimental.sparse.BCOO`` matrix -> :class:`SparseMeasurement`;
            * a pair ``(A, AT)`` of pure JAX functions, :math:`x \mapsto Ax` on (N,)
              and :math:`y \mapsto A^\top y` on (M,) -> :class:`FunctionMeasurement`
              (``shape`` is then required).
        shape: (M, N), only for a pair of functions.
        batched: for a pair of functions, whether they accept (N, c) and (M, c)
            blocks themselves (else they are vmapped over channels).
        method: for a sparse matrix, ``"host"`` or ``"bcsr"`` (see
            :class:`SparseMeasurement`); None picks ``"host"`` on a CPU backend and
            ``"bcsr"`` otherwise.

    Returns:
        A :class:`DenseMeasurement`, :class:`SparseMeasurement`,
        :class:`FunctionMeasurement` or :class:`KSpaceMask`. Matrices are stored in
        float64.

    Raises:
        TypeError: ``forward`` is none of the above, holds complex or non-numeric
            entries, or is a pair whose members are not callable.
        ValueError: a matrix that is not 2-D, is empty or holds NaN/inf; a pair of
            functions without ``shape``, or whose output shapes do not match it.

    Example:
        >>> import jax.numpy as jnp
        >>> from ntkspec import measurements
        >>> A = measurements.as_measurement(
        ...     (lambda x: x[:2], lambda y: jnp.zeros(3).at[:2].set(y)), shape=(2, 3)
        ... )
        >>> A.shape
        (2, 3)
    """
    import scipy.sparse
    from jax.experimental import sparse as jsparse

    if isinstance(forward, _MEASUREMENT_TYPES):
        return forward
    if isinstance(forward, tuple | list) and any(callable(f) for f in forward):
        if len(forward) != 2 or not all(callable(f) for f in forward):
            raise TypeError(
                "forward given as a sequence must be a pair (A, AT) of callables "
                f"(x -> A x, y -> A^T y); got {type(forward).__name__} of length "
                f"{len(forward)}"
            )
        if shape is None:
            raise ValueError(
                "shape must be given as (M, N) when forward is a pair of functions"
            )
        m, n = _check_shape_pair(shape)
        if not isinstance(batched, bool):
            raise TypeError(f"batched must be True or False; got {batched!r}")
        _check_function_shapes(forward[0], n, m, "forward[0] (A)", batched)
        _check_function_shapes(forward[1], m, n, "forward[1] (A^T)", batched)
        return FunctionMeasurement(forward[0], forward[1], (m, n), batched)
    if callable(forward):
        raise TypeError(
            "forward is a single function; pass the pair (A, AT) with its adjoint, "
            "and shape=(M, N)"
        )
    if shape is not None:
        raise ValueError("shape is only for a pair of functions; a matrix has its own")
    if isinstance(forward, jsparse.BCOO):
        if forward.ndim != 2 or forward.n_batch or forward.n_dense:
            raise ValueError(
                "forward as a BCOO matrix must be 2-D with no batch or dense "
                f"dimensions; got shape {forward.shape}, n_batch={forward.n_batch}, "
                f"n_dense={forward.n_dense}"
            )
        forward = scipy.sparse.coo_array(
            (
                np.asarray(forward.data),
                (np.asarray(forward.indices[:, 0]), np.asarray(forward.indices[:, 1])),
            ),
            shape=forward.shape,
        )
    if scipy.sparse.issparse(forward):
        return _sparse_from_scipy(forward, "forward", method)
    if isinstance(forward, list | tuple):
        forward = np.asarray(forward)
    if not hasattr(forward, "shape") or not hasattr(forward, "dtype"):
        raise TypeError(
            "forward must be a dense (M, N) array, a scipy.sparse matrix, a BCOO "
            f"matrix or a pair of functions (A, AT); got {type(forward).__name__}"
        )
    if is_traced(forward):
        raise TypeError("forward must be a concrete array, not a traced value")
    arr = np.asarray(forward)
    _check_matrix_facts(arr.shape, arr.dtype, "forward")
    _check_finite_matrix(arr, "forward")
    with x64_scope(np.float64):
        return DenseMeasurement(jnp.asarray(arr, dtype=np.float64))


def _check_matrix_facts(shape, dtype, name: str) -> None:
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D (M, N) matrix; got shape {shape}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(
            f"{name} must have M >= 1 rows and N >= 1 columns; got {shape}"
        )
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{name} must be real; got complex dtype {dtype} (split a complex "
            "measurement into real and imaginary rows)"
        )
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers; got dtype {dtype}")


def _default_sparse_method() -> str:
    return "host" if jax.default_backend() == "cpu" else "bcsr"


def _sparse_from_scipy(matrix, name: str, method: str | None = None):
    import scipy.sparse

    _check_matrix_facts(matrix.shape, matrix.dtype, name)
    csr = scipy.sparse.csr_array(matrix, dtype=np.float64)
    csr.sum_duplicates()
    _check_finite_matrix(csr.data, name)
    csr_t = scipy.sparse.csr_array(csr.T)
    csr_t.sum_duplicates()
    method = _default_sparse_method() if method is None else method
    if method not in _SPARSE_METHODS:
        raise ValueError(f"method must be one of {_SPARSE_METHODS}; got {method!r}")
    arrays = []
    with x64_scope(np.float64):
        for c in (csr, csr_t):
            arrays.append(jnp.asarray(c.data, dtype=np.float64))
            arrays.append(jnp.asarray(c.indices, dtype=np.int32))
            arrays.append(jnp.asarray(c.indptr, dtype=np.int32))
    dims = (int(csr.shape[0]), int(csr.shape[1]))
    return SparseMeasurement(*arrays, dims=dims, method=method)


# --------------------------------------------------------------------------------------
# The CT and MRI operators of the paper's notebooks.
# --------------------------------------------------------------------------------------


def _round_half_away(c: np.ndarray) -> np.ndarray:
    # The notebook's nearest-neighbour lookup (jax.scipy.ndimage.map_coordinates,
    # order 0) rounds half away from zero.
    return np.where(c >= 0, np.floor(c + 0.5), -np.floor(0.5 - c)).astype(np.int64)


def _ct_sources(grid_shape: tuple[int, int], theta: float):
    """Source pixel (row, column) of every rotated sample (i, j); which are inside."""
    h, w = grid_shape
    # Centred coordinates as in the notebook: row i -> i/H - 1/2, column j -> j/W - 1/2.
    yy, xx = np.meshgrid(
        np.arange(h, dtype=np.float64) / h - 0.5,
        np.arange(w, dtype=np.float64) / w - 0.5,
        indexing="ij",
    )
    cos, sin = math.cos(theta), math.sin(theta)
    src_c = _round_half_away((xx * cos - yy * sin + 0.5) * w)
    src_r = _round_half_away((xx * sin + yy * cos + 0.5) * h)
    ok = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)
    return src_r, src_c, ok


def _ct_matrix(grid_shape: tuple[int, int], angles: np.ndarray):
    import scipy.sparse

    h, w = grid_shape
    rows, cols = [], []
    col_index = np.broadcast_to(np.arange(w, dtype=np.int64), (h, w))
    for a, theta in enumerate(angles):
        src_r, src_c, ok = _ct_sources(grid_shape, theta)
        rows.append(a * w + col_index[ok])
        cols.append(src_r[ok] * w + src_c[ok])
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    vals = np.full(rows.shape, 1.0 / h)
    return scipy.sparse.coo_array(
        (vals, (rows, cols)), shape=(len(angles) * w, h * w)
    ).tocsr()


def ct_projections(
    grid_shape, num_angles: int = 20, *, method: str | None = None
) -> SparseMeasurement:
    r"""Parallel-beam CT projections of an image on an (H, W) grid, as a sparse value.

    The official ``2d_CT`` notebook's projector: for each angle
    :math:`\theta_a = \pi a / n_\theta`, :math:`a = 0, \dots, n_\theta - 1`
    (``linspace(0, pi, n + 1)[:-1]``), the image is resampled at the rotated pixel
    centres with nearest-neighbour lookup (zero outside the image) and averaged over
    its H rows,

    .. math::

        (A f)_{aW + j} = \frac{1}{H} \sum_{i=0}^{H-1} f_{r_a(i,j),\, c_a(i,j)},\quad
        \begin{aligned}
        c_a &= \mathrm{round}\big(W(x_j\cos\theta_a - y_i\sin\theta_a + \tfrac12)\big),
        \\ r_a &= \mathrm{round}\big(H(x_j\sin\theta_a + y_i\cos\theta_a +
        \tfrac12)\big),
        \end{aligned}

    with :math:`y_i = i/H - 1/2`, :math:`x_j = j/W - 1/2`, rounding half away from zero
    (terms with :math:`(r_a, c_a)` outside the image are dropped). The image is
    ``f.reshape(H, W)`` in C order (row i, column j) and the measurements are ordered
    angle-major, ``y.reshape(num_angles, W)`` being the notebook's projections. The
    matrix is built once with ``scipy.sparse`` (duplicates summed; at most
    ``num_angles * H * W`` non-zeros) and held as CSR arrays. Coordinates are
    computed in float64 (the notebook used float32, so a handful of exact rounding
    ties may resolve differently). Up to interpolation (nearest instead of linear) it
    is ``skimage.transform.radon(f, theta=-degrees(theta), circle=True).T / H`` for
    images that vanish outside the inscribed circle (about 1 % apart, relative, for
    features 6 pixels wide; the gap shrinks like pixel / feature width).

    Args:
        grid_shape: (H, W), the image's rows and columns (an int n means (n, n)).
        num_angles: number of projection angles :math:`n_\theta` >= 1 (the paper: 20).
        method: ``"host"``, ``"bcsr"`` or None (the backend's default), as in
            :func:`as_measurement`.

    Returns:
        A :class:`SparseMeasurement` of shape (num_angles * W, H * W).

    Raises:
        TypeError: ``grid_shape`` or ``num_angles`` is not made of integers.
        ValueError: ``grid_shape`` has not 2 entries, an entry or ``num_angles`` is
            < 1, or an unknown ``method``.

    Example:
        >>> from ntkspec import measurements
        >>> A = measurements.ct_projections((8, 8), num_angles=4)
        >>> A.shape
        (32, 64)
    """
    shape = _check_grid_shape(grid_shape, "grid_shape", (2,))
    n_theta = check_positive_int(num_angles, "num_angles")
    # at most num_angles * H * W non-zeros, each held as COO (row, column, value), its
    # CSR copy and the transposed CSR: about 48 bytes
    check_allocation(
        (n_theta, shape[0] * shape[1]),
        argument=f"num_angles = {n_theta:,} on grid_shape {shape}",
        what="the CT matrix's non-zeros (at most num_angles * H * W)",
        itemsize=48,
        alternative="Use fewer angles or a smaller grid.",
    )
    angles = np.linspace(0.0, np.pi, n_theta + 1)[:-1]
    return _sparse_from_scipy(_ct_matrix(shape, angles), "the CT matrix", method)


def ct_ray_extents(grid_shape, num_angles: int = 20) -> tuple[np.ndarray, np.ndarray]:
    r"""First and last ray sample inside the image for every CT detector bin.

    For the projector of :func:`ct_projections`, measurement :math:`aW + j` averages
    the samples :math:`i` of column j of the rotated image whose source pixel
    :math:`(r_a(i,j), c_a(i,j))` lies in the image. The image is convex, so those i
    form one interval :math:`[s_{aj}, e_{aj}]` (up to rounding at its ends, which this
    function reports exactly: the smallest and largest such i). A bin whose ray misses
    the image has :math:`s = 0, e = -1` (no samples).

    Args:
        grid_shape: (H, W) (an int n means (n, n)).
        num_angles: number of projection angles :math:`n_\theta \ge 1`.

    Returns:
        ``(first, last)``, int64 arrays of shape (num_angles, W).

    Example:
        >>> from ntkspec import measurements
        >>> first, last = measurements.ct_ray_extents((8, 8), num_angles=2)
        >>> first[0].tolist(), last[0].tolist()
        ([0, 0, 0, 0, 0, 0, 0, 0], [7, 7, 7, 7, 7, 7, 7, 7])
    """
    shape = _check_grid_shape(grid_shape, "grid_shape", (2,))
    n_theta = check_positive_int(num_angles, "num_angles")
    h, w = shape
    first = np.zeros((n_theta, w), dtype=np.int64)
    last = np.full((n_theta, w), -1, dtype=np.int64)
    for a, theta in enumerate(np.linspace(0.0, np.pi, n_theta + 1)[:-1]):
        _, _, ok = _ct_sources(shape, theta)
        has = ok.any(axis=0)
        first[a] = np.where(has, ok.argmax(axis=0), 0)
        last[a] = np.where(has, h - 1 - ok[::-1].argmax(axis=0), -1)
    return first, last


def kspace_sample_mask(grid_shape, num_samples: int = 200_000, seed: int = 0):
    r"""The notebook's Gaussian k-space sampling pattern, a boolean array in FFT order.

    ``num_samples`` points are drawn from :math:`\mathcal{N}(c, 2 n_1 I_d)` with centre
    :math:`c_i = \lfloor n_i/2 \rfloor` (the ``3d_MRI`` notebook's variance is
    :math:`2 n_1` in every axis, :math:`2\cdot 96` at :math:`96^3`), truncated towards
    zero to integers and marked; indices in :math:`[-n_i, -1]` wrap around and others
    outside the grid are dropped (the notebook's JAX scatter). The mask is then moved so
    that the centre sits at frequency 0 (``ifftshift``; the same as the notebook's
    ``fftshift`` for even sizes). Draws use ``numpy.random.default_rng(seed)``, so the
    pattern is fixed by the seed and does not depend on the JAX version (it is not the
    notebook's JAX draw; the kept fraction agrees, about 12.6 % at :math:`96^3`).

    Args:
        grid_shape: points per axis, 1 to 3 entries (an int n means (n, n, n)).
        num_samples: number of Gaussian draws (>= 1).
        seed: seed of the NumPy generator (an integer >= 0).

    Returns:
        A boolean NumPy array of shape ``grid_shape``, True where a coefficient is kept.

    Raises:
        TypeError: a non-integer argument.
        ValueError: an argument out of range.
    """
    shape = _check_grid_shape(grid_shape, "grid_shape", (1, 2, 3))
    num = check_positive_int(num_samples, "num_samples")
    seed = check_positive_int(seed, "seed", minimum=0)
    # the mask and its shifted copy (bytes), the draws (float64, then int64) and the
    # kept flat indices
    check_allocation(
        shape,
        argument=f"grid_shape = {shape}",
        what="the k-space mask",
        itemsize=2,
        extra_bytes=(3 * len(shape) + 2) * 8.0 * num,
        alternative="Use a smaller grid or fewer samples.",
    )
    rng = np.random.default_rng(seed)
    centre = np.array([n // 2 for n in shape], dtype=np.float64)
    std = math.sqrt(2.0 * shape[0])
    samples = (centre + std * rng.standard_normal((num, len(shape)))).astype(np.int64)
    dims = np.array(shape, dtype=np.int64)
    ok = np.all((samples >= -dims) & (samples < dims), axis=1)
    samples = np.mod(samples[ok], dims)
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(samples.T)] = True
    return np.fft.ifftshift(mask)


def mri_kspace(grid_shape, num_samples: int = 200_000, seed: int = 0) -> KSpaceMask:
    r"""MRI measurements: the notebook's Gaussian k-space mask on the orthonormal DFT.

    The mask is :func:`kspace_sample_mask`; the value maps a real signal on the grid
    (C order) to the real and imaginary parts of its kept orthonormal DFT
    coefficients, :math:`A x = [\mathrm{Re}(Fx)_S; \mathrm{Im}(Fx)_S]` (see
    :class:`KSpaceMask`). At :math:`96^3` with 200,000 samples about 12.6 % of
    k-space is kept (the notebook printed 12.56 %). The variance :math:`2n` does not
    scale with the grid like the grid's size, so the same count keeps more at a
    smaller grid: 31.6 % at :math:`64^3`, where 45,000 samples keep 12.65 % (seeds 0
    and 1), the paper's fraction for the reduced CPU size.

    Args:
        grid_shape: points per axis, 1 to 3 entries (an int n means (n, n, n)).
        num_samples: number of Gaussian draws (>= 1); the paper: 200,000.
        seed: seed of the NumPy generator (an integer >= 0).

    Returns:
        A :class:`KSpaceMask` of shape (2K, N).

    Raises:
        TypeError: a non-integer argument.
        ValueError: an argument out of range.

    Example:
        >>> from ntkspec import measurements
        >>> A = measurements.mri_kspace((16, 16), num_samples=100, seed=0)
        >>> A.shape[1], A.shape[0] == 2 * A.num_kept
        (256, True)
    """
    shape = _check_grid_shape(grid_shape, "grid_shape", (1, 2, 3))
    if math.prod(shape) > 2**31 - 1:
        raise ValueError(
            f"grid_shape {shape} has {math.prod(shape):,} points, over the 2**31 - 1 "
            "that the mask's int32 indices address; use a smaller grid"
        )
    mask = kspace_sample_mask(shape, num_samples, seed)
    flat = np.flatnonzero(mask.reshape(-1)).astype(np.int32)
    if flat.size == 0:
        raise ValueError(
            f"num_samples = {num_samples} with seed = {seed} keeps no k-space "
            f"coefficient on grid_shape {mask.shape} (every draw fell outside the "
            "grid): a measurement with no rows; raise num_samples"
        )
    return KSpaceMask(jnp.asarray(flat), tuple(int(n) for n in mask.shape))
