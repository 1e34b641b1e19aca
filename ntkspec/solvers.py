r"""Algorithms over any kernel operator: CG, block Lanczos, Krylov matrix functions.

Every algorithm here takes an *operator*: a value with ``shape`` (N, N) and a pure
``matvec`` over (N,) or (N, c) (the values of :mod:`ntkspec.operators`, or any pytree
with those two members). None of them knows how the kernel is computed. Results are
values: :class:`Solution` (the answer together with iterations, residual and a
converged flag, in the style of lineax's ``Solution``) and :class:`LanczosResult`.

* :func:`cg`: preconditioned conjugate gradients for :math:`A X = B` with symmetric
  positive (semi-)definite :math:`A`, all columns of :math:`B` at once, each stopped at
  its own residual; preconditioners are values (:class:`JacobiPreconditioner`,
  :class:`CirculantPreconditioner`, e.g. T. Chan's optimal circulant of a Toeplitz
  Gram, :func:`t_chan_preconditioner`).
* :func:`block_lanczos`: the top k eigenpairs by block Lanczos with full
  reorthogonalisation (Golub & Underwood 1977).
* :func:`restarted_lanczos`: the same with thick restarts (Wu & Simon 2000), so the
  basis stays at ``krylov_dim`` rows (``spectra.lanczos_eigenpairs(...,
  algorithm="restarted")``).
* :func:`lanczos_matfun`: :math:`f(A) V` by m steps of Lanczos per column,
  :math:`f(A) v \approx \|v\|\, Q_m f(T_m) e_1` (Saad 1992), with the a-posteriori
  error estimate :math:`\|v\|\,\|f(T_m) e_1 - [f(T_{m-1}) e_1; 0]\|`;
  :func:`lanczos_matfuns`: several functions from one Lanczos run, the Krylov
  dimension chosen by the estimate.
* :func:`psd_solve`: the dense float64 Cholesky solve with a condition estimate and a
  clipped-eigendecomposition fallback.

Hand-written rather than ``lineax``/``matfree``: neither is a dependency (adopting one
adds a package), and lineax's CG takes one right-hand side, while this one stops each
column at its own residual and reports the worst. The block Lanczos turns
reorthogonalisation into matrix products. The measured comparisons (this CG against
``lineax.CG``, ``analysis/compare_lineax.py``; the Lanczos solvers against ARPACK's
``eigsh``) are in the benchmark tables of the documentation
(``docs/results/benchmarks.md``).

References:
    Hestenes & Stiefel, "Methods of conjugate gradients for solving linear systems",
    J. Res. NBS 49, 1952.
    T. Chan, "An optimal circulant preconditioner for Toeplitz systems", SIAM J. Sci.
    Stat. Comput. 9(4), 1988.
    Golub & Underwood, "The block Lanczos method for computing eigenvalues", 1977;
    Golub & Van Loan, "Matrix Computations", 4th ed., section 10.3.
    Wu & Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
    problems", SIAM J. Matrix Anal. Appl. 22(2), 2000.
    Saad, "Analysis of some Krylov subspace approximations to the matrix exponential
    operator", SIAM J. Numer. Anal. 29(1), 1992.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._linalg import (
    cholesky_lower,
    scipy,  # scipy.linalg imported on first use
)
from ._numerics import check_dense_request, dense_cap_bytes, ridge_advice, x64_scope
from ._validation import check_positive_int, check_real, is_traced

__all__ = [
    "IllConditionedWarning",
    "ConvergenceWarning",
    "Solution",
    "CG",
    "Cholesky",
    "Eigh",
    "JacobiPreconditioner",
    "CirculantPreconditioner",
    "t_chan_preconditioner",
    "cg",
    "psd_solve",
    "PSDSolve",
    "LanczosResult",
    "block_lanczos",
    "restarted_lanczos",
    "lanczos_matfun",
    "lanczos_matfuns",
]

#: Condition number above which :func:`psd_solve` warns.
COND_WARN = 1e12


class IllConditionedWarning(RuntimeWarning):
    """The regression system is ill-conditioned or not numerically positive definite."""


class ConvergenceWarning(RuntimeWarning):
    """An iterative solver stopped before reaching its tolerance."""


def _check_operator(operator, name: str = "operator") -> int:
    shape = getattr(operator, "shape", None)
    if not callable(getattr(operator, "matvec", None)) or shape is None:
        raise TypeError(
            f"{name} must be a kernel operator with shape and matvec (a "
            f"GridKernelOperator or another ntkspec.operators value); got "
            f"{type(operator).__name__}"
        )
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be square; got shape {shape}")
    return int(shape[0])


# --------------------------------------------------------------------------------------
# Result and solver values.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["value", "iterations", "residual", "converged"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Solution:
    r"""An algorithm's answer with its convergence statistics.

    Attributes:
        value: the answer, e.g. :math:`X` with :math:`AX = B`, same shape as B.
        iterations: iterations (matvecs of the operator per column).
        residual: the worst column's relative residual
            :math:`\max_j \|b_j - A x_j\|/\|b_j\|` recomputed from the answer (CG), or
            the a-posteriori relative error estimate (:func:`lanczos_matfun`).
        converged: whether ``residual`` met the tolerance.
    """

    value: jax.Array
    iterations: jax.Array
    residual: jax.Array
    converged: jax.Array

    @property
    def stats(self) -> dict:
        """``{"iterations", "residual", "converged"}`` as Python numbers."""
        return {
            "iterations": int(self.iterations),
            "residual": float(self.residual),
            "converged": bool(self.converged),
        }


@dataclasses.dataclass(frozen=True)
class CG:
    """Conjugate gradients as a solver value (lineax style), for ``kernel_regression``.

    Attributes:
        rtol: relative residual per column at which it stops (> 0).
        atol: absolute residual floor (>= 0).
        max_iter: iteration cap (>= 1).
    """

    rtol: float = 1e-10
    atol: float = 0.0
    max_iter: int = 2000

    def __post_init__(self):
        if isinstance(self.rtol, numbers.Real):
            check_real(self.rtol, "rtol", low=0.0, low_inclusive=False)
            if not self.rtol < 1.0:
                raise ValueError(
                    "rtol must be in (0, 1): a relative residual of 1 or more is met "
                    f"by the zero solution; got {self.rtol}"
                )
        if isinstance(self.atol, numbers.Real):
            check_real(self.atol, "atol", low=0.0)
        check_positive_int(self.max_iter, "max_iter")


@dataclasses.dataclass(frozen=True)
class Cholesky:
    """The dense float64 Cholesky solve (:func:`psd_solve`) as a solver value."""


@dataclasses.dataclass(frozen=True)
class Eigh:
    r"""The solve through the operator's exact eigendecomposition, as a solver value.

    For a circulant operator (a periodic mapping on Grids) the eigenvectors are the
    Fourier modes: :math:`(K + \delta I)^{-1}` is the circulant with eigenvalues
    :math:`1/(\lambda(m) + \delta)`, applied by FFT, exact in O(N log N)
    (``solver="fft"`` in :func:`ntkspec.kernel_regression`).
    """


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inverse_diagonal"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class JacobiPreconditioner:
    r"""Diagonal preconditioner :math:`M^{-1} r = D^{-1} r`.

    Attributes:
        inverse_diagonal: :math:`1/A_{ii}`, shape (N,).
    """

    inverse_diagonal: jax.Array

    def apply(self, r):
        """:math:`D^{-1} r` for r of shape (N,) or (N, c)."""
        inv = self.inverse_diagonal
        return inv * r if r.ndim == 1 else inv[:, None] * r


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inverse_symbol"],
    meta_fields=["grid_shape"],
)
@dataclasses.dataclass(frozen=True)
class CirculantPreconditioner:
    r"""A multilevel circulant :math:`C^{-1}` applied by FFT.

    :math:`C^{-1} r` = ``irfftn(rfftn(r) * inverse_symbol)`` over the grid axes.

    Attributes:
        inverse_symbol: :math:`1/\lambda(m)` on the real half-spectrum, shape
            ``grid_shape[:-1] + (grid_shape[-1] // 2 + 1,)``.
        grid_shape: the grid shape (static).
    """

    inverse_symbol: jax.Array
    grid_shape: tuple[int, ...]

    def apply(self, r):
        """:math:`C^{-1} r` for r of shape (N,) or (N, c) in the grid's C order."""
        shape = self.grid_shape
        axes = tuple(range(len(shape)))
        x = r.reshape(shape + r.shape[1:])
        sym = self.inverse_symbol.reshape(
            self.inverse_symbol.shape + (1,) * (r.ndim - 1)
        )
        y = jnp.fft.irfftn(jnp.fft.rfftn(x, axes=axes) * sym, s=shape, axes=axes)
        return y.reshape(r.shape).astype(r.dtype)


def t_chan_preconditioner(operator, shift: float = 0.0) -> CirculantPreconditioner:
    r"""T. Chan's optimal circulant preconditioner of ``operator`` + ``shift`` I.

    :math:`C` minimises :math:`\|C - K\|_F` over circulants (T. Chan 1988), its
    eigenvalues are ``operator.t_chan_preconditioner()``; eigenvalues of
    :math:`C + \delta I` below :math:`10^{-12}` of the largest are raised to that floor.

    Args:
        operator: a :class:`~ntkspec.operators.GridKernelOperator`.
        shift: :math:`\delta \ge 0` (the ridge).
    """
    lam = np.asarray(operator.t_chan_preconditioner(), dtype=np.float64) + shift
    lam = np.maximum(lam, 1e-12 * float(np.max(np.abs(lam))))
    shape = operator.grid.shape
    with x64_scope(np.float64):
        inv = jax.device_put(np.ascontiguousarray(1.0 / lam[..., : shape[-1] // 2 + 1]))
    return CirculantPreconditioner(inv, shape)


# --------------------------------------------------------------------------------------
# Conjugate gradients.
# --------------------------------------------------------------------------------------


def _columns(b, n: int, dtype, name: str):
    """``b`` as an (N, c) array of ``dtype`` and whether it was a vector."""
    if b.ndim not in (1, 2) or b.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, c); got {b.shape}")
    # A transfer or a no-op for float arrays of the right dtype: no eager op to compile.
    b = jax.device_put(np.asarray(b, dtype)) if isinstance(b, np.ndarray) else b
    b = b if b.dtype == dtype else jnp.asarray(b, dtype)
    return (b[:, None], True) if b.ndim == 1 else (b, False)


def _coldot(a, b):
    return jnp.sum(a * b, axis=0)


@jax.jit
def _cg_run(operator, preconditioner, b, x0, rtol, atol, max_iter):
    """PCG on all columns of b (N, c); returns (x, iterations, true residual)."""
    precond = (lambda r: r) if preconditioner is None else preconditioner.apply
    bnorm = jnp.sqrt(_coldot(b, b))
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    tol = jnp.maximum(rtol * bnorm, atol)
    r = b - operator.matvec(x0)
    z = precond(r)
    rz = _coldot(r, z)
    rnorm = jnp.sqrt(_coldot(r, r))

    def cond(state):
        k, _, _, _, _, rnorm = state
        return (k < max_iter) & jnp.any(rnorm > tol)

    def body(state):
        k, x, r, p, rz, rnorm = state
        ap = operator.matvec(p)
        pap = _coldot(p, ap)
        active = (rnorm > tol) & (pap > 0)
        alpha = jnp.where(active, rz / jnp.where(active, pap, 1.0), 0.0)
        x = x + alpha[None, :] * p
        r = r - alpha[None, :] * ap
        z = precond(r)
        rz_new = _coldot(r, z)
        beta = jnp.where(active & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[None, :] * p
        return k + 1, x, r, p, rz_new, jnp.sqrt(_coldot(r, r))

    k, x, _, _, _, _ = jax.lax.while_loop(
        cond, body, (jnp.asarray(0), x0, r, z, rz, rnorm)
    )
    true_r = b - operator.matvec(x)
    res = jnp.sqrt(_coldot(true_r, true_r))
    return x, k, jnp.max(jnp.where(res <= atol, 0.0, res / bnorm))


def cg(
    operator,
    b,
    *,
    preconditioner=None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int = 2000,
    x0=None,
    restarts: int = 2,
) -> Solution:
    r"""Preconditioned conjugate gradients for :math:`A X = B`, all columns at once.

    The recurrence of Hestenes & Stiefel (1952) with :math:`M^{-1}` =
    ``preconditioner.apply``; column j stops once
    :math:`\|r_j\| \le \max(\mathrm{rtol}\,\|b_j\|, \mathrm{atol})`. The loop is one
    jitted ``lax.while_loop`` (the operator is an argument, so it is compiled once per
    operator type and shape). After it, the residual is recomputed from :math:`X`; when
    round-off made the recursive residual drift below the true one, CG restarts from
    :math:`X` (at most ``restarts`` times, within ``max_iter`` in all).

    Args:
        operator: symmetric positive (semi-)definite, with ``shape`` and ``matvec``.
        b: right-hand sides, shape (N,) or (N, c).
        preconditioner: a value with ``apply(r)`` approximating :math:`A^{-1} r`
            (:class:`JacobiPreconditioner`, :class:`CirculantPreconditioner`), or None.
        rtol: relative residual target per column (> 0).
        atol: absolute residual floor (>= 0).
        max_iter: iteration cap, all restarts together.
        x0: starting guess (default 0), shape of ``b``.
        restarts: restarts allowed when the true residual misses the target.

    Returns:
        A :class:`Solution` (value of the shape of ``b``; ``iterations`` the total).
    """
    n = _check_operator(operator)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    if not is_traced(rtol) and not float(rtol) < 1.0:
        raise ValueError(
            f"rtol must be in (0, 1): a relative residual of 1 or more is met by the "
            f"zero solution; got {rtol}"
        )
    check_real(atol, "atol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        bb, squeeze = _columns(b, n, dtype, "b")
        x = (
            jax.device_put(np.zeros(bb.shape, bb.dtype))
            if x0 is None
            else jnp.asarray(x0, dtype).reshape(bb.shape)
        )
        total, res = 0, math.inf
        for _ in range(1 + restarts):
            x, its, res = _cg_run(
                operator, preconditioner, bb, x, rtol, atol, max_iter - total
            )
            total += int(its)
            res = float(res)
            if res <= rtol or total >= max_iter:
                break
        value = x[:, 0] if squeeze else x
        return Solution(  # transfers of host numbers (no eager op to compile)
            value,
            jax.device_put(np.int64(total)),
            jax.device_put(np.float64(res)),
            jax.device_put(np.bool_(res <= rtol)),
        )


# --------------------------------------------------------------------------------------
# Dense positive (semi-)definite solve.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PSDSolve:
    """What :func:`psd_solve` returns.

    Attributes:
        value: the solution X, float64 NumPy, shape of Y.
        method: "cholesky", or "eigh" for the clipped-eigendecomposition fallback.
        condition: estimated condition number (inf for the fallback).
        factor: ("chol", L) or ("eigh", V, clipped inverse eigenvalues).
    """

    value: np.ndarray
    method: str
    condition: float
    factor: tuple

    def half_inverse(self, B: np.ndarray) -> np.ndarray:
        r""":math:`L^{-1} B` (so :math:`\|L^{-1}b\|^2 = b^\top A^{-1} b`)."""
        if self.factor[0] == "chol":
            return scipy.linalg.solve_triangular(
                self.factor[1], B, lower=True, check_finite=False
            )
        evecs, inv = self.factor[1], self.factor[2]
        return np.sqrt(inv)[:, None] * (evecs.T @ B)


def _suggest_ridge(anorm: float) -> float:
    return 1e-10 * anorm


def psd_solve(A: np.ndarray, Y: np.ndarray, what: str, *, stacklevel: int = 4):
    r"""Solve :math:`A X = Y` for symmetric PSD :math:`A` in float64 (LAPACK).

    Cholesky with LAPACK's condition estimate (``dpocon``); a condition number over
    1e12 warns (:class:`IllConditionedWarning`, naming a ridge that would help). A
    matrix that is not numerically positive definite is solved by its
    eigendecomposition with eigenvalues below :math:`N \epsilon \lambda_{\max}`
    dropped (the minimum-norm solution), also with a warning; never NaN.

    Args:
        A: shape (n, n).
        Y: shape (n, c).
        what: how warnings name the matrix.
        stacklevel: passed to ``warnings.warn``.

    Returns:
        A :class:`PSDSolve`.
    """
    n = A.shape[0]
    anorm = float(np.max(np.sum(np.abs(A), axis=0)))
    try:
        c = cholesky_lower(A)  # blocked: threaded OpenBLAS potrf crashes at n=16384
        ok = bool(np.all(np.isfinite(c)))
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        rcond, _ = scipy.linalg.lapack.dpocon(c, anorm, uplo="L")
        cond = math.inf if rcond <= 0 else 1.0 / float(rcond)
        if cond > COND_WARN:
            warnings.warn(
                f"{what} is ill-conditioned (condition number ~{cond:.1e} > "
                f"{COND_WARN:.0e}): the solution may have lost most of its digits. A "
                f"ridge of about {_suggest_ridge(anorm):.1e} (1e-10 of the Gram's "
                f"norm) would bound the condition number near 1e10.",
                IllConditionedWarning,
                stacklevel=stacklevel,
            )
        X = scipy.linalg.cho_solve((c, True), Y, check_finite=False)
        return PSDSolve(X, "cholesky", cond, ("chol", c))
    evals, evecs = np.linalg.eigh(A)
    top = float(np.max(np.abs(evals))) if n else 0.0
    floor = n * np.finfo(np.float64).eps * top
    keep = evals > floor
    warnings.warn(
        f"{what} is not numerically positive definite (smallest eigenvalue "
        f"{evals[0]:.2e}, largest {top:.2e}); solved by eigendecomposition with the "
        f"{int(np.sum(~keep))} eigenvalues below {floor:.1e} dropped (minimum-norm "
        f"solution); " + ridge_advice(anorm),
        IllConditionedWarning,
        stacklevel=stacklevel,
    )
    inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
    X = evecs @ (inv[:, None] * (evecs.T @ Y))
    return PSDSolve(X, "eigh", math.inf, ("eigh", evecs, inv))


# --------------------------------------------------------------------------------------
# Block Lanczos with full reorthogonalisation.
# --------------------------------------------------------------------------------------
# Choice: our own block Lanczos, not scipy's eigsh (ARPACK) nor jax's lobpcg_standard.
# ARPACK calls back into Python once per matvec and reorthogonalises one vector at a
# time: a gemv over the whole basis, memory-bound (on the project's 2-core CPU it spends
# most of its time there, not in the FFTs). LOBPCG needs a block at least as wide as k
# and three blocks of matvecs per iteration. A block Lanczos turns every
# reorthogonalisation into a matrix-matrix product, and runs the block's matvecs in one
# jitted call (lax.map over the rows: XLA's CPU FFT is faster one vector at a time than
# batched). The basis grows, so the blocks run in a Python loop with the basis in NumPy
# (BLAS products on views, no copies; XLA's CPU dot and QR are several times slower
# than OpenBLAS at these tall-skinny shapes); T is block tridiagonal, so its top Ritz
# pairs come from a banded eigensolver each step.


class _Stats(dict):
    """A dict of timings (not numerical results)."""


@dataclasses.dataclass(frozen=True)
class LanczosResult:
    r"""Top eigenpairs from :func:`block_lanczos`, with diagnostics.

    Attributes:
        eigenvalues: shape (k,), descending.
        eigenvectors: shape (N, k) or None.
        residuals: :math:`\|K v_i - \lambda_i v_i\|` estimates, shape (k,).
        converged: all residuals <= tol * largest eigenvalue.
        krylov_dim: dimension of the final Krylov basis.
        matvecs: number of matrix-vector products.
        restarts: thick restarts done (:func:`restarted_lanczos`; 0 otherwise).
        method: "lanczos", or "dense" where the Krylov basis would have reached
            (within a block of) N and the dense ``eigh`` of K was used instead.
        stats: wall-clock timings, not numerical results: ``"seconds"`` (total) and
            its parts ``"matvec_s"``, ``"orth_s"`` (Gram-Schmidt and the block QR),
            ``"ritz_s"`` (eigensolves of the projected matrix), ``"restart_s"``
            (:func:`restarted_lanczos`, which also counts ``"second_passes"`` of
            Gram-Schmidt).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    residuals: np.ndarray
    converged: bool
    krylov_dim: int
    matvecs: int
    restarts: int = 0
    stats: dict = dataclasses.field(default_factory=dict)
    method: str = "lanczos"

    @property
    def seconds(self) -> float:
        """Deprecated: wall time; use ``stats["seconds"]``."""
        warnings.warn(
            "LanczosResult.seconds is deprecated; use LanczosResult.stats['seconds'] "
            "(timings are not numerical results)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.stats.get("seconds", math.nan)


@jax.jit
def _rows_matvec(operator, rows):
    """The operator applied to each row of ``rows`` (b, N), one matvec per row."""
    return jax.lax.map(operator.matvec, rows)


def _cgs(basis, w):
    """One classical Gram-Schmidt pass of the rows of w against the rows of basis."""
    h = basis @ w.T
    w -= h.T @ basis
    return w


def _orthonormal_rows(w):
    """Rows q with w = r^T q, q q^T = I (QR of w^T), by Cholesky QR twice.

    Two Gram-matrix Cholesky passes are a few BLAS-3 calls (Householder QR of a tall
    block is many small level-2 calls, slow on a busy CPU); when w is too
    ill-conditioned for them (a breakdown), Householder QR is used instead.
    """
    b = w.shape[0]
    q, r = w, np.eye(b)
    try:
        for _ in range(2):
            low = np.linalg.cholesky(q @ q.T)
            # The inverse of the small factor times q (one GEMM): scipy's triangular
            # solve cost ~20 ms per call on the shared CPU whatever its size (threads
            # yielding at load ~7), numpy's b x b inverse and the GEMM well under 1 ms.
            q = np.linalg.inv(low) @ q
            r = low.T @ r
        ok = np.all(np.isfinite(q)) and np.allclose(
            q @ q.T, np.eye(b), rtol=0, atol=1e-13
        )
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        return q, r
    q_t, r = np.linalg.qr(w.T)
    return np.ascontiguousarray(q_t.T), r


def _next_block(w, basis, thresh, rng, need_q=True):
    r"""The next Lanczos block: rows q and a coupling r with ``w = r^T q``.

    ``w`` (b, N) is already orthogonalised against ``basis`` (the rows so far). When
    w has full numerical rank (every diagonal entry of its R factor above
    ``thresh``) this is Cholesky QR twice. Otherwise (a breakdown: the block Krylov
    space is nearly invariant, or w is rounding noise) Cholesky QR would amplify
    that noise into rows neither orthogonal to the basis nor coupled to w, so the
    split is rank-revealing: w = U S Z (thin SVD), the rows of Z with singular value
    above ``thresh`` are kept, the rest replaced by random rows orthogonal to the
    basis (Golub & Underwood's deflation), all re-orthogonalised against the basis,
    and the coupling re-triangularised (QR of the b x b coefficient matrix), so the
    band of T keeps its width. The singular values dropped (each <= ``thresh``) are
    returned: they bound the error of the recurrence.

    With ``need_q=False`` (the last block, whose rows are never stored) only an r
    with :math:`r^\top r = w w^\top` is returned (residual norms need no more).
    """
    b, n = w.shape
    if need_q:
        q, r = _orthonormal_rows(w)
        diag = np.abs(np.diag(r))
        # Row p of q is (w_p - its part along earlier rows) / r_pp: a small r_pp
        # relative to |w_p| multiplies w_p's rounding-level component along the basis
        # by |w_p| / r_pp, so past 1e4 the rows are re-orthogonalised below.
        lost = diag < 1e-4 * np.linalg.norm(w, axis=1)
        if np.all(np.isfinite(r)) and np.min(diag) > thresh and not np.any(lost):
            return q, r, 0.0
    u, sv, z = np.linalg.svd(w, full_matrices=False)
    if not need_q:
        return None, sv[:, None] * u.T, 0.0
    rank = int(np.sum(sv > thresh))
    dropped = float(np.sqrt(np.sum(sv[rank:] ** 2)))
    rows = z[:b].copy()
    if rank < b:
        rows[rank:] = rng.standard_normal((b - rank, n))
    # Twice against the basis, then an orthonormal split rows = l q (QR of rows^T).
    rows = _cgs(basis, _cgs(basis, rows))
    q_t, l_t = np.linalg.qr(rows.T)
    q = np.ascontiguousarray(q_t.T)
    if not np.all(np.abs(np.diag(l_t)) > 1e-3):  # callers keep >= b rows of room
        raise RuntimeError("block Lanczos: no room left for a fresh block")
    coef = w @ q.T  # (b, b): w ~= coef q (exact up to the dropped part)
    q2, r2 = np.linalg.qr(coef.T)  # coef = r2^T q2^T
    return np.ascontiguousarray(q2.T @ q), r2, dropped


def _dense_top(apply, n, b, k, vectors, t0, clock, matvecs, max_bytes):
    r"""Top-k eigenpairs from the dense K (N matvecs on the identity, b rows a call).

    Used where the Krylov basis would reach (or come within a block of) N: there
    block Lanczos has nothing to gain over the whole matrix, and no room left for
    the fresh directions a breakdown needs. eigh is backward stable, so each
    eigenvalue is exact to rounding (:math:`|\Delta\lambda| \lesssim N\epsilon
    \|K\|`); ``converged`` is True.
    """
    check_dense_request(
        (n, n),
        8,
        max_bytes,
        what="lanczos_eigenpairs: the dense K (the basis would reach N)",
        alternative="Lower k.",
    )
    t1 = time.perf_counter()
    dense = np.empty((n, n))
    eye = np.zeros((b, n))
    for i0 in range(0, n, b):
        rows = min(b, n - i0)
        eye[:] = 0.0
        eye[np.arange(rows), i0 + np.arange(rows)] = 1.0
        dense[i0 : i0 + rows] = apply(eye)[:rows]
    t2 = time.perf_counter()
    clock["matvec_s"] += t2 - t1
    dense = 0.5 * (dense + dense.T)
    theta, y = _top_eigh(dense, k)
    res = np.linalg.norm(dense @ y - y * theta, axis=0)
    clock["ritz_s"] += time.perf_counter() - t2
    return LanczosResult(
        eigenvalues=theta,
        eigenvectors=np.ascontiguousarray(y) if vectors else None,
        residuals=res,
        converged=True,
        krylov_dim=n,
        matvecs=matvecs + n,
        stats={"seconds": time.perf_counter() - t0, **clock},
        method="dense",
    )


def _band_put_diag(band, a, j0):
    """Store the diagonal block a at rows/cols j0.. of T (band in lower form)."""
    b = a.shape[0]
    for i in range(b):
        band[i, j0 : j0 + b - i] = np.diagonal(a, -i)


def _band_put_sub(band, r, j0):
    """Store the subdiagonal block T[j0+b.., j0..] = r (upper triangular)."""
    b = r.shape[0]
    for p in range(b):
        for q in range(p, b):
            band[b + p - q, j0 + q] = r[p, q]


def _banded_top(band, dim, k):
    """Top-k eigenpairs (descending) of the symmetric band matrix band[:, :dim]."""
    kk = min(k, dim)
    theta, y = scipy.linalg.eig_banded(
        band[:, :dim], lower=True, select="i", select_range=(dim - kk, dim - 1)
    )
    return theta[::-1], y[:, ::-1]


def _lanczos_sizes(n, k, block_size, tol, max_dim, max_bytes):
    """Validated (k, block width, steps, basis rows, max_dim)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be None or an integer in [1, N = {n}]; got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N = {n}] (number of points); got {k}")
    if block_size is None:
        block_size = 8
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
        raise TypeError(f"block_size must be a positive integer; got {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    b = int(min(block_size, n))
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1); got {tol!r}")
    if max_dim is None:
        # Enough for clustered spectra (Gaussian sigma = 100 at 256^2 needed 856 for
        # k = 100), capped by what the memory cap allows for the basis.
        fits = int(dense_cap_bytes(max_bytes) // (8 * n))
        max_dim = min(max(10 * k, 1000), max(fits, k + 2 * b))
    if isinstance(max_dim, bool) or not isinstance(max_dim, numbers.Integral):
        raise TypeError(f"max_dim must be an integer; got {max_dim!r}")
    max_dim = max(min(int(max_dim), n), min(n, k + b))
    steps = max(1, max_dim // b)
    check_dense_request(
        (steps * b, n),
        8,
        max_bytes,
        what="lanczos_eigenpairs: the Krylov basis",
        alternative="Lower k or max_dim.",
    )
    return int(k), b, steps, steps * b, max_dim


def block_lanczos(
    operator,
    k: int,
    *,
    vectors: bool = False,
    block_size: int | None = None,
    tol: float = 1e-10,
    max_dim: int | None = None,
    seed: int = 0,
    max_bytes: float | None = None,
) -> LanczosResult:
    r"""Top-k eigenpairs of a symmetric operator by block Lanczos.

    Builds an orthonormal basis :math:`V` of the block Krylov space
    :math:`\mathrm{span}\{Q_0, KQ_0, K^2Q_0, \dots\}` (random :math:`Q_0` with
    ``block_size`` rows) by the block three-term recurrence
    :math:`K Q_j = Q_{j-1} R_{j-1}^\top + Q_j A_j + Q_{j+1} R_j` with full
    reorthogonalisation (classical Gram-Schmidt as matrix products, repeated when a
    column loses more than half its norm), and takes the Rayleigh-Ritz pairs of the
    block tridiagonal :math:`T = V^\top K V`. A Ritz pair :math:`(\theta, Vy)` has
    residual :math:`\|K V y - \theta V y\| = \|R_j y_{\rm last}\|`; the iteration stops
    when each of the top k has residual :math:`\le` ``tol`` :math:`\cdot|\theta|`
    (ARPACK's criterion).

    A rank-deficient block (a breakdown: the Krylov space is nearly invariant) is
    split by a rank-revealing SVD and continued with fresh random rows orthogonal to
    the basis; the norm it drops (each singular value <= 1e-12 of the largest Ritz
    value) is added to every residual estimate. Where the basis would come within a
    block of N (``k + 2 block_size > N``, or ``max_dim`` reached near N without
    convergence) the top k come from the dense ``eigh`` of K, built by N matvecs
    (``method="dense"`` in the result): no room is left for fresh rows there, and the
    Krylov space is (nearly) all of :math:`\mathbb{R}^N`.

    Args:
        operator: symmetric, with ``shape`` and ``matvec`` (pure, jittable).
        k: number of eigenpairs, 1 <= k <= N.
        vectors: also return the Ritz vectors (N, k).
        block_size: Lanczos block width (default 8, at most N).
        tol: relative residual tolerance, in (0, 1).
        max_dim: largest Krylov dimension (default ``max(10 k, 1000)``, at most N and
            what the memory cap allows); the basis takes ``max_dim * N * 8`` bytes.
        seed: seed of the random start block.
        max_bytes: memory cap for the basis (default 4 GiB or
            ``NTKSPEC_MAX_DENSE_BYTES``).

    Returns:
        A :class:`LanczosResult`. When the residuals miss ``tol`` at ``max_dim`` a
        ``RuntimeWarning`` reports them and the best Ritz pairs are returned.
    """
    t0 = time.perf_counter()
    n = _check_operator(operator)
    k, b, steps, cap_rows, max_dim = _lanczos_sizes(
        n, k, block_size, tol, max_dim, max_bytes
    )
    rng = np.random.default_rng(seed)
    with x64_scope(np.float64):

        def apply(rows):
            return np.array(_rows_matvec(operator, jnp.asarray(rows)))

        clock = {"matvec_s": 0.0, "orth_s": 0.0, "ritz_s": 0.0}
        if k + 2 * b > n:  # the basis would span (nearly) all of R^N
            return _dense_top(apply, n, b, k, vectors, t0, clock, 0, max_bytes)
        basis = np.empty((cap_rows, n))
        q_j, _ = _orthonormal_rows(rng.standard_normal((b, n)))
        basis[:b] = q_j
        band = np.zeros((b + 1, cap_rows))  # T in LAPACK lower band form
        r_prev = None
        theta = y = None
        res = np.full(k, np.inf)
        converged = False
        matvecs = 0
        scale = 0.0
        defect2 = 0.0  # squared norms dropped at breakdowns (bound the recurrence)
        near = False
        for j in range(steps):
            j0, dim = j * b, (j + 1) * b
            t1 = time.perf_counter()
            w = apply(basis[j0:dim])
            t2 = time.perf_counter()
            clock["matvec_s"] += t2 - t1
            matvecs += b
            if r_prev is not None:
                w -= r_prev @ basis[j0 - b : j0]
            a_j = w @ basis[j0:dim].T
            a_j = 0.5 * (a_j + a_j.T)
            w -= a_j @ basis[j0:dim]
            # One CGS pass; a second one only where a column lost more than half of its
            # norm to the first (Daniel-Gragg-Kaufman-Stewart: "twice is enough").
            before = np.linalg.norm(w, axis=1)
            w = _cgs(basis[:dim], w)
            if np.any(np.linalg.norm(w, axis=1) < 0.5 * before):
                w = _cgs(basis[:dim], w)
            last = dim + b > cap_rows
            scale = max(scale, float(np.max(np.abs(np.diag(a_j)))))
            thresh = 1e-12 * max(scale, np.finfo(float).tiny)
            q_next, r_j, dropped = _next_block(w, basis[:dim], thresh, rng, not last)
            defect2 += dropped**2
            t3 = time.perf_counter()
            clock["orth_s"] += t3 - t2
            _band_put_diag(band, a_j, j0)
            # Ritz pairs every fourth step once the basis can hold k of them, every
            # step once the last check came within 1e3 tol (each check is a banded
            # eigensolve; skipping one far from convergence costs nothing).
            if (dim >= k and (near or j % 4 == 3)) or last or theta is None:
                theta, y = _banded_top(band, dim, k)
                scale = max(abs(theta[0]), np.finfo(float).tiny)
                res = np.linalg.norm(r_j @ y[j0:dim], axis=0) + math.sqrt(defect2)
                worst = float(np.max(res / np.maximum(np.abs(theta), 1e-300)))
                near = dim >= k and worst <= 1e3 * tol
                if dim >= k and worst <= tol:
                    converged = True
                    clock["ritz_s"] += time.perf_counter() - t3
                    break
            clock["ritz_s"] += time.perf_counter() - t3
            if last:
                if cap_rows + b > n:  # not converged with (nearly) all of R^N spanned
                    return _dense_top(
                        apply, n, b, k, vectors, t0, clock, matvecs, max_bytes
                    )
                break
            _band_put_sub(band, r_j, j0)
            r_prev = r_j
            basis[dim : dim + b] = q_next
        dim = y.shape[0]
        kk = min(k, theta.shape[0])
        if not converged:
            rel = float(np.max(res[:kk] / np.maximum(np.abs(theta[:kk]), 1e-300)))
            warnings.warn(
                f"lanczos_eigenpairs did not converge: Krylov dimension {dim} "
                f"(max_dim {max_dim}), {matvecs} matvecs, largest relative residual "
                f"{rel:.2e} > tol {tol:.1e}; raise max_dim",
                RuntimeWarning,
                stacklevel=3,
            )
        evecs = basis[:dim].T @ y[:, :kk] if vectors else None
    return LanczosResult(
        eigenvalues=theta[:kk].copy(),
        eigenvectors=evecs,
        residuals=res[:kk],
        converged=converged,
        krylov_dim=dim,
        matvecs=matvecs,
        stats={"seconds": time.perf_counter() - t0, **clock},
    )


# --------------------------------------------------------------------------------------
# Thick-restart block Lanczos.
# --------------------------------------------------------------------------------------
# Same choice as above (not ARPACK), with a basis of fixed size: the unrestarted block
# Lanczos needed 576 matvecs and a basis of 576 rows for the top 100 at 512^2, and its
# reorthogonalisation (N x basis per block) dominated. Restarting keeps the basis near
# 2k rows, so each block's Gram-Schmidt reads a quarter to a third of the memory.
# Profile (issue 17; top 100 at 512^2, Gaussian sigma 10, b = 8, basis 200 rows, load
# 0.3): a matvec 14 ms per column (XLA's CPU FFT runs on one thread: process time =
# wall time; a batched (N, 8) FFT took 27.8 ms per column against 13.5 by lax.map);
# one Gram-Schmidt pass of 8 rows against 200, 157 ms (skinny OpenBLAS GEMMs, ~5
# Gflop/s), so per column the orthogonalisation costs about a matvec; the second
# pass was never triggered. At load ~7 the breakdown of the whole solve was matvecs
# 18 s, Gram-Schmidt and block QR 24 s, Ritz eigensolves 8 s, restarts 8 s
# (``stats``). Matvecs needed at 128^2 for block sizes 2/4/8/16: 414/480/608/816.


def _thick_sizes(n, k, block_size, tol, krylov_dim, max_restarts, max_bytes):
    """Validated (k, block width, basis rows, rows kept at a restart, max restarts)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer in [1, N = {n}]; got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N = {n}] (number of points); got {k}")
    k = int(k)
    if block_size is None:
        block_size = 8
    b = check_positive_int(block_size, "block_size")
    b = min(b, n)
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1); got {tol!r}")
    if krylov_dim is None:
        # 2.4 k rows keeping k + (m - k) / 4 at a restart: for the top 100 at 256^2
        # (Gaussian sigma 10, b = 8) 608 matvecs and 4 restarts, 14.4 s, against 616
        # and 9 restarts, 16.6 s, for 2 k rows keeping k + (m - k) / 2 (same run,
        # load ~5): fewer basis rotations and eigensolves for one block more.
        krylov_dim = max((12 * k) // 5, k + 10 * b)
    m = check_positive_int(krylov_dim, "krylov_dim")
    m = (min(max(m, k + 2 * b), n) // b) * b
    max_restarts = check_positive_int(max_restarts, "max_restarts", minimum=0)
    check_dense_request(
        (m, n),
        8,
        max_bytes,
        what="restarted_lanczos: the Krylov basis",
        alternative="Lower k or krylov_dim.",
    )
    keep = min(m - b, k + max(b, (m - k) // 4))
    return k, b, m, keep, max_restarts


def _top_eigh(h, count):
    """Top ``count`` eigenpairs (descending) of the symmetric matrix h.

    LAPACK's MRRR driver (``syevr``), chosen over ``numpy.linalg.eigh`` (``syevd``)
    for the small projected matrices of the Lanczos loop (timings in
    ``docs/results/benchmarks.md``).
    """
    dim = h.shape[0]
    count = min(count, dim)
    theta, y = scipy.linalg.eigh(h, driver="evr", check_finite=False)
    return theta[::-1][:count].copy(), y[:, ::-1][:, :count]


def _rotate_rows(basis, nv, coef):
    """basis[:p] = coef.T @ basis[:nv] in place, p = coef.shape[1], in column chunks."""
    p = coef.shape[1]
    ct = np.ascontiguousarray(coef.T)
    step = 1 << 14
    for c0 in range(0, basis.shape[1], step):
        basis[:p, c0 : c0 + step] = ct @ basis[:nv, c0 : c0 + step]


def restarted_lanczos(
    operator,
    k: int,
    *,
    vectors: bool = False,
    block_size: int | None = None,
    tol: float = 1e-10,
    krylov_dim: int | None = None,
    max_restarts: int = 100,
    seed: int = 0,
    start=None,
    max_bytes: float | None = None,
) -> LanczosResult:
    r"""Top-k eigenpairs of a symmetric operator by thick-restart block Lanczos.

    A block Lanczos basis :math:`V` (rows orthonormal, full reorthogonalisation) is
    grown ``block_size`` rows at a time, keeping :math:`H = V K V^\top` and

    .. math::

        K V^\top = V^\top H + Q_{\rm next}^\top R\, E_{\rm last}^\top ,

    where :math:`Q_{\rm next}` is the next block and :math:`R` its coupling to the
    last expanded block. When the basis holds ``krylov_dim`` rows it is restarted
    (Wu & Simon 2000, blocked as in Zhou & Saad 2008): the top ``p`` Ritz vectors
    :math:`U = Y_p^\top V` are kept with :math:`H = \mathrm{diag}(\theta_p)` and
    coupling :math:`R\,Y_{\rm last,p}` to :math:`Q_{\rm next}`, which is expanded
    next. Each step the Ritz pairs of :math:`H` are checked: a pair
    :math:`(\theta, V^\top y)` has residual
    :math:`\|K V^\top y - \theta V^\top y\| = \|R\, y_{\rm last}\|`, and the iteration
    stops when each of the top k has residual :math:`\le` ``tol`` :math:`\cdot|\theta|`
    (ARPACK's criterion). Breakdowns are handled as in :func:`block_lanczos`; where
    the basis would come within a block of N (``krylov_dim + block_size > N``, or
    ``k + 2 block_size > N``) the dense ``eigh`` of K (N matvecs) is used instead.

    Args:
        operator: symmetric, with ``shape`` and ``matvec`` (pure, jittable).
        k: number of eigenpairs, 1 <= k <= N.
        vectors: also return the Ritz vectors (N, k).
        block_size: block width b (default 8, at most N).
        tol: relative residual tolerance, in (0, 1).
        krylov_dim: basis rows m before a restart (default ``max(2.4 k, k + 10 b)``,
            at least ``k + 2b``, at most N); memory ``m * N * 8`` bytes. A restart
            keeps the top ``k + max(b, (m - k) / 4)`` Ritz vectors.
        max_restarts: restarts allowed (>= 0) before giving up with a warning.
        seed: seed of the random start block.
        start: optional start block, shape (N,) or (N, c) (e.g. approximate
            eigenvectors); completed with random columns to b.
        max_bytes: memory cap for the basis (default 4 GiB or
            ``NTKSPEC_MAX_DENSE_BYTES``).

    Returns:
        A :class:`LanczosResult` (``krylov_dim`` = m, ``restarts``). When the residuals
        miss ``tol`` after ``max_restarts`` restarts a :class:`ConvergenceWarning`
        reports them, ``converged`` is False and the best Ritz pairs are returned.

    References:
        K. Wu & H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
        problems", SIAM J. Matrix Anal. Appl. 22(2), 2000.
        Y. Zhou & Y. Saad, "Block Krylov-Schur method for large symmetric eigenvalue
        problems", Numer. Algorithms 47, 2008.
    """
    t0 = time.perf_counter()
    n = _check_operator(operator)
    k, b, m, keep, max_restarts = _thick_sizes(
        n, k, block_size, tol, krylov_dim, max_restarts, max_bytes
    )
    rng = np.random.default_rng(seed)
    q0 = rng.standard_normal((b, n))
    if start is not None:
        s = np.asarray(start, dtype=np.float64)
        if s.ndim not in (1, 2) or s.shape[0] != n:
            raise ValueError(f"start must have shape ({n},) or ({n}, c); got {s.shape}")
        s = s.reshape(n, -1).T[:b]
        q0[: s.shape[0]] = s
    with x64_scope(np.float64):

        def apply(rows):
            return np.array(_rows_matvec(operator, jnp.asarray(rows)))

        clock = {"matvec_s": 0.0, "orth_s": 0.0, "ritz_s": 0.0, "restart_s": 0.0}
        if m + b > n or k + 2 * b > n:
            # The basis would reach (within a block of) N: no room to restart, nor for
            # the fresh rows of a breakdown; the dense eigh costs N matvecs.
            return _dense_top(apply, n, b, k, vectors, t0, clock, 0, max_bytes)
        basis = np.empty((m, n))
        basis[:b], _ = _orthonormal_rows(q0)
        h_mat = np.zeros((m, m))
        nv, cur = b, 0  # rows in the basis; first row of the block to expand
        matvecs = restarts = steps = 0
        theta = y = res = None
        converged = near = False
        scale = 0.0
        defect2 = 0.0  # squared norms dropped at breakdowns (bound the recurrence)
        second = 0
        while True:
            blk = slice(cur, cur + b)
            t1 = time.perf_counter()
            w = apply(basis[blk])
            t2 = time.perf_counter()
            clock["matvec_s"] += t2 - t1
            matvecs += b
            # Local recurrence first (the known couplings of this block: previous block
            # or, after a restart, the kept Ritz vectors), then one full classical
            # Gram-Schmidt pass, a second only where a row lost more than half its norm.
            # (the support is contiguous: the block before, or rows 0..p after a
            # restart; slices keep the products on views of the basis, no copies)
            support = np.flatnonzero(np.any(h_mat[:cur, blk] != 0.0, axis=1))
            if support.size:
                lo, hi = int(support[0]), int(support[-1]) + 1
                w -= h_mat[lo:hi, blk].T @ basis[lo:hi]
            a_j = w @ basis[blk].T
            a_j = 0.5 * (a_j + a_j.T)
            w -= a_j @ basis[blk]
            h_mat[blk, blk] = a_j
            before = np.linalg.norm(w, axis=1)
            w = _cgs(basis[:nv], w)
            if np.any(np.linalg.norm(w, axis=1) < 0.5 * before):
                w = _cgs(basis[:nv], w)
                second += 1
            scale = max(scale, float(np.max(np.abs(np.diag(a_j)))))
            thresh = 1e-12 * max(scale, np.finfo(float).tiny)
            q_next, r_j, dropped = _next_block(w, basis[:nv], thresh, rng)
            defect2 += dropped**2
            t3 = time.perf_counter()
            clock["orth_s"] += t3 - t2
            full = nv + b > m
            steps += 1
            # Ritz pairs before each restart, and every step once the last check came
            # within 1e3 tol of converging: each check is an eigensolve of H (cheap
            # idle, but 0.05-0.3 s at 200 rows on a busy 2-core CPU, where OpenBLAS
            # threads contend), and a check skipped far from convergence costs nothing.
            if full or nv == n or (nv >= k and near) or theta is None:
                theta, y = _top_eigh(h_mat[:nv, :nv], max(keep, k))
                scale = max(scale, abs(theta[0]), np.finfo(float).tiny)
                res = np.linalg.norm(r_j @ y[blk, :], axis=0) + math.sqrt(defect2)
                kk = min(k, theta.shape[0])
                worst = float(np.max(res[:kk] / np.maximum(np.abs(theta[:kk]), 1e-300)))
                near = nv >= k and worst <= 1e3 * tol
                if nv >= k and worst <= tol:
                    converged = True
                    clock["ritz_s"] += time.perf_counter() - t3
                    break
            clock["ritz_s"] += time.perf_counter() - t3
            if nv == n or (full and restarts >= max_restarts):
                break
            if full:
                # Thick restart: keep the top `keep` Ritz vectors.
                t4 = time.perf_counter()
                p = min(keep, nv - b)
                _rotate_rows(basis, nv, y[:, :p])
                clock["restart_s"] += time.perf_counter() - t4
                coupling = r_j @ y[blk, :p]  # (b, p): Q_next K U^T
                h_mat[:] = 0.0
                h_mat[:p, :p] = np.diag(theta[:p])
                nv, restarts = p, restarts + 1
                src = slice(0, p)
            else:
                coupling, src = r_j, blk
            nxt = slice(nv, nv + b)
            basis[nxt] = q_next
            h_mat[nxt, src] = coupling
            h_mat[src, nxt] = coupling.T
            cur, nv = nv, nv + b
        kk = min(k, theta.shape[0])
        if not converged:
            rel = float(np.max(res[:kk] / np.maximum(np.abs(theta[:kk]), 1e-300)))
            warnings.warn(
                f"restarted_lanczos did not converge: {restarts} restarts "
                f"(max_restarts {max_restarts}), basis {m} rows, {matvecs} matvecs, "
                f"largest relative residual {rel:.2e} > tol {tol:.1e}; raise "
                f"max_restarts or krylov_dim",
                ConvergenceWarning,
                stacklevel=2,
            )
        evecs = (basis[:nv].T @ y[:, :kk]) if vectors else None
    return LanczosResult(
        eigenvalues=theta[:kk].copy(),
        eigenvectors=evecs,
        residuals=res[:kk],
        converged=converged,
        krylov_dim=m,
        matvecs=matvecs,
        restarts=restarts,
        stats={"seconds": time.perf_counter() - t0, **clock, "second_passes": second},
    )


# --------------------------------------------------------------------------------------
# Krylov matrix function times vectors.
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("steps",))
def _lanczos_tridiag(operator, V, steps):
    """M = ``steps`` Lanczos steps per column of V (N, c), full reorthogonalisation.

    Returns (Q (c, m, N), alpha (c, m), beta (c, m - 1), norms (c,)). A column whose
    Krylov space is invariant (beta ~ 0) continues with zero vectors: T decouples and
    the extra block does not touch :math:`f(T) e_1`.
    """
    n, c = V.shape
    norms = jnp.sqrt(jnp.sum(V * V, axis=0))
    q0 = (V / jnp.where(norms > 0, norms, 1.0)[None, :]).T  # (c, N)
    Q = jnp.zeros((c, steps, n), V.dtype).at[:, 0].set(q0)
    alpha = jnp.zeros((c, steps), V.dtype)
    beta = jnp.zeros((c, steps), V.dtype)
    scale = jnp.zeros((c,), V.dtype)

    def body(j, state):
        Q, alpha, beta, scale = state
        q = Q[:, j]  # (c, N)
        w = operator.matvec(q.T).T
        a = jnp.sum(w * q, axis=1)
        # Full reorthogonalisation, twice (rows of Q past j are still zero).
        for _ in range(2):
            w = w - jnp.einsum("cm,cmn->cn", jnp.einsum("cmn,cn->cm", Q, w), Q)
        bnorm = jnp.sqrt(jnp.sum(w * w, axis=1))
        scale = jnp.maximum(scale, jnp.abs(a))
        ok = bnorm > 1e-13 * jnp.maximum(scale, jnp.finfo(V.dtype).tiny)
        q_next = jnp.where(ok[:, None], w / jnp.where(ok, bnorm, 1.0)[:, None], 0.0)
        nxt = jnp.minimum(j + 1, steps - 1)
        keep = j + 1 < steps
        Q = Q.at[:, nxt].set(jnp.where(keep, q_next, Q[:, nxt]))
        alpha = alpha.at[:, j].set(a)
        beta = beta.at[:, j].set(jnp.where(ok, bnorm, 0.0))
        return Q, alpha, beta, scale

    Q, alpha, beta, _ = jax.lax.fori_loop(0, steps, body, (Q, alpha, beta, scale))
    return Q, alpha, beta[:, : steps - 1], norms


def _f_tridiag_e1(f, alpha, beta):
    r""":math:`f(T) e_1` for each column's tridiagonal T (eigh of a (c, m, m) stack)."""
    m = alpha.shape[1]
    T = (
        jax.vmap(jnp.diag)(alpha)
        + jax.vmap(lambda b: jnp.diag(b, 1))(beta)
        + jax.vmap(lambda b: jnp.diag(b, -1))(beta)
    )
    theta, S = jnp.linalg.eigh(T)
    del m
    return jnp.einsum("cij,cj,cj->ci", S, f(theta), S[:, 0, :])


def lanczos_matfun(
    operator,
    f: Callable,
    V,
    *,
    krylov_dim: int = 64,
    rtol: float = 1e-10,
) -> Solution:
    r"""Krylov approximation of :math:`f(A) V` for symmetric :math:`A`, per column.

    With :math:`m` = ``krylov_dim`` Lanczos steps from :math:`q_1 = v/\|v\|`,
    :math:`A Q_m = Q_m T_m + \beta_m q_{m+1} e_m^\top`, and

    .. math::

        f(A) v \approx \|v\|\, Q_m f(T_m) e_1,

    exact when :math:`f` is a polynomial of degree < m or the Krylov space is invariant
    (Saad 1992). The a-posteriori error estimate is the change from :math:`m - 1`
    steps, :math:`\|v\|\,\|f(T_m)e_1 - [f(T_{m-1})e_1; 0]\|` relative to the result's
    norm (worst column). :math:`f` is applied to eigenvalues of :math:`T_m` only, so
    e.g. :math:`\varphi_t(\lambda) = (1 - e^{-\eta\lambda t/N})/\lambda` must be
    written to be finite at :math:`\lambda \to 0`.

    Args:
        operator: symmetric, with ``shape`` and ``matvec``.
        f: elementwise function on a JAX array of eigenvalues, returning the same shape.
        V: vectors, shape (N,) or (N, c); all columns run at once.
        krylov_dim: m, the Lanczos steps (2 <= m, at most N).
        rtol: tolerance on the error estimate for ``converged``.

    Returns:
        A :class:`Solution`: ``value`` of V's shape, ``iterations`` = m, ``residual``
        the relative error estimate.
    """
    n = _check_operator(operator)
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    m = check_positive_int(krylov_dim, "krylov_dim", minimum=2)
    m = min(m, n)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        W, squeeze = _columns(V, n, dtype, "V")
        Q, alpha, beta, norms = _lanczos_tridiag(operator, W, max(m, 2))
        y = _f_tridiag_e1(f, alpha, beta)  # (c, m)
        out = jnp.einsum("cm,cmn->nc", y * norms[:, None], Q)
        if m > 1:
            y_prev = _f_tridiag_e1(f, alpha[:, :-1], beta[:, :-1])
            diff = jnp.sqrt(jnp.sum((y[:, :-1] - y_prev) ** 2, axis=1) + y[:, -1] ** 2)
            ynorm = jnp.sqrt(jnp.sum(y * y, axis=1))
            est = jnp.max(diff / jnp.where(ynorm > 0, ynorm, 1.0))
        else:
            est = jnp.asarray(0.0, dtype)
        value = out[:, 0] if squeeze else out
        return Solution(value, jnp.asarray(m), est, est <= rtol)


@jax.jit
def _columns_matvec(operator, rows):
    """The operator applied to all columns at once: rows (c, N) -> (c, N)."""
    return operator.matvec(rows.T).T


def _tridiag_e1(fs, alpha, beta):
    r""":math:`f(T) e_1` for each f in ``fs``, one ``eigh`` of the tridiagonal T."""
    theta, s = scipy.linalg.eigh_tridiagonal(alpha, beta, check_finite=False)
    w = s[0, :]
    return [s @ (np.asarray(f(theta), dtype=np.float64) * w) for f in fs]


def lanczos_matfuns(
    operator,
    fs,
    V,
    *,
    rtol: float = 1e-10,
    max_dim: int = 1000,
    check_every: int = 8,
    reorthogonalize: bool = True,
) -> list[Solution]:
    r"""Several :math:`f_i(A) V` from one Lanczos run per column, stopped adaptively.

    The Krylov basis :math:`Q_m` and tridiagonal :math:`T_m` of each column
    :math:`v` (one Lanczos run, full reorthogonalisation, all columns sharing each
    matvec) serve every function:

    .. math::

        f_i(A) v \approx \|v\|\, Q_m f_i(T_m) e_1 \qquad (i = 1, \dots, F).

    Every ``check_every`` steps the a-posteriori estimate of each function and column,

    .. math::

        \epsilon_i = \frac{\|f_i(T_m) e_1 - [f_i(T_{m'}) e_1; 0]\|}{\|f_i(T_m) e_1\|},
        \qquad m' = m - \texttt{check\_every}
        \;(m - 1 \text{ at the first check}),

    is computed (the change since the previous check, which bounds the error of the
    older iterate and, under the superlinear convergence of entire functions, that of
    the current one); the run stops when every :math:`\epsilon_i \le` ``rtol``, when the
    Krylov space is invariant (then the result is exact), or at ``max_dim``. For an
    entire :math:`f` the error after m steps is bounded by the best uniform polynomial
    approximation of degree m - 1 on the spectrum (Saad 1992; Druskin & Knizhnerman
    1989), so the steps needed grow with the spread of :math:`f` over the spectrum:
    :math:`e^{-s\lambda}` needs :math:`O(\sqrt{s\lambda_{\max}})` steps (Hochbruck &
    Lubich 1997).

    Unlike :func:`lanczos_matfun` (a fixed m, jitted), the loop runs in NumPy around a
    jitted matvec, so the basis grows only as far as needed; it takes
    ``m * c * N * 8`` bytes (a Krylov workspace, not a dense kernel matrix).

    Args:
        operator: symmetric, with ``shape`` and ``matvec`` over (N, c).
        fs: a sequence of functions, each elementwise on a NumPy array of Ritz
            values (finite at 0: write :math:`(1 - e^{-s\lambda})/\lambda` with its
            limit s).
        V: vectors, shape (N,) or (N, c).
        rtol: tolerance on every estimate (> 0).
        max_dim: largest Krylov dimension per column (>= 2, at most N).
        check_every: steps between estimates (>= 1).
        reorthogonalize: full reorthogonalisation (two classical Gram-Schmidt passes
            per step, O(m c N) each, which dominates past m ~ 50 at image size);
            False runs the plain three-term recurrence, O(c N) per step. Without it
            the basis loses orthogonality as Ritz values converge, which delays but
            does not spoil :math:`f(A)v` (its error stays bounded by the best
            polynomial approximation on a slightly wider interval: Druskin &
            Knizhnerman 1991; Musco, Musco & Sidford 2018), and the estimate still
            tracks it.

    Returns:
        One :class:`Solution` per function, ``value`` of V's shape; ``iterations`` the
        Krylov dimension reached, ``residual`` the worst column's estimate,
        ``converged`` whether it met ``rtol``. Non-convergence is reported there, not
        warned: the caller decides.

    References:
        Saad, "Analysis of some Krylov subspace approximations to the matrix
        exponential operator", SIAM J. Numer. Anal. 29(1), 1992.
        Hochbruck & Lubich, "On Krylov subspace approximations to the matrix
        exponential operator", SIAM J. Numer. Anal. 34(5), 1997.
        Druskin & Knizhnerman, "Error bounds in the simple Lanczos procedure for
        computing functions of symmetric matrices and eigenvalues", Comput. Math.
        Math. Phys. 31(7), 1991.
        Musco, Musco & Sidford, "Stability of the Lanczos method for matrix function
        approximation", SODA 2018, arXiv:1708.07788.
    """
    n = _check_operator(operator)
    fs = tuple(fs)
    if not fs or not all(callable(f) for f in fs):
        raise TypeError("fs must be a non-empty sequence of callables")
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_dim = min(check_positive_int(max_dim, "max_dim", minimum=2), n)
    check_every = check_positive_int(check_every, "check_every")
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        W, squeeze = _columns(V, n, dtype, "V")
        W = np.asarray(W, dtype=np.float64).T.copy()  # (c, N)
        c = W.shape[0]
        norms = np.linalg.norm(W, axis=1)
        # np.empty reserves address space; pages are touched only as the basis grows.
        Q = np.empty((c, max_dim, n))
        Q[:, 0] = W / np.where(norms > 0, norms, 1.0)[:, None]
        alpha = np.zeros((c, max_dim))
        beta = np.zeros((c, max_dim))
        active = norms > 0
        dims = np.where(active, 0, 1)  # per column: steps done (1 for a zero column)
        scale = np.zeros(c)
        prev = [[None] * c for _ in fs]
        est = np.full((len(fs), c), np.inf)
        est[:, ~active] = 0.0
        ys = [[np.zeros(1) for _ in range(c)] for _ in fs]
        j = 0
        while j < max_dim and np.any(active):
            q = Q[:, j]
            w = np.asarray(_columns_matvec(operator, jnp.asarray(q)))
            a = np.sum(w * q, axis=1)
            if reorthogonalize:
                # Against the basis so far, twice (batched BLAS).
                for _ in range(2):
                    h = np.matmul(Q[:, : j + 1], w[:, :, None])
                    w = w - np.matmul(h.transpose(0, 2, 1), Q[:, : j + 1])[:, 0]
            else:
                # The three-term recurrence, with one local pass against q_j.
                w = w - a[:, None] * q
                if j > 0:
                    w = w - beta[:, j - 1, None] * Q[:, j - 1]
                w = w - np.sum(w * q, axis=1)[:, None] * q
            b = np.linalg.norm(w, axis=1)
            scale = np.maximum(scale, np.abs(a))
            alpha[active, j] = a[active]
            dims[active] = j + 1
            invariant = active & (b <= 1e-13 * np.maximum(scale, 1e-300))
            more = active & ~invariant & (j + 1 < max_dim)
            if j + 1 < max_dim:
                Q[:, j + 1] = np.where(
                    more[:, None], w / np.where(more, b, 1.0)[:, None], 0.0
                )
                beta[more, j] = b[more]
            j += 1
            check = (j % check_every == 0) | invariant | (j == max_dim)
            for col in np.flatnonzero(active & check):
                m = dims[col]
                out = _tridiag_e1(fs, alpha[col, :m], beta[col, : m - 1])
                first = None
                if prev[0][col] is None and m > 1 and not invariant[col]:
                    # no earlier check yet: compare with m - 1 steps
                    first = _tridiag_e1(fs, alpha[col, : m - 1], beta[col, : m - 2])
                for i, y in enumerate(out):
                    ynorm = np.linalg.norm(y)
                    if invariant[col]:
                        e = 0.0
                    elif prev[i][col] is None and first is None:
                        e = np.inf
                    else:
                        older = first[i] if prev[i][col] is None else prev[i][col]
                        old = np.zeros(m)
                        old[: older.size] = older
                        e = np.linalg.norm(y - old) / (ynorm if ynorm > 0 else 1.0)
                    est[i, col], ys[i][col], prev[i][col] = e, y, y
                if invariant[col] or np.all(est[:, col] <= rtol):
                    active[col] = False
            if j == max_dim:
                break
        sols = []
        for i in range(len(fs)):
            out = np.zeros((n, c))
            for col in range(c):
                y = ys[i][col]
                if norms[col] > 0:
                    out[:, col] = norms[col] * (y @ Q[col, : y.size])
            worst = float(np.max(est[i]))
            value = jnp.asarray(out[:, 0] if squeeze else out)
            sols.append(
                Solution(
                    value,
                    jnp.asarray(int(np.max(dims))),
                    jnp.asarray(worst),
                    jnp.asarray(worst <= rtol),
                )
            )
        return sols
