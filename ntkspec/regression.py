r"""Kernel (ridge) regression with the NTK or NNGP of an infinitely wide ReLU MLP.

The predictor is the infinite-width network trained to convergence (NTK) or the GP
posterior mean (NNGP), on mapped inputs :math:`\gamma(x)`:

.. math::

    f(x_*) = K(x_*, X)\,\big(K(X, X) + \delta I\big)^{-1} Y,
    \qquad Y \in \mathbb{R}^{n \times c},

with the absolute ridge :math:`\delta \ge 0` (neural-tangents' relative ``diag_reg``
:math:`r` is :math:`\delta = r\,\mathrm{tr}K/n`). Three solvers, picked automatically:

* ``"cholesky"`` (dense, scattered points): float64 Cholesky of :math:`K + \delta I`
  with LAPACK's condition estimate; an ill-conditioned system warns
  (:class:`IllConditionedWarning`, naming the ridge that would help) and a system that
  is not numerically positive definite is solved by a clipped eigendecomposition (also
  with a warning), never silently returning NaN. The NNGP posterior variance
  :math:`k(x_*, x_*) - k_*^\top (K + \delta I)^{-1} k_*` is available here.
* ``"pcg"`` / ``"fft"`` (structured, train and test on :class:`~ntkspec.Grid` values
  with test shape = r x train shape per axis, so the train points are ``test[::r]``):
  the train Gram is multilevel Toeplitz; it is never formed. Preconditioned conjugate
  gradients on its FFT matvec (circulant embedding, Dietrich & Newsam 1997) with T.
  Chan's optimal circulant preconditioner (T. Chan 1988), all right-hand sides at
  once, jitted; then :math:`K(\text{test}, \text{train})\alpha` is one FFT convolution
  of the zero-upsampled :math:`\alpha` with the fine grid's embedded kernel. For
  periodic mappings (integer frequencies) the train Gram is circulant and the solve is
  exact by FFT (``"fft"``).
* ``"blocked"`` (scattered points too many for a dense Gram): conjugate gradients with
  Jacobi preconditioning on matvecs whose kernel row blocks are recomputed on the fly
  (memory O(block x n), time O(n^2) kernel entries per iteration).

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Dietrich & Newsam, "Fast and exact simulation of stationary Gaussian processes
    through circulant embedding of the covariance matrix", SIAM J. Sci. Comput. 18(4),
    1997.
    T. Chan, "An optimal circulant preconditioner for Toeplitz systems", SIAM J. Sci.
    Stat. Comput. 9(4), 1988.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ._numerics import check_dense_request, dense_cap_bytes, resolve_dtype, x64_scope
from ._validation import as_points, check_positive_int, check_real
from .kernels import ReluMLP, _recursion, nngp, ntk
from .kernels import _block as _kernel_block
from .mappings import FourierMapping, IdentityMapping

__all__ = [
    "RegressionInfo",
    "IllConditionedWarning",
    "ConvergenceWarning",
    "kernel_regression",
    "grid_ratio",
]

_KERNELS = ("ntk", "nngp")
_SOLVERS = ("auto", "cholesky", "pcg", "fft", "blocked")
#: Condition number above which the dense path warns.
_COND_WARN = 1e12


class IllConditionedWarning(RuntimeWarning):
    """The regression system is ill-conditioned or not numerically positive definite."""


class ConvergenceWarning(RuntimeWarning):
    """An iterative solver stopped before reaching its tolerance."""


@dataclasses.dataclass(frozen=True)
class RegressionInfo:
    r"""Diagnostics of one :func:`kernel_regression` call.

    Attributes:
        solver: "cholesky", "eigh" (fallback for a not positive definite system),
            "pcg", "fft" or "blocked".
        iterations: solver iterations (0 for direct solvers).
        residual: final relative residual :math:`\\max_j \\|y_j - (K + \\delta I)
            \\alpha_j\\| / \\|y_j\\|` over output columns, recomputed from the solution.
        converged: whether ``residual <= rtol`` (always True for direct solvers unless
            the system was singular).
        ridge: the absolute ridge used.
        condition: estimated condition number of :math:`K + \\delta I` (dense
            solvers) or None.
        variance: NNGP posterior variance at the test points, shape (n_test,), when
            requested, else None.
    """

    solver: str
    iterations: int
    residual: float
    converged: bool
    ridge: float
    condition: float | None = None
    variance: np.ndarray | None = None


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------


def _grid_cls():
    from .grid import Grid

    return Grid


def _is_grid(x) -> bool:
    try:
        return isinstance(x, _grid_cls())
    except ImportError:  # pragma: no cover - grid module always present in releases
        return False


def _check_arch_mapping(arch, mapping) -> None:
    if not isinstance(arch, ReluMLP):
        raise TypeError(f"arch must be a ntkspec.ReluMLP; got {type(arch).__name__}")
    if not isinstance(mapping, FourierMapping | IdentityMapping):
        raise TypeError(
            "mapping must be a ntkspec FourierMapping or IdentityMapping (e.g. "
            "ntkspec.mappings.gaussian(...) or identity()); got "
            f"{type(mapping).__name__}"
        )


def _mapping_dim(mapping) -> int | None:
    return mapping.dim


def _check_x(x, name: str, mapping):
    """Return (points array (n, d), grid or None)."""
    if _is_grid(x):
        pts = None
        dim = x.dim
        grid = x
    else:
        pts = np.asarray(as_points(x, name), dtype=np.float64)
        dim = pts.shape[1]
        grid = None
    mdim = _mapping_dim(mapping)
    if mdim is not None and dim != mdim:
        raise ValueError(
            f"{name} has dimension {dim} but the mapping takes {mdim}-dimensional "
            "points"
        )
    return pts, grid


def _check_y(y, n: int):
    y = np.asarray(y)
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 1):
        raise ValueError(f"y_train must have shape (n,) or (n, c); got {y.shape}")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"y_train must hold real numbers; got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(
            f"y_train has {y.shape[0]} rows but x_train has {n} points; they must match"
        )
    if not np.all(np.isfinite(y)):
        raise ValueError("y_train must be finite; it contains NaN or inf")
    return y.astype(np.float64)


def _check_kernel(kernel) -> str:
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be 'ntk' or 'nngp'; got {kernel!r}")
    return kernel


def grid_ratio(train_grid, test_grid) -> tuple[int, ...]:
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


# --------------------------------------------------------------------------------------
# Dense kernels
# --------------------------------------------------------------------------------------


def _features(mapping, pts) -> np.ndarray:
    return np.asarray(mapping(pts), dtype=np.float64)


def _gram(arch, f1, f2, kernel, max_bytes):
    fn = ntk if kernel == "ntk" else nngp
    return np.asarray(
        fn(arch, f1, f2, max_bytes=max_bytes, progress=False), dtype=np.float64
    )


def _self_diagonal(arch, feats: np.ndarray, kernel: str) -> np.ndarray:
    """k(x, x) for each row of ``feats`` (exact angle 0)."""
    d = feats.shape[1]
    q = np.sum(feats * feats, axis=1) / d
    with x64_scope(np.float64):
        qj = jnp.asarray(q)
        nngp_, ntk_ = _recursion(arch, qj, qj, jnp.zeros_like(qj), d, kernel == "ntk")
        return np.asarray(ntk_ if kernel == "ntk" else nngp_, dtype=np.float64)


def _suggest_ridge(anorm: float) -> float:
    return 1e-10 * anorm


def _dense_solve(A: np.ndarray, Y: np.ndarray, what: str):
    """Solve A X = Y for symmetric PSD A; returns (X, solver, condition, factor)."""
    n = A.shape[0]
    anorm = float(np.max(np.sum(np.abs(A), axis=0)))
    try:
        c = scipy.linalg.cholesky(A, lower=True, check_finite=False)
        ok = bool(np.all(np.isfinite(c)))
    except np.linalg.LinAlgError:
        ok = False
    if ok:
        rcond, info = scipy.linalg.lapack.dpocon(c, anorm, uplo="L")
        cond = math.inf if rcond <= 0 else 1.0 / float(rcond)
        if cond > _COND_WARN:
            warnings.warn(
                f"{what} is ill-conditioned (condition number ~{cond:.1e} > "
                f"{_COND_WARN:.0e}): the solution may have lost most of its digits. A "
                f"ridge of about {_suggest_ridge(anorm):.1e} (1e-10 of the Gram's "
                f"norm) would bound the condition number near 1e10.",
                IllConditionedWarning,
                stacklevel=4,
            )
        X = scipy.linalg.cho_solve((c, True), Y, check_finite=False)
        return X, "cholesky", cond, ("chol", c)
    # Not numerically positive definite: clipped eigendecomposition (pseudo-inverse).
    evals, evecs = np.linalg.eigh(A)
    top = float(np.max(np.abs(evals))) if n else 0.0
    floor = n * np.finfo(np.float64).eps * top
    keep = evals > floor
    warnings.warn(
        f"{what} is not numerically positive definite (smallest eigenvalue "
        f"{evals[0]:.2e}, largest {top:.2e}); solved by eigendecomposition with the "
        f"{int(np.sum(~keep))} eigenvalues below {floor:.1e} dropped (minimum-norm "
        f"solution). A ridge of about {_suggest_ridge(anorm):.1e} (1e-10 of the Gram's "
        f"norm) or more would make the system well posed.",
        IllConditionedWarning,
        stacklevel=4,
    )
    inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
    X = evecs @ (inv[:, None] * (evecs.T @ Y))
    cond = math.inf
    return X, "eigh", cond, ("eigh", evecs, inv)


def _apply_inverse(factor, B: np.ndarray) -> np.ndarray:
    if factor[0] == "chol":
        return scipy.linalg.solve_triangular(
            factor[1], B, lower=True, check_finite=False
        )
    evecs, inv = factor[1], factor[2]
    return np.sqrt(inv)[:, None] * (evecs.T @ B)


#: Entries per block of test rows when the test-train kernel is applied in blocks.
_PREDICT_BLOCK_ENTRIES = 2**23


def _dense_path(arch, mapping, x_tr, y, x_te, kernel, ridge, max_bytes, variance):
    f_tr = _features(mapping, x_tr)
    f_te = _features(mapping, x_te)
    n, n_test = f_tr.shape[0], f_te.shape[0]
    check_dense_request(
        (n, n),
        8,
        max_bytes,
        what="The dense train Gram",
        alternative="Use solver='blocked' (matrix-free CG) or Grid inputs.",
    )
    K = _gram(arch, f_tr, None, kernel, max_bytes)
    A = K + ridge * np.eye(n)
    alpha, solver, cond, factor = _dense_solve(A, y, "K(X, X) + ridge I")
    res = _relative_residual(A @ alpha, y)
    fac = factor
    if variance and kernel != "nngp":
        G = _gram(arch, f_tr, None, "nngp", max_bytes) + ridge * np.eye(n)
        _, _, _, fac = _dense_solve(G, np.zeros((n, 1)), "NNGP K(X, X) + ridge I")
    # The test-train kernel is applied in blocks of test rows (never all at once).
    rows = max(1, min(n_test, _PREDICT_BLOCK_ENTRIES // max(n, 1)))
    pred = np.empty((n_test, y.shape[1]))
    var = np.empty(n_test) if variance else None
    for s in range(0, n_test, rows):
        e = min(s + rows, n_test)
        Kt = _gram(arch, f_te[s:e], f_tr, kernel, max_bytes)
        pred[s:e] = Kt @ alpha
        if variance:
            Kg = Kt if kernel == "nngp" else _gram(arch, f_te[s:e], f_tr, "nngp", None)
            W = _apply_inverse(fac, Kg.T)
            var[s:e] = _self_diagonal(arch, f_te[s:e], "nngp") - np.sum(W * W, axis=0)
    info = RegressionInfo(solver, 0, res, solver == "cholesky", ridge, cond, var)
    return pred, info


def _relative_residual(Ax: np.ndarray, b: np.ndarray) -> float:
    r = np.linalg.norm(b - Ax, axis=0)
    bn = np.linalg.norm(b, axis=0)
    rel = np.where(bn > 0, r / np.where(bn > 0, bn, 1.0), r)
    return float(np.max(rel))


# --------------------------------------------------------------------------------------
# Blocked (matrix-free) path
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("get", "self_kernel", "fit"))
def _blocked_matvec_jit(arch, xblocks, offsets, x2, V, coefs, get, self_kernel, fit):
    def one(args):
        xb, off = args
        out, _ = _kernel_block(arch, xb, x2, off, get, self_kernel, fit, coefs)
        return out @ V

    out = jax.lax.map(one, (xblocks, offsets))
    return out.reshape(-1, V.shape[1])


class _BlockedKernel:
    """Matrix-free K(rows, cols) @ V: kernel row blocks recomputed on every product.

    Pairs whose first-layer angle is tiny (duplicates, near neighbours) are found once
    and corrected with the exact (cancellation-free) kernel value, as ``ntk`` does.
    """

    def __init__(self, arch, f_rows, f_cols, kernel, block, self_kernel):
        from .kernels import _block_near, _exact_pairs, _profile_fit

        n, d = f_rows.shape
        self.n = n
        self.kernel = kernel
        self.self_kernel = self_kernel
        self.arch = arch
        nb = -(-n // block)
        pad = nb * block - n
        rows = np.concatenate([f_rows, np.repeat(f_rows[-1:], pad, axis=0)])
        q_all = (
            np.concatenate([np.sum(f_rows**2, axis=1), np.sum(f_cols**2, axis=1)]) / d
        )
        equal = q_all[0] > 0 and np.max(np.abs(q_all - q_all[0])) <= 1e-13 * q_all[0]
        fit = _profile_fit(arch, float(q_all[0]), d, kernel) if equal else None
        with x64_scope(np.float64):
            self.coefs = (
                (jnp.asarray(fit.coef_lower), jnp.asarray(fit.coef_upper))
                if fit is not None
                else (jnp.zeros(1), jnp.zeros(1))
            )
            self.fit = fit is not None
            self.xblocks = jnp.asarray(rows.reshape(nb, block, d))
            self.offsets = jnp.arange(nb) * block
            self.x2 = jnp.asarray(f_cols)
            # near pairs, found once
            corr_r, corr_c, corr_v = [], [], []
            x1j = jnp.asarray(f_rows)
            for b in range(nb):
                near = np.asarray(
                    _block_near(self.xblocks[b], self.x2, b * block, self_kernel)
                )
                r, c = np.nonzero(near)
                r = r + b * block
                keep = r < n
                r, c = r[keep], c[keep]
                if r.size:
                    exact = np.asarray(_exact_pairs(arch, x1j, self.x2, r, c, kernel))
                    approx = np.asarray(
                        _kernel_block(
                            arch,
                            self.xblocks[b],
                            self.x2,
                            b * block,
                            kernel,
                            self_kernel,
                            self.fit,
                            self.coefs,
                        )[0]
                    )[r - b * block, c]
                    corr_r.append(r)
                    corr_c.append(c)
                    corr_v.append(exact - approx)
        self.corr = (
            (np.concatenate(corr_r), np.concatenate(corr_c), np.concatenate(corr_v))
            if corr_r
            else None
        )

    def __call__(self, V: np.ndarray) -> np.ndarray:
        with x64_scope(np.float64):
            out = _blocked_matvec_jit(
                self.arch,
                self.xblocks,
                self.offsets,
                self.x2,
                jnp.asarray(V),
                self.coefs,
                self.kernel,
                self.self_kernel,
                self.fit,
            )
            out = np.array(out[: self.n])
        if self.corr is not None:
            r, c, v = self.corr
            np.add.at(out, r, v[:, None] * V[c])
        return out


def _blocked_path(arch, mapping, x_tr, y, x_te, kernel, ridge, rtol, max_iter, block):
    f_tr = _features(mapping, x_tr)
    f_te = _features(mapping, x_te)
    n = f_tr.shape[0]
    block = block or max(1, min(n, 2**20 // n))
    diag = _self_diagonal(arch, f_tr, kernel) + ridge
    inv_diag = 1.0 / np.where(diag > 0, diag, 1.0)
    k_train = _BlockedKernel(arch, f_tr, f_tr, kernel, block, True)
    matvec = lambda V: k_train(V) + ridge * V
    alpha, its, res = _cg_numpy(
        matvec, y, lambda R: inv_diag[:, None] * R, rtol, max_iter
    )
    pred = _BlockedKernel(arch, f_te, f_tr, kernel, block, False)(alpha)
    return pred, alpha, its, res


def _cg_numpy(matvec, B, precond, rtol, max_iter):
    """Preconditioned CG on all columns of B at once (NumPy; the blocked path)."""
    X = np.zeros_like(B)
    R = B.copy()
    Z = precond(R)
    P = Z.copy()
    rz = np.sum(R * Z, axis=0)
    bnorm = np.linalg.norm(B, axis=0)
    bnorm = np.where(bnorm > 0, bnorm, 1.0)
    its = 0
    while its < max_iter:
        its += 1
        AP = matvec(P)
        pap = np.sum(P * AP, axis=0)
        active = np.linalg.norm(R, axis=0) > rtol * bnorm
        a = np.where(active & (pap > 0), rz / np.where(pap > 0, pap, 1.0), 0.0)
        X += a * P
        R -= a * AP
        if np.all(np.linalg.norm(R, axis=0) <= rtol * bnorm):
            break
        Z = precond(R)
        rz_new = np.sum(R * Z, axis=0)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        P = Z + beta * P
        rz = rz_new
    res = _relative_residual(matvec(X), B)
    return X, its, res


# --------------------------------------------------------------------------------------
# Structured (grid) path
# --------------------------------------------------------------------------------------


def _offsets(arch, mapping, grid, kernel, embed):
    from .operators import kernel_on_offsets

    with x64_scope(np.float64):
        return np.asarray(
            kernel_on_offsets(arch, mapping, grid, kernel=kernel, embed=embed),
            dtype=np.float64,
        )


def _upsample_rows(rows, shape, fine_shape, ratio):
    """Zero-upsample (c, N_train) rows onto the fine grid: (c, N_fine)."""
    c = rows.shape[0]
    up = jnp.zeros((c,) + fine_shape, rows.dtype)
    sl = (slice(None),) + tuple(slice(None, None, r) for r in ratio)
    up = up.at[sl].set(rows.reshape((c,) + shape))
    return up.reshape(c, -1)


def _toeplitz_rows(symbol, rows, shape):
    """Multilevel Toeplitz matvec of each row of ``rows`` (c, N), by the operators."""
    from .operators import toeplitz_matvec

    return toeplitz_matvec(symbol, rows.T, shape).T


def _circulant_rows(symbol, rows, shape):
    """Multilevel circulant matvec of each row of ``rows`` (c, N), by the operators."""
    from .operators import circulant_matvec

    return circulant_matvec(symbol, rows.T, shape).T


def _t_chan_eigenvalues(embed_column: np.ndarray, grid) -> np.ndarray:
    """Eigenvalues (FFT order, ``grid.shape``) of T. Chan's optimal circulant."""
    from .operators import GridKernelOperator

    with x64_scope(np.float64):
        column = jnp.asarray(embed_column)
        op = GridKernelOperator(column, jnp.fft.rfftn(column).real, grid, False)
        return np.asarray(op.t_chan_preconditioner(), dtype=np.float64)


@functools.partial(jax.jit, static_argnames=("shape", "max_iter"))
def _pcg_jit(b, x0, symbol, precond_hat, ridge, rtol, shape, max_iter):
    """Jitted PCG for (T + ridge I) x = b on rows b of shape (c, N), all at once.

    Hand-written rather than ``jax.scipy.sparse.linalg.cg``: that returns neither the
    iteration count nor the residual, and the contract here is to report both (and to
    stop each right-hand side at its own relative residual). Returns
    ``(x, iterations, max relative residual recomputed from x)``.
    """
    d = len(shape)
    axes = tuple(range(1, d + 1))

    def matvec(v):
        return _toeplitz_rows(symbol, v, shape) + ridge * v

    def precond(r):
        rg = r.reshape((r.shape[0],) + shape)
        rh = jnp.fft.rfftn(rg, axes=axes) * precond_hat[None]
        return jnp.fft.irfftn(rh, s=shape, axes=axes).reshape(r.shape)

    def rowdot(a, b):
        return jnp.sum(a * b, axis=1)

    bnorm = jnp.sqrt(rowdot(b, b))
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    r = b - matvec(x0)
    z = precond(r)
    rz = rowdot(r, z)
    rnorm = jnp.sqrt(rowdot(r, r))

    def cond(state):
        k, _, _, _, _, rnorm = state
        return (k < max_iter) & jnp.any(rnorm > rtol * bnorm)

    def body(state):
        k, x, r, p, rz, rnorm = state
        ap = matvec(p)
        pap = rowdot(p, ap)
        active = (rnorm > rtol * bnorm) & (pap > 0)
        alpha = jnp.where(active, rz / jnp.where(active, pap, 1.0), 0.0)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        z = precond(r)
        rz_new = rowdot(r, z)
        beta = jnp.where(active & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[:, None] * p
        return k + 1, x, r, p, rz_new, jnp.sqrt(rowdot(r, r))

    k, x, _, _, _, _ = jax.lax.while_loop(
        cond, body, (jnp.asarray(0), x0, r, z, rz, rnorm)
    )
    true_r = b - matvec(x)
    return x, k, jnp.max(jnp.sqrt(rowdot(true_r, true_r)) / bnorm)


@functools.partial(jax.jit, static_argnames=("shape", "fine_shape", "ratio"))
def _toeplitz_predict(alpha_rows, fine_symbol, shape, fine_shape, ratio):
    """K(fine, train) alpha: zero-upsample onto the fine grid, Toeplitz-convolve."""
    up = _upsample_rows(alpha_rows, shape, fine_shape, ratio)
    return _toeplitz_rows(fine_symbol, up, fine_shape)


@functools.partial(jax.jit, static_argnames=("shape", "fine_shape", "ratio"))
def _fft_periodic(y_rows, lam, fine_symbol, ridge, shape, fine_shape, ratio):
    """Exact KRR for a periodic kernel on a sub-grid: (alpha rows, fine prediction)."""
    axes = tuple(range(1, len(shape) + 1))
    yg = y_rows.reshape((y_rows.shape[0],) + shape)
    yh = jnp.fft.rfftn(yg, axes=axes)
    lam_half = lam[..., : shape[-1] // 2 + 1]
    alpha = jnp.fft.irfftn(yh / (lam_half + ridge)[None], s=shape, axes=axes)
    alpha = alpha.reshape(y_rows.shape)
    up = _upsample_rows(alpha, shape, fine_shape, ratio)
    return alpha, _circulant_rows(fine_symbol, up, fine_shape)


def _structured_path(
    arch, mapping, g_tr, y, g_te, kernel, ridge, rtol, max_iter, solver
):
    ratio = grid_ratio(g_tr, g_te)
    sub = tuple(slice(None, None, r) for r in ratio)
    shape, fine_shape = g_tr.shape, g_te.shape
    periodic = bool(getattr(mapping, "is_periodic", False))
    if solver == "fft" and not periodic:
        raise ValueError(
            "solver='fft' needs a periodic mapping (integer frequencies B); this "
            "mapping gives a Toeplitz (not circulant) Gram: use solver='pcg' or 'auto'"
        )
    with x64_scope(np.float64):
        y_rows = jnp.asarray(y.T)  # (c, N) batch-first
        if periodic and solver in ("auto", "fft"):
            # One kernel evaluation serves both grids: train offsets are every r-th.
            fine_col = _offsets(arch, mapping, g_te, kernel, embed=False)
            train_col = fine_col[sub]
            lam = np.real(np.fft.fftn(train_col))
            if np.min(lam) + ridge <= 1e-14 * np.max(lam):
                warnings.warn(
                    f"the circulant train Gram is numerically singular (smallest "
                    f"eigenvalue {np.min(lam):.2e}, largest {np.max(lam):.2e}); a "
                    f"ridge of about {1e-10 * np.max(lam):.1e} would make it well "
                    "posed",
                    IllConditionedWarning,
                    stacklevel=3,
                )
            fine_symbol = jnp.fft.rfftn(jnp.asarray(fine_col)).real
            train_symbol = jnp.fft.rfftn(jnp.asarray(train_col)).real
            alpha, pred = _fft_periodic(
                y_rows, jnp.asarray(lam), fine_symbol, ridge, shape, fine_shape, ratio
            )
            fitted = _circulant_rows(train_symbol, alpha, shape) + ridge * alpha
            res = _relative_residual(np.asarray(fitted).T, y)
            return np.asarray(pred).T, RegressionInfo("fft", 0, res, True, ridge)
        # Embedded Toeplitz columns: the train grid's is the fine one's [::r] (offset
        # o/n_i = r_i o/(r_i n_i), with the same 0 at o = n_i), so one evaluation.
        fine_col = _offsets(arch, mapping, g_te, kernel, embed=True)
        train_col = fine_col[sub]
        fine_symbol = jnp.fft.rfftn(jnp.asarray(fine_col)).real
        train_symbol = jnp.fft.rfftn(jnp.asarray(train_col)).real
        chan = _t_chan_eigenvalues(train_col, g_tr) + ridge
        chan = np.maximum(chan, 1e-12 * float(np.max(np.abs(chan))))
        precond_hat = jnp.asarray(1.0 / chan[..., : shape[-1] // 2 + 1])
        x = jnp.zeros_like(y_rows)
        total, res = 0, math.inf
        for _ in range(3):  # restarts refresh the recursive residual if it drifted
            x, its, res = _pcg_jit(
                y_rows,
                x,
                train_symbol,
                precond_hat,
                ridge,
                rtol,
                shape,
                max_iter - total,
            )
            total += int(its)
            res = float(res)
            if res <= rtol or total >= max_iter:
                break
        converged = res <= rtol
        if not converged:
            warnings.warn(
                f"PCG did not reach the relative residual rtol={rtol:.1e} in {total} "
                f"iterations (reached {res:.2e}); the prediction is inaccurate. Raise "
                f"max_iter, loosen rtol or add a ridge.",
                ConvergenceWarning,
                stacklevel=3,
            )
        pred = _toeplitz_predict(x, fine_symbol, shape, fine_shape, ratio)
        info = RegressionInfo("pcg", total, res, converged, ridge)
        return np.asarray(pred).T, info


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def _points_of(x_pts, x_grid):
    return x_grid.points() if x_grid is not None else x_pts


def kernel_regression(
    arch: ReluMLP,
    mapping,
    x_train,
    y_train,
    x_test,
    kernel: str = "ntk",
    ridge: float = 0.0,
    *,
    solver: str = "auto",
    rtol: float = 1e-10,
    max_iter: int = 2000,
    return_info: bool = False,
    return_variance: bool = False,
    max_bytes: float | None = None,
    block_rows: int | None = None,
    dtype=np.float64,
):
    r"""Kernel ridge regression with the NTK (or NNGP) of the infinitely wide ``arch``.

    .. math::

        f(x_*) = k(\gamma(x_*), \gamma(X))\,
            \big(k(\gamma(X), \gamma(X)) + \delta I\big)^{-1} Y .

    With ``kernel="ntk"`` and ``ridge=0`` this is the mean output of the infinitely wide
    network trained to convergence by gradient descent on the squared error from a
    zero-mean initialisation (Jacot et al. 2018; Lee et al. 2019); with ``"nngp"`` it is
    the GP posterior mean with noise variance ``ridge``.

    Args:
        arch: the architecture (:class:`~ntkspec.ReluMLP`).
        mapping: the input mapping (a Fourier mapping, or ``mappings.identity()`` for
            raw coordinates); applied inside, to the raw coordinates.
        x_train: raw training coordinates, shape (n, d), or a :class:`~ntkspec.Grid`.
        y_train: targets, shape (n,) or (n, c) (C-order over a Grid's points).
        x_test: raw test coordinates, shape (n_test, d), or a Grid. When both are Grids
            the structured path is used; then ``x_test.shape`` must be r_i times
            ``x_train.shape`` on each axis (positive integers r_i), so that the train
            points are ``test[::r_1, ..., ::r_d]``.
        kernel: "ntk" or "nngp".
        ridge: absolute ridge :math:`\delta \ge 0` added to the train Gram's diagonal
            (neural-tangents' ``diag_reg=r`` is ``ridge = r * trace(K) / n``).
        solver: "auto" (Grids: "fft" for periodic mappings, else "pcg"; points:
            "cholesky" when the dense train Gram fits under the memory cap, else
            "blocked"), or one of "cholesky", "pcg", "fft", "blocked". The dense path
            applies the test-train kernel in blocks of test rows.
        rtol: relative residual at which the iterative solvers stop (default 1e-10).
        max_iter: iteration cap of the iterative solvers.
        return_info: also return a :class:`RegressionInfo`.
        return_variance: compute the NNGP posterior variance
            :math:`k(x_*, x_*) - k_*^\top(K + \delta I)^{-1}k_*` (NNGP kernel, dense
            path only) into ``info.variance``; implies ``return_info``.
        max_bytes: memory cap for one dense array (default 4 GiB or the
            ``NTKSPEC_MAX_DENSE_BYTES`` environment variable).
        block_rows: rows per kernel block on the blocked path.
        dtype: only float64 is supported (the solve needs it; float32 raises).

    Returns:
        The prediction as a float64 NumPy array of shape (n_test, c), or (n_test,) for
        a 1-D ``y_train``; with ``return_info`` the pair ``(prediction, info)``.

    Raises:
        TypeError: wrong argument types.
        ValueError: mismatched shapes, non-finite y, negative ridge, incompatible grids,
            a dense request over the memory cap, or an impossible solver choice.

    Warns:
        IllConditionedWarning: the dense system is ill-conditioned or singular.
        ConvergenceWarning: the iterative solver missed ``rtol``.

    Example:
        >>> import numpy as np, ntkspec
        >>> x = np.linspace(0, 1, 8, endpoint=False)[:, None]
        >>> y = np.sin(2 * np.pi * x[:, 0])
        >>> pred = ntkspec.kernel_regression(
        ...     ntkspec.ReluMLP(3), ntkspec.mappings.basic(1), x, y, x)
        >>> bool(np.allclose(pred, y, atol=1e-8))
        True
    """
    _check_arch_mapping(arch, mapping)
    kernel = _check_kernel(kernel)
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {solver!r}")
    check_real(ridge, "ridge", low=0.0)
    ridge = float(ridge)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_iter = check_positive_int(max_iter, "max_iter")
    if block_rows is not None:
        block_rows = check_positive_int(block_rows, "block_rows")
    if resolve_dtype(dtype) != np.float64:
        raise ValueError("kernel_regression supports dtype=float64 only")
    tr_pts, tr_grid = _check_x(x_train, "x_train", mapping)
    te_pts, te_grid = _check_x(x_test, "x_test", mapping)
    n = tr_grid.size if tr_grid is not None else tr_pts.shape[0]
    y = _check_y(y_train, n)
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y

    structured_ok = (
        tr_grid is not None and te_grid is not None and bool(mapping.is_stationary)
    )
    if tr_grid is not None and te_grid is not None:
        grid_ratio(
            tr_grid, te_grid
        )  # validate compatibility early, whatever the solver
    if solver == "auto":
        if structured_ok:
            solver = "structured"
        else:
            fits = 8.0 * n * n <= dense_cap_bytes(max_bytes)
            solver = "cholesky" if fits else "blocked"
    elif solver in ("pcg", "fft"):
        if not structured_ok:
            raise ValueError(
                f"solver={solver!r} needs x_train and x_test as ntkspec.Grid values "
                "and a "
                "Fourier (stationary) mapping; raw coordinates give a non-stationary "
                "kernel: use solver='cholesky' or 'blocked'"
            )
    if return_variance and solver not in ("cholesky",):
        raise ValueError(
            "return_variance needs the dense path (solver='cholesky', or 'auto' with "
            "point arrays that fit under the memory cap)"
        )

    if solver in ("structured", "pcg", "fft"):
        pred, info = _structured_path(
            arch,
            mapping,
            tr_grid,
            Y,
            te_grid,
            kernel,
            ridge,
            rtol,
            max_iter,
            "auto" if solver == "structured" else solver,
        )
    elif solver == "cholesky":
        pred, info = _dense_path(
            arch,
            mapping,
            _points_of(tr_pts, tr_grid),
            Y,
            _points_of(te_pts, te_grid),
            kernel,
            ridge,
            max_bytes,
            return_variance,
        )
    else:
        pred, _, its, res = _blocked_path(
            arch,
            mapping,
            _points_of(tr_pts, tr_grid),
            Y,
            _points_of(te_pts, te_grid),
            kernel,
            ridge,
            rtol,
            max_iter,
            block_rows,
        )
        info = RegressionInfo("blocked", its, res, res <= rtol, ridge)
        if not info.converged:
            warnings.warn(
                f"blocked CG did not reach rtol={rtol:.1e} in {its} iterations "
                f"(reached {res:.2e}); raise max_iter, loosen rtol or add a ridge",
                ConvergenceWarning,
                stacklevel=2,
            )
    pred = np.asarray(pred, dtype=np.float64)
    if squeeze:
        pred = pred[:, 0]
    if return_info or return_variance:
        return pred, info
    return pred
