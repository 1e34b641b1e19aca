r"""The top eigenpairs of a symmetric operator by block Lanczos.

* :func:`block_lanczos`: block Lanczos with full reorthogonalisation (Golub &
  Underwood 1977), the basis growing up to ``max_dim`` rows.
* :func:`restarted_lanczos`: the same with thick restarts (Wu & Simon 2000; blocked as
  in Zhou & Saad 2008), so the basis stays at ``krylov_dim`` rows
  (``spectra.lanczos_eigenpairs(..., algorithm="restarted")``).

Both take any operator with ``shape`` and a pure ``matvec`` and return a
:class:`LanczosResult`. Hand-written rather than ARPACK (``scipy.sparse.linalg.eigsh``)
or LOBPCG: ARPACK calls back into Python once per matvec and reorthogonalises one
vector at a time (a memory-bound gemv over the whole basis); LOBPCG needs a block at
least as wide as k and three blocks of matvecs per iteration. A block Lanczos turns
every reorthogonalisation into a matrix-matrix product and runs a block's matvecs in
one jitted call. The basis grows (or is restarted), so the blocks run in a Python
loop with the basis in NumPy (BLAS products on views, no copies); T is block
tridiagonal (banded eigensolver) or, after restarts, a small dense H.

References:
    Golub & Underwood, "The block Lanczos method for computing eigenvalues", 1977;
    Golub & Van Loan, "Matrix Computations", 4th ed., section 10.3.
    Wu & Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
    problems", SIAM J. Matrix Anal. Appl. 22(2), 2000.
    Zhou & Saad, "Block Krylov-Schur method for large symmetric eigenvalue
    problems", Numer. Algorithms 47, 2008.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .._linalg import scipy  # scipy.linalg imported on first use
from .._numerics import check_dense_request, dense_cap_bytes, x64_scope
from .._validation import check_positive_int
from ._operand import check_operator
from .solution import ConvergenceWarning

__all__ = [
    "LanczosResult",
    "block_lanczos",
    "restarted_lanczos",
    "block_diagonal_lanczos",
]


class _Stats(dict):
    """A dict of timings (not numerical results)."""


@dataclasses.dataclass(frozen=True)
class LanczosResult:
    r"""Top eigenpairs from block Lanczos, with diagnostics.

    Returned by :func:`~ntkspec.linalg.lanczos.block_lanczos` and
    :func:`~ntkspec.linalg.lanczos.restarted_lanczos`.

    Attributes:
        eigenvalues: shape (k,), descending.
        eigenvectors: shape (N, k) or None.
        residuals: :math:`\|K v_i - \lambda_i v_i\|` estimates, shape (k,).
        converged: all residuals <= tol * largest eigenvalue.
        krylov_dim: dimension of the final Krylov basis.
        matvecs: number of matrix-vector products.
        restarts: thick restarts done (by ``restarted_lanczos``; 0 otherwise).
        method: "lanczos", or "dense" where the Krylov basis would have reached
            (within a block of) N and the dense ``eigh`` of K was used instead.
        stats: wall-clock timings, not numerical results: ``"seconds"`` (total) and
            its parts ``"matvec_s"``, ``"orth_s"`` (Gram-Schmidt and the block QR),
            ``"ritz_s"`` (eigensolves of the projected matrix), ``"restart_s"``
            (``restarted_lanczos``, which also counts ``"second_passes"`` of
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
            # The inverse of the small b x b factor times q (one GEMM) rather than a
            # triangular solve: fewer, larger BLAS calls.
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
    n = check_operator(operator)
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
        # (Gaussian sigma 10, b = 8) 608 matvecs and 4 restarts, against 616 and 9
        # restarts for 2 k rows keeping k + (m - k) / 2: fewer basis rotations and
        # eigensolves for one block more.
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

    LAPACK's MRRR driver (``syevr``; Dhillon & Parlett 2004): after the reduction to
    tridiagonal form all eigenvectors take :math:`O(n^2)` work, against the
    :math:`O(n^3)` worst case of divide and conquer (``syevd``, ``numpy.linalg.eigh``).
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


def _start_block(n, b, seed, start):
    """The random generator and the start block (b, N), ``start``'s columns first."""
    rng = np.random.default_rng(seed)
    q0 = rng.standard_normal((b, n))
    if start is not None:
        s = np.asarray(start, dtype=np.float64)
        if s.ndim not in (1, 2) or s.shape[0] != n:
            raise ValueError(f"start must have shape ({n},) or ({n}, c); got {s.shape}")
        s = s.reshape(n, -1).T[:b]
        q0[: s.shape[0]] = s
    return rng, q0


def _expand_block(apply, basis, h_mat, cur, nv, b, scale, rng, clock):
    r"""Expand the block at row ``cur``: :math:`K q`, orthogonalised, split.

    The local recurrence first (the known couplings of this block: the previous
    block or, after a restart, the kept Ritz vectors; their support is contiguous,
    so the products stay on views of the basis), the diagonal block :math:`A_j` into
    ``h_mat``, then one full classical Gram-Schmidt pass, a second only where a row
    lost more than half its norm (Daniel-Gragg-Kaufman-Stewart: "twice is enough").

    Returns:
        (next block, coupling R, norm dropped at a breakdown, new scale, 1 if a
        second Gram-Schmidt pass ran else 0).
    """
    blk = slice(cur, cur + b)
    t1 = time.perf_counter()
    w = apply(basis[blk])
    t2 = time.perf_counter()
    clock["matvec_s"] += t2 - t1
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
    twice = 0
    if np.any(np.linalg.norm(w, axis=1) < 0.5 * before):
        w = _cgs(basis[:nv], w)
        twice = 1
    scale = max(scale, float(np.max(np.abs(np.diag(a_j)))))
    thresh = 1e-12 * max(scale, np.finfo(float).tiny)
    q_next, r_j, dropped = _next_block(w, basis[:nv], thresh, rng)
    clock["orth_s"] += time.perf_counter() - t2
    return q_next, r_j, dropped, scale, twice


def _thick_restart(basis, h_mat, nv, b, keep, theta, y, r_j):
    r"""Keep the top p Ritz vectors :math:`U = Y_p^\top V` with H = diag(theta_p).

    The last expanded block is rows ``nv - b .. nv``; returns the coupling
    :math:`R\,Y_{\rm last,p}` (b, p) of the next block to the kept rows, and p.
    """
    blk = slice(nv - b, nv)
    p = min(keep, nv - b)
    _rotate_rows(basis, nv, y[:, :p])
    coupling = r_j @ y[blk, :p]  # (b, p): Q_next K U^T
    h_mat[:] = 0.0
    h_mat[:p, :p] = np.diag(theta[:p])
    return coupling, p


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
        miss ``tol`` after ``max_restarts`` restarts a
        :class:`~ntkspec.linalg.solution.ConvergenceWarning`
        reports them, ``converged`` is False and the best Ritz pairs are returned.

    References:
        K. Wu & H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
        problems", SIAM J. Matrix Anal. Appl. 22(2), 2000.
        Y. Zhou & Y. Saad, "Block Krylov-Schur method for large symmetric eigenvalue
        problems", Numer. Algorithms 47, 2008.
    """
    t0 = time.perf_counter()
    n = check_operator(operator)
    k, b, m, keep, max_restarts = _thick_sizes(
        n, k, block_size, tol, krylov_dim, max_restarts, max_bytes
    )
    rng, q0 = _start_block(n, b, seed, start)
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
            q_next, r_j, dropped, scale, twice = _expand_block(
                apply, basis, h_mat, cur, nv, b, scale, rng, clock
            )
            matvecs += b
            second += twice
            defect2 += dropped**2
            t3 = time.perf_counter()
            full = nv + b > m
            steps += 1
            # Ritz pairs before each restart, and every step once the last check came
            # within 1e3 tol of converging: each check is an eigensolve of H, and a
            # check skipped far from convergence costs nothing.
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
                t4 = time.perf_counter()
                coupling, nv = _thick_restart(basis, h_mat, nv, b, keep, theta, y, r_j)
                clock["restart_s"] += time.perf_counter() - t4
                restarts += 1
                src = slice(0, nv)
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


def _first_block_k(k: int, size: int, n: int) -> int:
    """A block's first k: its share of the k wanted by size, plus 2 and a twentieth."""
    share = k * size / n
    return min(size, math.ceil(share) + 2 + math.ceil(0.05 * share))


def _merged(blocks, results, runs, n, k, vectors, seconds) -> LanczosResult:
    """The top k of the union of the blocks' last runs, vectors lifted to R^N."""
    values = np.concatenate([r.eigenvalues for r in results])
    counts = [r.eigenvalues.shape[0] for r in results]
    owner = np.repeat(np.arange(len(results)), counts)
    local = np.concatenate([np.arange(c) for c in counts])
    order = np.argsort(-values, kind="stable")[:k]
    vecs = None
    if vectors:
        vecs = np.empty((n, k))
        for i, (blk, r) in enumerate(zip(blocks, results, strict=True)):
            pos = np.flatnonzero(owner[order] == i)
            if pos.size:
                cols = r.eigenvectors[:, local[order][pos]]
                vecs[:, pos] = np.asarray(blk.lift(cols))
    stats = {"seconds": seconds}
    for key in ("matvec_s", "orth_s", "ritz_s", "restart_s", "second_passes"):
        stats[key] = sum(r.stats.get(key, 0) for r in runs)
    stats["blocks"] = [
        {
            "size": int(blk.shape[0]),
            "k": int(r.eigenvalues.shape[0]),
            "in_top_k": int(np.sum(owner[order] == i)),
            "matvecs": int(r.matvecs),
            "method": r.method,
        }
        for i, (blk, r) in enumerate(zip(blocks, results, strict=True))
    ]
    return LanczosResult(
        eigenvalues=values[order].copy(),
        eigenvectors=vecs,
        residuals=np.concatenate([r.residuals for r in results])[order],
        converged=all(r.converged for r in results),
        krylov_dim=max(r.krylov_dim for r in results),
        matvecs=sum(r.matvecs for r in runs),
        restarts=sum(r.restarts for r in runs),
        stats=stats,
        method="dense" if all(r.method == "dense" for r in results) else "lanczos",
    )


def block_diagonal_lanczos(
    blocks,
    k: int,
    *,
    vectors: bool = False,
    tol: float = 1e-10,
    seed: int = 0,
    max_bytes: float | None = None,
    **options,
) -> LanczosResult:
    r"""Top-k eigenpairs of a block-diagonal operator, block by block, certified.

    ``blocks`` are the diagonal blocks :math:`B_s^\top K B_s` of a symmetric K in an
    orthonormal basis :math:`[B_1, \dots, B_r]` of :math:`\mathbb{R}^N` (the symmetry
    sectors of :func:`ntkspec.operators.symmetry_sectors`), each with ``shape``, a
    pure ``matvec`` and ``lift`` (:math:`y \mapsto B_s y`). The spectrum of K is the
    union of theirs. Block s runs :func:`restarted_lanczos` for its top
    :math:`k_s` pairs, first its share of k by size (plus 2 and a twentieth), with
    the basis the whole operator would get for k (``krylov_dim`` default
    :math:`\max(2.4k, k + 10b)`, at most the block's size: each block's basis is
    at most the whole one's); the union is merged and sorted, and the k-th value
    :math:`\lambda_k` of the merged list is certified: a block whose smallest
    returned value is not strictly below :math:`\lambda_k` (and which has more than
    :math:`k_s` eigenvalues) may hold further ones above it, so its :math:`k_s` grows
    by half (at least 8) and it runs again, until every block passes. The
    unreturned eigenvalues of a passing block lie below its smallest returned one
    (up to ``tol``), hence below :math:`\lambda_k`.

    Args:
        blocks: the blocks (at least one), sizes summing to N.
        k: number of eigenpairs, 1 <= k <= N.
        vectors: also return the eigenvectors (N, k), lifted to :math:`\mathbb{R}^N`.
        tol: relative residual tolerance of each block's run.
        seed: start block seed (the same for every block).
        max_bytes: memory cap of each block's basis.
        **options: further keywords of :func:`restarted_lanczos` (``block_size``,
            ``krylov_dim`` of every block, ``max_restarts``).

    Returns:
        A :class:`LanczosResult`: the merged pairs (their residuals from the blocks),
        ``matvecs`` and ``restarts`` over every run (discarded ones included; one
        block matvec is one matvec of K), ``converged`` over the last runs,
        ``krylov_dim`` the largest block basis, and ``stats["blocks"]``: per block its
        size, last k, how many of the top k it holds, its matvecs and method.
    """
    t0 = time.perf_counter()
    blocks = tuple(blocks)
    if not blocks:
        raise ValueError("blocks must hold at least one operator")
    sizes = [check_operator(b, "blocks[i]") for b in blocks]
    n = sum(sizes)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer in [1, N = {n}]; got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N = {n}] (number of points); got {k}")
    k = int(k)
    ks = [_first_block_k(k, size, n) for size in sizes]
    if options.get("krylov_dim") is None:
        # The basis the whole operator would get (clipped to each block's size):
        # no more memory than one run on the whole, and few restarts per block.
        b = options.get("block_size") or 8
        options["krylov_dim"] = max((12 * k) // 5, k + 10 * b)
    results: list[LanczosResult] = [None] * len(blocks)  # type: ignore[list-item]
    runs: list[LanczosResult] = []
    todo = list(range(len(blocks)))
    while todo:
        for i in todo:
            results[i] = restarted_lanczos(
                blocks[i],
                ks[i],
                vectors=vectors,
                tol=tol,
                seed=seed,
                max_bytes=max_bytes,
                **options,
            )
            runs.append(results[i])
        values = np.concatenate([r.eigenvalues for r in results])
        kth = np.sort(values)[::-1][k - 1]
        todo = [
            i
            for i, r in enumerate(results)
            if r.eigenvalues.shape[0] < sizes[i] and not r.eigenvalues[-1] < kth
        ]
        for i in todo:
            ks[i] = min(sizes[i], ks[i] + max(8, math.ceil(ks[i] / 2)))
    return _merged(blocks, results, runs, n, k, vectors, time.perf_counter() - t0)
