r"""Kernel (ridge) regression with the NTK or NNGP of an infinitely wide ReLU MLP.

The predictor is the infinite-width network trained to convergence (NTK) or the GP
posterior mean (NNGP), on mapped inputs :math:`\gamma(x)`:

.. math::

    f(x_*) = K(x_*, X)\,\big(K(X, X) + \delta I\big)^{-1} Y,
    \qquad Y \in \mathbb{R}^{n \times c},

with the absolute ridge :math:`\delta \ge 0` (neural-tangents' relative ``diag_reg``
:math:`r` is :math:`\delta = r\,\mathrm{tr}K/n`). Solvers are values
(:class:`~ntkspec.solvers.Cholesky`, :class:`~ntkspec.solvers.CG`,
:class:`~ntkspec.solvers.Eigh`; the strings below are their aliases); "auto" picks one
from the Gram's structure tag (:func:`ntkspec.operators.structure`):

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
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._numerics import (
    check_dense_request,
    dense_cap_bytes,
    resolve_dtype,
    ridge_advice,
    x64_scope,
)
from ._validation import (
    check_inputs,
    check_kernel,
    check_positive_int,
    check_real,
    check_targets,
)
from .kernels import ReluMLP, check_arch
from .linalg.cg import CG, cg
from .linalg.dense import Cholesky, Eigh, IllConditionedWarning, psd_solve
from .linalg.precond import (
    CirculantPreconditioner,
    JacobiPreconditioner,
    t_chan_preconditioner,
)
from .linalg.solution import ConvergenceWarning
from .mappings import check_mapping
from .operators import (
    Shifted,
    blocked_gram,
    dense_gram,
    gram_diagonal,
    grid_ratio,
    kernel_operator,
    structure,
)
from .sharding import check_mesh, device_block, device_count, shard_operator

__all__ = [
    "RegressionInfo",
    "IllConditionedWarning",
    "ConvergenceWarning",
    "kernel_regression",
    "grid_ratio",
]

_SOLVERS = ("auto", "cholesky", "pcg", "fft", "blocked")
#: Entries per block of test rows when the test-train kernel is applied in blocks.
_PREDICT_BLOCK_ENTRIES = 2**23


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
        devices: the number of devices used (1 without a mesh).
    """

    solver: str
    iterations: int
    residual: float
    converged: bool
    ridge: float
    condition: float | None = None
    variance: np.ndarray | None = None
    devices: int = 1


def _relative_residual(Ax, b) -> float:
    Ax, b = np.asarray(Ax), np.asarray(b)
    r = np.linalg.norm(b - Ax, axis=0)
    bn = np.linalg.norm(b, axis=0)
    rel = np.where(bn > 0, r / np.where(bn > 0, bn, 1.0), r)
    return float(np.max(rel))


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Validated arguments of :func:`kernel_regression`."""

    solver: str
    x_train: object  # (n, d) NumPy points or a Grid
    x_test: object
    Y: np.ndarray  # (n, c)
    squeeze: bool
    rtol: float
    max_iter: int


def _solver_value(solver, rtol, max_iter):
    """Strings are aliases of solver values at the public boundary: ``(value, alias)``.

    ``None`` is "auto" (chosen from the operator's structure by :func:`_choose`).
    """
    if isinstance(solver, CG | Cholesky | Eigh):
        return solver, None
    if not isinstance(solver, str) or solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {solver!r}")
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_iter = check_positive_int(max_iter, "max_iter")
    values = {
        "auto": None,
        "cholesky": Cholesky(),
        "fft": Eigh(),
        "pcg": CG(rtol=rtol, max_iter=max_iter),
        "blocked": CG(rtol=rtol, max_iter=max_iter),
    }
    return values[solver], solver


def _choose(value, alias, kind: str, n: int, max_bytes) -> str:
    r"""The path from the solver value and the operator's structure tag.

    lineax's ``AutoLinearSolver`` in small: "auto" takes the exact eigendecomposition
    of a circulant Gram ("fft"), PCG with T. Chan's preconditioner on a Toeplitz one
    ("pcg"), the dense Cholesky on points when the Gram fits under the cap, else
    blocked CG; a value is dispatched on its type.
    """
    grid = kind in ("circulant", "toeplitz")
    if value is None:
        if grid:
            return "fft" if kind == "circulant" else "pcg"
        return "cholesky" if 8.0 * n * n <= dense_cap_bytes(max_bytes) else "blocked"
    if isinstance(value, Cholesky):
        return "cholesky"
    if not grid and alias in ("pcg", "fft"):
        raise ValueError(
            f"solver={alias!r} needs x_train and x_test as ntkspec.Grid values and a "
            "Fourier (stationary) mapping; raw coordinates (no mapping, or "
            "include_input=True) give a non-stationary kernel: use solver='cholesky' "
            "or 'blocked'"
        )
    if isinstance(value, Eigh):
        if kind != "circulant":
            raise ValueError(
                "solver='fft' (Eigh) needs a periodic mapping (integer frequencies B) "
                "on Grids; this mapping gives a Toeplitz (not circulant) Gram: use "
                "solver='pcg' or 'auto'"
            )
        return "fft"
    if alias == "blocked" or not grid:
        return "blocked"
    return "pcg"


def _plan(
    arch,
    mapping,
    x_train,
    y_train,
    x_test,
    kernel,
    ridge,
    solver,
    rtol,
    max_iter,
    return_variance,
    max_bytes,
    block_rows,
    dtype,
) -> _Plan:
    check_arch(arch)
    check_mapping(mapping)
    check_kernel(kernel)
    value, alias = _solver_value(solver, rtol, max_iter)
    if isinstance(value, CG):
        rtol, max_iter = value.rtol, value.max_iter
    check_real(ridge, "ridge", low=0.0)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    if not float(rtol) < 1.0:
        raise ValueError(
            f"rtol must be in (0, 1): a relative residual of 1 or more is met by the "
            f"zero solution; got {rtol}"
        )
    max_iter = check_positive_int(max_iter, "max_iter")
    if block_rows is not None:
        check_positive_int(block_rows, "block_rows")
    if resolve_dtype(dtype) != np.float64:
        raise ValueError("kernel_regression supports dtype=float64 only")
    tr_pts, tr_grid = check_inputs(x_train, "x_train", mapping)
    te_pts, te_grid = check_inputs(x_test, "x_test", mapping)
    n = tr_grid.size if tr_grid is not None else tr_pts.shape[0]
    y = check_targets(y_train, n)
    if tr_grid is not None and te_grid is not None:
        grid_ratio(
            tr_grid, te_grid
        )  # validate compatibility early, whatever the solver
    kind = structure(mapping, x_train, x_test)  # the one path choice (operators)
    path = _choose(value, alias, kind, n, max_bytes)
    if return_variance and path != "cholesky":
        raise ValueError(
            "return_variance needs the dense path (solver='cholesky', or 'auto' with "
            "point arrays that fit under the memory cap)"
        )
    if path not in ("pcg", "fft"):
        tr_pts = tr_grid.points() if tr_grid is not None else tr_pts
        te_pts = te_grid.points() if te_grid is not None else te_pts
        tr_grid = te_grid = None
    x_tr = tr_grid if tr_grid is not None else tr_pts
    x_te = te_grid if te_grid is not None else te_pts
    Y = y[:, None] if y.ndim == 1 else y
    return _Plan(path, x_tr, x_te, Y, y.ndim == 1, float(rtol), max_iter)


# --------------------------------------------------------------------------------------
# The three paths: dense Cholesky, matrix-free CG, structured grids.
# --------------------------------------------------------------------------------------


def _dense_path(
    arch, mapping, x_tr, Y, x_te, kernel, ridge, max_bytes, variance, mesh=None
):
    n, n_test = x_tr.shape[0], x_te.shape[0]
    check_dense_request(
        (n, n),
        8,
        max_bytes,
        what="The dense train Gram",
        alternative="Use solver='blocked' (matrix-free CG) or Grid inputs.",
    )
    A = np.array(
        dense_gram(
            arch, mapping, x_tr, kernel=kernel, max_bytes=max_bytes, mesh=mesh
        ).matrix
    )
    A[np.diag_indices(n)] += ridge
    sol = psd_solve(A, Y, "K(X, X) + ridge I", stacklevel=5)
    res = _relative_residual(A @ sol.value, Y)
    fac = sol
    if variance and kernel != "nngp":
        G = np.array(dense_gram(arch, mapping, x_tr, kernel="nngp", mesh=mesh).matrix)
        G[np.diag_indices(n)] += ridge
        fac = psd_solve(G, np.zeros((n, 1)), "NNGP K(X, X) + ridge I", stacklevel=5)
    # The test-train kernel is applied in blocks of test rows (never all at once).
    rows = max(1, min(n_test, _PREDICT_BLOCK_ENTRIES // max(n, 1)))
    pred = np.empty((n_test, Y.shape[1]))
    var = np.empty(n_test) if variance else None
    for s in range(0, n_test, rows):
        e = min(s + rows, n_test)
        Kt = np.asarray(
            dense_gram(arch, mapping, x_te[s:e], x_tr, kernel=kernel, mesh=mesh).matrix
        )
        pred[s:e] = Kt @ sol.value
        if variance:
            Kg = (
                Kt
                if kernel == "nngp"
                else dense_gram(
                    arch, mapping, x_te[s:e], x_tr, kernel="nngp", mesh=mesh
                ).matrix
            )
            W = fac.half_inverse(np.asarray(Kg).T)
            prior = np.asarray(gram_diagonal(arch, mapping, x_te[s:e], kernel="nngp"))
            var[s:e] = prior - np.sum(W * W, axis=0)
    ok = sol.method == "cholesky"
    return pred, RegressionInfo(sol.method, 0, res, ok, ridge, sol.condition, var)


def _blocked_path(
    arch, mapping, x_tr, Y, x_te, kernel, ridge, rtol, max_iter, block, mesh=None
):
    f_tr, f_te = mapping(x_tr), mapping(x_te)
    block = block or max(1, min(f_tr.shape[0], 2**20 // f_tr.shape[0]))
    with x64_scope(np.float64):
        diag = jnp.asarray(gram_diagonal(arch, mapping, x_tr, kernel=kernel)) + ridge
        jacobi = JacobiPreconditioner(1.0 / jnp.where(diag > 0, diag, 1.0))
        # With a mesh each device builds blocks of block / D rows (ntkspec.sharding).
        blk = device_block(block, mesh)
        k_train = blocked_gram(arch, f_tr, kernel=kernel, block_rows=blk)
        k_train = shard_operator(k_train, mesh)
        sol = cg(
            Shifted(k_train, ridge),
            Y,
            preconditioner=jacobi,
            rtol=rtol,
            max_iter=max_iter,
        )
        k_test = blocked_gram(arch, f_te, f_tr, kernel=kernel, block_rows=blk)
        k_test = shard_operator(k_test, mesh)
        pred = np.asarray(k_test.matvec(sol.value))
    st = sol.stats
    info = RegressionInfo(
        "blocked", st["iterations"], st["residual"], st["converged"], ridge
    )
    if not info.converged:
        warnings.warn(
            f"blocked CG did not reach rtol={rtol:.1e} in {info.iterations} iterations "
            f"(reached {info.residual:.2e}); raise max_iter, loosen rtol or add a "
            "ridge",
            ConvergenceWarning,
            stacklevel=4,
        )
    return pred, info


def _structured_path(
    arch, mapping, g_tr, Y, g_te, kernel, ridge, rtol, max_iter, solver, mesh=None
):
    train, test_train = kernel_operator(arch, mapping, g_tr, g_te, kernel=kernel)
    train, test_train = shard_operator(train, mesh), shard_operator(test_train, mesh)
    system = Shifted(train, ridge)
    with x64_scope(np.float64):
        Yj = jax.device_put(np.asarray(Y, dtype=np.float64))  # a transfer, no op
        if solver == "fft":
            # The circulant train Gram is solved exactly by FFT: (K + ridge I)^{-1} is
            # the circulant with eigenvalues 1 / (lambda(m) + ridge).
            lam = np.asarray(train.eigenvalues_by_frequency())
            if np.min(lam) + ridge <= 1e-14 * np.max(lam):
                warnings.warn(
                    f"the circulant train Gram is numerically singular (smallest "
                    f"eigenvalue {np.min(lam):.2e}, largest {np.max(lam):.2e}); "
                    + ridge_advice(float(np.max(lam))),
                    IllConditionedWarning,
                    stacklevel=4,
                )
            half = lam[..., : g_tr.shape[-1] // 2 + 1] + ridge
            alpha = CirculantPreconditioner(jnp.asarray(1.0 / half), g_tr.shape).apply(
                Yj
            )
            res = _relative_residual(system.matvec(alpha), Y)
            pred = np.asarray(test_train.matvec(alpha))
            return pred, RegressionInfo("fft", 0, res, True, ridge)
        precond = t_chan_preconditioner(train, ridge)
        sol = cg(system, Yj, preconditioner=precond, rtol=rtol, max_iter=max_iter)
        st = sol.stats
        if not st["converged"]:
            warnings.warn(
                f"PCG did not reach the relative residual rtol={rtol:.1e} in "
                f"{st['iterations']} iterations (reached {st['residual']:.2e}); the "
                "prediction is inaccurate. Raise max_iter, loosen rtol or add a ridge.",
                ConvergenceWarning,
                stacklevel=4,
            )
        pred = np.asarray(test_train.matvec(sol.value))
        info = RegressionInfo(
            "pcg", st["iterations"], st["residual"], st["converged"], ridge
        )
        return pred, info


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def kernel_regression(
    arch: ReluMLP,
    mapping,
    x_train,
    y_train,
    x_test,
    kernel: str = "ntk",
    ridge: float = 0.0,
    *,
    solver="auto",
    rtol: float = 1e-10,
    max_iter: int = 2000,
    return_info: bool = False,
    return_variance: bool = False,
    max_bytes: float | None = None,
    block_rows: int | None = None,
    dtype=np.float64,
    mesh=None,
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
            applies the test-train kernel in blocks of test rows. Solver values are
            accepted too: :class:`ntkspec.solvers.CG` (``rtol``, ``max_iter``; PCG on
            Grids, else blocked), :class:`ntkspec.solvers.Cholesky` and
            :class:`ntkspec.solvers.Eigh` (the exact circulant solve, "fft").
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
        mesh: None (one device) or a 1-D ``jax.sharding.Mesh``: the blocked path
            deals its row blocks (``block_rows`` rows per step over all devices) to
            the devices, the grid paths spread the FFT matvecs over channels or
            along the first grid axis, and the dense path computes the Gram's rows
            on the devices (the Cholesky stays one LAPACK call on the host). See
            :mod:`ntkspec.sharding`; ``info.devices`` reports the count.

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
    mesh = check_mesh(mesh)
    plan = _plan(
        arch, mapping, x_train, y_train, x_test, kernel, ridge, solver, rtol, max_iter,
        return_variance, max_bytes, block_rows, dtype,
    )  # fmt: skip
    ridge = float(ridge)
    args = (arch, mapping, plan.x_train, plan.Y, plan.x_test, kernel, ridge)
    if plan.solver in ("pcg", "fft"):
        pred, info = _structured_path(
            *args, plan.rtol, plan.max_iter, plan.solver, mesh
        )
    elif plan.solver == "cholesky":
        pred, info = _dense_path(*args, max_bytes, return_variance, mesh)
    else:
        pred, info = _blocked_path(*args, plan.rtol, plan.max_iter, block_rows, mesh)
    info = dataclasses.replace(info, devices=device_count(mesh))
    pred = np.asarray(pred, dtype=np.float64)
    if plan.squeeze:
        pred = pred[:, 0]
    if return_info or return_variance:
        return pred, info
    return pred
