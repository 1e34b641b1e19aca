r"""Dense float64 solves: the Cholesky solve with a condition check, blocked Cholesky.

* :func:`psd_solve`: :math:`A X = Y` for symmetric PSD :math:`A` by Cholesky with
  LAPACK's condition estimate, and a clipped-eigendecomposition (minimum-norm)
  fallback; :class:`Cholesky` names it as a solver value, :class:`Eigh` the solve
  through an operator's exact eigendecomposition.
* :func:`eigh_mrrr`: all eigenpairs of a dense symmetric matrix by LAPACK's MRRR
  driver (``syevr``), whose tridiagonal eigenvector stage is :math:`O(n^2)`.
* :func:`cholesky_lower`: a right-looking blocked Cholesky that hands LAPACK's
  ``potrf`` diagonal blocks of at most ``block`` rows and does the updates with
  triangular solves and matrix products (the same flops as one ``potrf``). Threaded
  OpenBLAS ``potrf`` has crashed on large matrices (OpenBLAS issue #2562), so no
  single LAPACK call sees more than one block.

References:
    Golub & Van Loan, "Matrix Computations", 4th ed., Johns Hopkins 2013 (§4.2,
    the Cholesky factorisation and its blocked form).
    Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002
    (§15, condition estimation).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .._linalg import scipy  # scipy.linalg imported on first use
from .._numerics import ridge_advice

__all__ = [
    "IllConditionedWarning",
    "Cholesky",
    "Eigh",
    "PSDSolve",
    "psd_solve",
    "cholesky_lower",
    "eigh_mrrr",
]

#: Condition number above which :func:`psd_solve` warns.
COND_WARN = 1e12


class IllConditionedWarning(RuntimeWarning):
    """The regression system is ill-conditioned or not numerically positive definite."""


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


def eigh_mrrr(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""All eigenpairs of a symmetric float64 matrix, eigenvalues ascending.

    LAPACK's MRRR driver ``syevr`` (Dhillon & Parlett 2004; ``scipy.linalg.eigh``'s
    default): after the Householder reduction to tridiagonal form, the eigenvectors of
    the tridiagonal matrix take :math:`O(n^2)` work. Divide and conquer (``syevd``,
    ``numpy.linalg.eigh``) does :math:`O(n^3)` work in that stage when little
    deflates. Both are backward stable, so
    any function :math:`V f(\Lambda) V^\top` of the result agrees to rounding (the
    eigenvectors of close eigenvalues, and their signs, may differ). Only the lower
    triangle of ``A`` is read.
    """
    return scipy.linalg.eigh(
        np.asarray(A, dtype=np.float64), lower=True, driver="evr", check_finite=False
    )


# The OpenBLAS bundled with NumPy 2.4 / SciPy 1.17 wheels segfaulted in its threaded
# Cholesky (dpotrf_L_parallel -> dsyrk_thread) at n = 16384 with two threads, inside
# the 4 GiB dense cap, while n = 12000 passed (cf. OpenBLAS issue #2562).
#: Largest diagonal block passed to LAPACK's potrf.
POTRF_BLOCK = 4096


def cholesky_lower(a: np.ndarray, *, block: int = POTRF_BLOCK) -> np.ndarray:
    """Lower Cholesky factor ``L`` of a symmetric positive definite ``a``: L L^T = a.

    Only the lower triangle of ``a`` is read.

    ``numpy.linalg.LinAlgError`` is raised when ``a`` is not numerically positive
    definite.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    if n <= block:
        return scipy.linalg.cholesky(a, lower=True, check_finite=False)
    low = np.tril(a)
    for start in range(0, n, block):
        stop = min(start + block, n)
        low[start:stop, start:stop] = scipy.linalg.cholesky(
            low[start:stop, start:stop], lower=True, check_finite=False
        )
        if stop == n:
            break
        # panel L21 = A21 L11^{-T}, then the trailing update A22 -= L21 L21^T one block
        # column at a time (lower part only; no (n x n) temporary).
        panel = scipy.linalg.solve_triangular(
            low[start:stop, start:stop],
            low[stop:, start:stop].T,
            lower=True,
            check_finite=False,
        ).T
        low[stop:, start:stop] = panel
        for col in range(stop, n, block):
            end = min(col + block, n)
            low[col:, col:end] -= panel[col - stop :] @ panel[col - stop : end - stop].T
    return np.tril(low)
