import dataclasses
import functools
import warnings

import jax
import numpy as np
import pytest
import scipy.linalg

import ntkspec
from ntkspec import mappings
from ntkspec.grid import Grid
from ntkspec.kernels import ReluMLP
from ntkspec.operators import DenseOperator, Shifted, grid_operator
from ntkspec.regression import kernel_regression
from ntkspec.solvers import (
    CG,
    Cholesky,
    ConvergenceWarning,
    JacobiPreconditioner,
    LanczosResult,
    Solution,
    block_lanczos,
    cg,
    lanczos_matfun,
    restarted_lanczos,
    t_chan_preconditioner,
)

ARCH = ReluMLP(4)
# float64 solves of systems with condition numbers up to ~1e4: a few hundred ulps.
RTOL = 1e-10


def _spd(rng, n, cond=1e3):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, 1.0 / cond, n)
    return (q * lam) @ q.T, lam, q


def _dense(a):
    import jax.numpy as jnp

    with jax.enable_x64(True):
        return DenseOperator(jnp.asarray(a, jnp.float64))


@pytest.mark.parametrize("jacobi", [False, True])
def test_cg_matches_dense_solve_per_column(rng, jacobi):
    a, _, _ = _spd(rng, 40)
    b = rng.standard_normal((40, 3))
    b[:, 1] *= 1e-6  # columns of very different size stop at their own residual
    pre = JacobiPreconditioner(np.asarray(1.0 / np.diag(a))) if jacobi else None
    sol = cg(_dense(a), b, preconditioner=pre, rtol=1e-13, max_iter=500)
    ref = scipy.linalg.solve(a, b, assume_a="pos")
    np.testing.assert_allclose(np.asarray(sol.value), ref, rtol=RTOL, atol=1e-16)
    st = sol.stats
    assert st["converged"] and 0 < st["iterations"] <= 500 and st["residual"] <= 1e-13
    r = b - a @ np.asarray(sol.value)
    rel = np.linalg.norm(r, axis=0) / np.linalg.norm(b, axis=0)
    # both residuals are near round-off (1e-14), where their own rounding is ~10 %
    assert np.isclose(st["residual"], rel.max(), rtol=0.2, atol=1e-18)


def test_cg_vector_and_pytree(rng):
    a, _, _ = _spd(rng, 20)
    b = rng.standard_normal(20)
    sol = cg(_dense(a), b, rtol=1e-12)
    assert isinstance(sol, Solution) and sol.value.shape == (20,)
    np.testing.assert_allclose(
        np.asarray(sol.value), np.linalg.solve(a, b), rtol=RTOL, atol=1e-14
    )
    leaves = jax.tree_util.tree_leaves(sol)
    assert len(leaves) == 4


def test_cg_not_converged_reports_it(rng):
    a, _, _ = _spd(rng, 40, cond=1e8)
    sol = cg(_dense(a), rng.standard_normal(40), rtol=1e-14, max_iter=3)
    assert not sol.stats["converged"] and sol.stats["iterations"] == 3


def test_cg_argument_errors(rng):
    op = _dense(np.eye(4))
    with pytest.raises(ValueError, match="b must have shape"):
        cg(op, np.ones(5))
    with pytest.raises(ValueError, match="rtol"):
        cg(op, np.ones(4), rtol=0.0)
    with pytest.raises(TypeError, match="operator"):
        cg(np.eye(4), np.ones(4))
    with pytest.raises(ValueError, match="rtol"):
        CG(rtol=-1.0)
    with pytest.raises(TypeError, match="max_iter"):
        CG(max_iter=1.5)


def test_t_chan_pcg_on_toeplitz_grid_matches_dense(rng):
    grid = Grid((12, 10))
    gauss = mappings.gaussian(0, 2, 32, 3.0)
    op = grid_operator(ARCH, gauss, grid)
    K = np.asarray(ntkspec.ntk(ARCH, gauss(grid.points())))
    ridge = 1e-3
    b = rng.standard_normal((grid.size, 2))
    pre = t_chan_preconditioner(op, ridge)
    sol = cg(Shifted(op, ridge), b, preconditioner=pre, rtol=1e-13)
    ref = scipy.linalg.solve(K + ridge * np.eye(grid.size), b, assume_a="pos")
    assert sol.stats["converged"]
    np.testing.assert_allclose(np.asarray(sol.value), ref, rtol=1e-8, atol=1e-10)
    plain = cg(Shifted(op, ridge), b, rtol=1e-13)
    assert sol.stats["iterations"] < plain.stats["iterations"]


def test_t_chan_preconditioner_of_a_circulant_is_exact(rng):
    grid = Grid((16,))
    op = grid_operator(ARCH, mappings.basic(1), grid)
    b = rng.standard_normal(16)
    sol = cg(Shifted(op, 0.1), b, preconditioner=t_chan_preconditioner(op, 0.1))
    assert sol.stats["iterations"] <= 2 and sol.stats["converged"]


def test_block_lanczos_matches_eigh(rng):
    a, lam, _ = _spd(rng, 120, cond=1e6)
    res = block_lanczos(_dense(a), 6, vectors=True, block_size=4, tol=1e-12)
    assert isinstance(res, LanczosResult) and res.converged
    np.testing.assert_allclose(res.eigenvalues, np.sort(lam)[::-1][:6], rtol=1e-11)
    v = res.eigenvectors
    np.testing.assert_allclose(a @ v, v * res.eigenvalues[None, :], rtol=0, atol=1e-10)
    assert res.stats["seconds"] >= 0.0
    with pytest.warns(DeprecationWarning, match="stats"):
        assert res.seconds == res.stats["seconds"]


def _phi_flow(eta, t, n):
    import jax.numpy as jnp

    def f(lam):
        x = eta * lam * t / n
        small = jnp.abs(x) < 1e-8
        safe = jnp.where(small, 1.0, lam)
        return jnp.where(small, eta * t / n, -jnp.expm1(-x) / safe)

    return f


def _phi_gd(eta, t, n):

    def f(lam):  # (1 - (1 - eta lam / N)^t) / lam as a polynomial in lam (exact)
        q = 1.0 - eta * lam / n
        return (eta / n) * sum(q**j for j in range(t))

    return f


@pytest.mark.parametrize("which", ["flow", "gd"])
def test_lanczos_matfun_matches_dense_eigendecomposition(rng, which):
    n = 200
    a, lam, q = _spd(rng, n, cond=1e5)
    a = a * 3.0
    lam = lam * 3.0
    V = rng.standard_normal((n, 3))
    eta, t = 0.5 * n / 3.0, 12
    if which == "flow":
        f = _phi_flow(eta, 40.0, n)
        g = -np.expm1(-eta * lam * 40.0 / n) / lam
    else:
        f = _phi_gd(eta, t, n)
        g = (1.0 - (1.0 - eta * lam / n) ** t) / lam
    ref = q @ (g[:, None] * (q.T @ V))
    sol = lanczos_matfun(_dense(a), f, V, krylov_dim=60, rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(sol.value), ref, rtol=0, atol=1e-10 * np.abs(ref).max()
    )
    assert sol.stats["converged"] and sol.stats["iterations"] == 60
    # the estimate is an upper-bound-sized number, not zero, and small
    assert 0 <= sol.stats["residual"] < 1e-10


def test_lanczos_matfun_estimate_flags_too_small_krylov_space(rng):
    n = 200
    a, lam, q = _spd(rng, n, cond=1e6)
    v = rng.standard_normal(n)
    sol = lanczos_matfun(_dense(a), lambda x: 1.0 / x, v, krylov_dim=5, rtol=1e-10)
    ref = q @ ((1.0 / lam) * (q.T @ v))
    err = np.linalg.norm(np.asarray(sol.value) - ref) / np.linalg.norm(ref)
    assert not sol.stats["converged"] and err > 1e-6


def test_lanczos_matfun_invariant_space_is_exact(rng):
    # a rank-3 operator: the Krylov space is invariant after 3 steps (beta = 0)
    u, _ = np.linalg.qr(rng.standard_normal((30, 3)))
    a = (u * np.array([3.0, 2.0, 1.0])) @ u.T
    v = rng.standard_normal(30)
    sol = lanczos_matfun(_dense(a), lambda x: np.exp(1.0) * x, v, krylov_dim=10)
    np.testing.assert_allclose(
        np.asarray(sol.value), np.exp(1.0) * a @ v, rtol=1e-12, atol=1e-12
    )
    assert np.all(np.isfinite(np.asarray(sol.value)))


def test_kernel_regression_accepts_solver_values(rng):
    x, xt = rng.random((48, 2)), rng.random((10, 2))
    y = rng.standard_normal(48)
    gauss = mappings.gaussian(0, 2, 16, 3.0)
    ref = kernel_regression(ARCH, gauss, x, y, xt, ridge=1e-3, solver="cholesky")
    a = kernel_regression(ARCH, gauss, x, y, xt, ridge=1e-3, solver=Cholesky())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b, info = kernel_regression(
            ARCH, gauss, x, y, xt, ridge=1e-3, solver=CG(rtol=1e-12), return_info=True
        )
    np.testing.assert_array_equal(a, ref)
    assert info.solver == "blocked" and info.converged
    np.testing.assert_allclose(b, ref, rtol=1e-8, atol=1e-10)
    g_tr, g_te = Grid((8, 8)), Grid((16, 16))
    yg = rng.standard_normal(64)
    p1 = kernel_regression(ARCH, gauss, g_tr, yg, g_te, solver="pcg", rtol=1e-12)
    p2, info = kernel_regression(
        ARCH, gauss, g_tr, yg, g_te, solver=CG(rtol=1e-12), return_info=True
    )
    assert info.solver == "pcg"
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize(
    ("k", "block_size"),
    [(6, 4), (8, 8), (40, 4), (70, 8)],  # k near the block size, and far above it
)
def test_restarted_lanczos_matches_eigh(rng, k, block_size):
    n = 300
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.exp(-np.arange(n) / 25.0) * (1.0 + 0.01 * rng.random(n))
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)
    dense = np.linalg.eigvalsh(a)[::-1]
    res = restarted_lanczos(_dense(a), k, vectors=True, block_size=block_size)
    assert res.converged and res.restarts >= 1  # the basis (2k rows) had to restart
    assert res.krylov_dim < n
    # 1e-10 relative: the requested residual tolerance.
    np.testing.assert_allclose(res.eigenvalues, dense[:k], rtol=1e-10, atol=0)
    v = res.eigenvectors
    assert v.shape == (n, k)
    np.testing.assert_allclose(v.T @ v, np.eye(k), rtol=0, atol=1e-10)
    true_res = np.linalg.norm(a @ v - v * res.eigenvalues, axis=0)
    assert np.all(true_res <= 1e-9 * res.eigenvalues)
    np.testing.assert_allclose(res.residuals, true_res, rtol=0, atol=1e-12)


def _clustered(rng, n=300):
    """A symmetric matrix whose spectrum decays slowly, with near-degenerate pairs."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.exp(-np.arange(n) / 25.0) * (1.0 + 0.01 * rng.random(n))
    a = (q * lam) @ q.T
    return 0.5 * (a + a.T)


@pytest.mark.parametrize(("k", "block_size"), [(6, 4), (40, 4)])
def test_block_lanczos_matches_eigh_k_near_and_far_above_block(rng, k, block_size):
    a = _clustered(rng)
    dense = np.linalg.eigvalsh(a)[::-1]
    res = block_lanczos(_dense(a), k, vectors=True, block_size=block_size)
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues, dense[:k], rtol=1e-10, atol=0)
    v = res.eigenvectors
    true_res = np.linalg.norm(a @ v - v * res.eigenvalues, axis=0)
    assert np.all(true_res <= 1e-9 * res.eigenvalues)
    np.testing.assert_allclose(res.residuals, true_res, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "block_size"), [(8, 8), (40, 4)])
def test_restarted_lanczos_warm_start_matches_eigh(rng, k, block_size):
    # A start block close to the wanted eigenvectors (eigenvectors of a perturbed
    # matrix, as a circulant approximation gives for a Toeplitz Gram).
    a = _clustered(rng)
    w, u = np.linalg.eigh(a)
    dense = w[::-1]
    noise = 1e-3 * rng.standard_normal(a.shape)
    _, u_approx = np.linalg.eigh(a + 0.5 * (noise + noise.T))
    start = u_approx[:, ::-1][:, :block_size]
    res = restarted_lanczos(
        _dense(a), k, vectors=True, block_size=block_size, start=start
    )
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues, dense[:k], rtol=1e-10, atol=0)
    v = res.eigenvectors
    true_res = np.linalg.norm(a @ v - v * res.eigenvalues, axis=0)
    assert np.all(true_res <= 1e-9 * res.eigenvalues)
    # A start block spanning the top eigenvectors exactly: converged at once.
    exact = restarted_lanczos(_dense(a), 4, block_size=8, start=u[:, ::-1][:, :8])
    assert exact.converged and exact.matvecs <= 16
    np.testing.assert_allclose(exact.eigenvalues, dense[:4], rtol=1e-12, atol=0)


def test_lanczos_stats_are_a_timing_breakdown(rng):
    a = _clustered(rng, 120)
    for res, parts in (
        (block_lanczos(_dense(a), 10, block_size=4), ("matvec_s", "orth_s", "ritz_s")),
        (
            restarted_lanczos(_dense(a), 10, block_size=4),
            ("matvec_s", "orth_s", "ritz_s", "restart_s"),
        ),
    ):
        assert res.converged
        times = [res.stats[p] for p in parts]
        assert all(t >= 0.0 for t in times)
        assert sum(times) <= res.stats["seconds"]


def test_restarted_lanczos_reports_non_convergence(rng):
    n = 200
    a = rng.standard_normal((n, n))
    a = a @ a.T
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = restarted_lanczos(_dense(a), 30, block_size=4, max_restarts=1)
    assert not res.converged and res.restarts == 1
    assert res.eigenvalues.shape == (30,) and res.residuals.shape == (30,)
    assert np.max(res.residuals / res.eigenvalues) > 1e-10


def test_restarted_lanczos_arguments(rng):
    op = _dense(np.eye(50))
    with pytest.raises(ValueError, match="k must be"):
        restarted_lanczos(op, 0)
    with pytest.raises(TypeError, match="max_restarts"):
        restarted_lanczos(op, 3, max_restarts=1.5)
    with pytest.raises(ValueError, match="start"):
        restarted_lanczos(op, 3, block_size=2, start=np.ones(7))


@pytest.mark.parametrize("algorithm", [block_lanczos, restarted_lanczos])
def test_lanczos_breakdown_of_a_low_rank_operator_matches_eigh(rng, algorithm):
    # Rank 6 plus 0.01 I in R^120 with blocks of 4: the block Krylov space (inside
    # span(Q0, U)) is invariant after two blocks, so the third block is rounding noise
    # (issue 30: Cholesky QR amplified that noise into rows neither orthogonal to the
    # basis nor coupled to K; a top-k spectrum came back above the trace with
    # converged=True). The rank-revealing split continues with fresh rows; k = 10 >
    # rank needs them (eigenvalues 7-10 are the 0.01 of the rest of R^120).
    n, rank = 120, 6
    u, _ = np.linalg.qr(rng.standard_normal((n, rank)))
    a = (u * np.geomspace(5.0, 0.5, rank)) @ u.T + 0.01 * np.eye(n)
    a = 0.5 * (a + a.T)
    dense = np.linalg.eigvalsh(a)[::-1]
    res = algorithm(_dense(a), 10, vectors=True, block_size=4)
    assert res.converged and res.method == "lanczos"
    np.testing.assert_allclose(
        res.eigenvalues, dense[:10], rtol=0, atol=1e-10 * dense[0]
    )
    v = res.eigenvectors
    np.testing.assert_allclose(v.T @ v, np.eye(10), rtol=0, atol=1e-10)
    true_res = np.linalg.norm(a @ v - v * res.eigenvalues, axis=0)
    assert np.all(true_res <= 1e-10 * dense[0])


@pytest.mark.parametrize("n", [9, 13, 22])
def test_lanczos_whose_basis_would_reach_n_is_dense_and_exact(rng, n):
    # k near N, and N not a multiple of the block: the Krylov basis would span R^N,
    # so both solvers take the dense eigh of K (N more matvecs) and return all k
    # values (before the fix block_lanczos returned fewer than k for k = N).
    a = _clustered(rng, n)
    dense = np.linalg.eigvalsh(a)[::-1]
    for algorithm in (block_lanczos, restarted_lanczos):
        for k in (1, n - 1, n):
            res = algorithm(_dense(a), k, vectors=True, block_size=4)
            assert res.converged and res.eigenvalues.shape == (k,)
            if k > 1:
                assert res.method == "dense" and res.matvecs >= n
            np.testing.assert_allclose(
                res.eigenvalues, dense[:k], rtol=0, atol=1e-12 * dense[0]
            )
            v = res.eigenvectors
            assert v.shape == (n, k)
            true_res = np.linalg.norm(a @ v - v * res.eigenvalues, axis=0)
            np.testing.assert_allclose(res.residuals, true_res, rtol=0, atol=1e-13)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["matrix", "basis"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class _Block:
    """A diagonal block Q_s^T A Q_s with its lift y -> Q_s y (as a symmetry sector)."""

    matrix: jax.Array
    basis: jax.Array

    @property
    def shape(self):
        return self.matrix.shape

    def matvec(self, v):
        return self.matrix @ v

    def lift(self, y):
        return np.asarray(self.basis) @ np.asarray(y)


def test_block_diagonal_lanczos_certifies_the_kth_value(rng):
    import jax.numpy as jnp

    from ntkspec.linalg import block_diagonal_lanczos

    # Block 0 (130 rows) holds the 40 largest eigenvalues: its first k (its share of
    # k = 30 by size, 17, plus 2 and 1: 20) cannot cover the top 30, the check must
    # grow it and rerun.
    n, n0, k = 240, 130, 30
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam0 = np.concatenate([10.0 + rng.random(40), 0.01 * rng.random(n0 - 40)])
    lam1 = 5.0 * rng.random(n - n0)
    lam1[:3] = lam0[[3, 7, 30]]  # exact ties across the blocks
    a = (q * np.concatenate([lam0, lam1])) @ q.T
    a = 0.5 * (a + a.T)
    dense = np.linalg.eigvalsh(a)[::-1]
    with jax.enable_x64(True):
        blocks = [
            _Block(jnp.asarray(qs.T @ a @ qs), jnp.asarray(qs))
            for qs in (q[:, :n0], q[:, n0:])
        ]
        res = block_diagonal_lanczos(blocks, k, vectors=True)
    assert res.converged
    info = res.stats["blocks"]
    assert [b["size"] for b in info] == [n0, n - n0]
    assert info[0]["k"] > 20  # grown, then certified
    # Block 1 holds two of the top 30 values (tied with block 0's), block 0 the rest.
    assert info[0]["in_top_k"] + info[1]["in_top_k"] == k
    assert info[0]["in_top_k"] >= k - 2
    assert res.matvecs > sum(b["matvecs"] for b in info)  # the discarded first run
    atol = 1e-10 * dense[0]
    np.testing.assert_allclose(res.eigenvalues, dense[:k], rtol=0, atol=atol)
    v = res.eigenvectors
    np.testing.assert_allclose(v.T @ v, np.eye(k), rtol=0, atol=1e-10)
    assert np.linalg.norm(a @ v - v * res.eigenvalues, axis=0).max() <= 1e-9 * dense[0]
    with pytest.raises(ValueError, match="k must be in"):
        block_diagonal_lanczos(blocks, n + 1)
    with pytest.raises(ValueError, match="blocks"):
        block_diagonal_lanczos([], 1)
