"""ntkspec.inverse_regression against dense formulas written here (issue 14).

The contract tests (dense, sparse, functions and value forward maps, 1 and 2
channels, 3D k-space, ridge 0, bad input) live in tests/test_inverse_reference.py;
these add the raw function pair, the block-circulant preconditioner, finite time
(gradient flow and discrete GD), non-convergence and more bad input.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import ntkspec
from ntkspec import inverse, measurements, operators
from ntkspec._numerics import x64_scope
from ntkspec.solvers import ConvergenceWarning
from tests.test_inverse_reference import (
    dense_gram,
    dense_inverse_gd_reference,
    dense_inverse_reference,
)

ARCH = ntkspec.ReluMLP(3)


@pytest.fixture(scope="module")
def problem():
    grid = ntkspec.Grid((12, 12))
    mapping = ntkspec.mappings.gaussian(3, 2, 32, 3.0)
    gram = dense_gram(ARCH, mapping, grid)
    op = measurements.ct_projections(grid.shape, num_angles=5)
    a = op.to_scipy().toarray()
    f = np.random.default_rng(3).random((grid.size, 3))
    return grid, mapping, gram, op, a, f


def _close(got, ref, tol=1e-8):
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())


@pytest.mark.parametrize("channels", [None, 3])
def test_raw_function_pair_and_blocks_preconditioner(problem, channels):
    grid, mapping, gram, op, a, f = problem
    f = f[:, 0] if channels is None else f
    y = a @ f
    ridge = 1e-5 * np.trace(a @ gram @ a.T) / a.shape[0]
    ref = dense_inverse_reference(gram, a, y, ridge)
    with x64_scope(np.float64):
        aj = jnp.asarray(a)
    pair = (lambda v: aj @ v, lambda u: aj.T @ u)  # no shape: M found from the grid
    got = ntkspec.inverse_regression(ARCH, mapping, grid, pair, y, ridge=ridge)
    assert got.shape == ref.shape
    _close(got, ref)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, preconditioner="blocks",
        return_info=True,
    )  # fmt: skip
    _close(got, ref)
    assert info.preconditioner == "blocks" and info.converged
    assert info.solver == "pcg"


def test_block_preconditioner_is_spd_and_coarse_grid_variant(problem):
    grid, mapping, gram, op, a, _ = problem
    K = operators.grid_operator(ARCH, mapping, grid)
    G = operators.composed(op, K)
    fine = inverse.block_circulant_preconditioner(G, 5, shift=1e-4, coarse_modes=2)
    coarse = inverse.coarse_ct_operator(ARCH, mapping, grid, op, 2)
    two = inverse.block_circulant_preconditioner(
        G, 5, shift=1e-4, coarse_modes=2, coarse_operator=coarse
    )
    m = a.shape[0]
    for pre in (fine, two):
        with x64_scope(np.float64):
            P = np.asarray(pre.apply(jnp.eye(m)))
        np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-12 * np.abs(P).max())
        assert np.linalg.eigvalsh(0.5 * (P + P.T)).min() > 0
    with pytest.raises(ValueError, match="num_blocks"):
        inverse.block_circulant_preconditioner(G, 7)


def test_gradient_flow_matches_dense(problem):
    grid, mapping, gram, op, a, f = problem
    y = a @ f[:, :2]
    g_top = np.linalg.eigvalsh(a @ gram @ a.T).max()
    for t in (0.3 / g_top, 30.0 / g_top):
        ref = dense_inverse_gd_reference(gram, a, y, t=t, lr=1.0)
        got, info = ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, times=t, return_info=True, krylov_dim=60
        )
        assert info.solver == "lanczos"
        _close(got, ref)


def test_discrete_gd_matches_dense_polynomial(problem):
    grid, mapping, gram, op, a, f = problem
    y = a @ f[:, 0]
    g = a @ gram @ a.T
    lr = 1.0 / np.linalg.eigvalsh(g).max()
    k = 25
    # Direct iteration of f <- f - lr K A^T (A f - y) from f = 0.
    fk = np.zeros(gram.shape[0])
    for _ in range(k):
        fk = fk - lr * gram @ a.T @ (a @ fk - y)
    got = ntkspec.inverse_regression(
        ARCH,
        mapping,
        grid,
        op,
        y,
        times=k,
        discrete=True,
        learning_rate=lr,
        krylov_dim=60,
    )
    _close(got, fk)


def test_mean_measured_diagonal(problem):
    grid, mapping, gram, op, a, _ = problem
    G = operators.composed(op, operators.grid_operator(ARCH, mapping, grid))
    exact = np.trace(a @ gram @ a.T) / a.shape[0]
    np.testing.assert_allclose(inverse.mean_measured_diagonal(G, rows=None), exact)
    est = inverse.mean_measured_diagonal(G, rows=7)
    assert 0.5 * exact < est < 2 * exact


def test_non_convergence_warns_and_returns_best_iterate(problem):
    grid, mapping, _, op, a, f = problem
    y = a @ f[:, 0]
    with pytest.warns(ConvergenceWarning, match="did not reach"):
        got, info = ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, ridge=1e-8, max_iter=2, return_info=True
        )
    assert not info.converged and info.iterations == 2
    assert np.all(np.isfinite(got))
    with pytest.warns(ConvergenceWarning, match="krylov_dim"):
        ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, times=1e6, krylov_dim=2, rtol=1e-12
        )


def test_more_bad_input(problem):
    grid, mapping, _, op, a, f = problem
    y = a @ f[:, 0]
    with pytest.raises(TypeError, match="times"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, times=1.5, discrete=True)
    with pytest.raises(ValueError, match="times"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, times=-1, discrete=True)
    with pytest.raises(ValueError, match="times"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, times=-1.0)
    with pytest.raises(TypeError, match="discrete"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, times=1.0, discrete=1)
    with pytest.raises(ValueError, match="learning_rate"):
        ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, times=2, discrete=True, learning_rate=0.0
        )
    with pytest.raises(ValueError, match="y"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y[:, None][:, :0])
    with pytest.raises(TypeError, match="y"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, "y")
    with pytest.raises(ValueError, match="forward"):
        ntkspec.inverse_regression(ARCH, mapping, grid, a[:, :-1], y)
    with pytest.raises(TypeError, match="forward"):
        ntkspec.inverse_regression(ARCH, mapping, grid, "A", y)
    with pytest.raises(ValueError, match="preconditioner"):
        ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, preconditioner="multigrid"
        )
    with pytest.raises(TypeError, match="preconditioner"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, preconditioner=3)
    with pytest.raises(ValueError, match="mapping|grid|dimension"):
        ntkspec.inverse_regression(
            ARCH, ntkspec.mappings.gaussian(0, 3, 8, 1.0), grid, op, y
        )


# --------------------------------------------------------------------------------------
# The CT block model and the balancing block preconditioner.
# --------------------------------------------------------------------------------------


def test_ct_ray_extents_count_the_samples_of_each_ray():
    grid_shape = (16, 12)
    first, last = measurements.ct_ray_extents(grid_shape, num_angles=7)
    a = measurements.ct_projections(grid_shape, num_angles=7).to_scipy()
    samples = np.asarray(a.sum(axis=1)).ravel() * grid_shape[0]  # entries are 1/H
    np.testing.assert_allclose(
        np.maximum(last - first + 1, 0).ravel(), samples, rtol=0, atol=1e-9
    )
    assert first.shape == (7, 12) and np.all(first[0] == 0) and np.all(last[0] == 15)


def test_ct_block_model_against_the_dense_blocks(problem):
    grid, mapping, gram, _, _, _ = problem
    op = measurements.ct_projections(grid.shape, num_angles=4)  # 0, 45, 90, 135 deg
    a = op.to_scipy().toarray()
    g = a @ gram @ a.T
    w = grid.shape[1]
    model = inverse.ct_block_model(operators.grid_operator(ARCH, mapping, grid), 4)
    assert model.shape == (4, w, w)
    for b in range(4):
        exact = g[b * w : (b + 1) * w, b * w : (b + 1) * w]
        err = np.linalg.norm(model[b] - exact) / np.linalg.norm(exact)
        # Axis-aligned angles are exact; oblique ones round the rotated offsets
        # (measured 3.7e-2 at 12^2; about 1e-3 at 128^2, where pixels are smaller
        # than the kernel's width).
        assert err < (1e-12 if b in (0, 2) else 6e-2), (b, err)


def test_deflated_block_preconditioner_is_spd_and_exact_on_the_coarse_space(problem):
    grid, mapping, gram, op, a, _ = problem
    K = operators.grid_operator(ARCH, mapping, grid)
    G = operators.composed(op, K)
    shift = 1e-4
    blocks = inverse.ct_block_model(K, 5)
    pre = inverse.deflated_block_preconditioner(G, blocks, shift=shift, coarse_modes=2)
    m = a.shape[0]
    with x64_scope(np.float64):
        P = np.asarray(pre.apply(jnp.eye(m)))
        Z = np.kron(np.eye(5), np.asarray(pre.basis))
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-10 * np.abs(P).max())
    assert np.linalg.eigvalsh(0.5 * (P + P.T)).min() > 0
    S = a @ gram @ a.T + shift * np.eye(m)
    # Balancing: P S is the identity on the coarse space, P S Z = Z.
    np.testing.assert_allclose(P @ S @ Z, Z, rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="blocks"):
        inverse.deflated_block_preconditioner(G, blocks[:4])
    with pytest.raises(ValueError, match="floor"):
        inverse.deflated_block_preconditioner(G, blocks, floor=1.0)


@pytest.mark.parametrize("channels", [None, 2])
def test_ct_preconditioner_solves_to_the_dense_formula(channels):
    grid = ntkspec.Grid((32, 32))
    mapping = ntkspec.mappings.gaussian(1, 2, 32, 3.0)
    gram = dense_gram(ARCH, mapping, grid)
    op = measurements.ct_projections(grid.shape, num_angles=20)  # M = 640 >= 512
    a = op.to_scipy().toarray()
    f = np.random.default_rng(5).random((grid.size, 2))
    f = f[:, 0] if channels is None else f
    y = a @ f
    ridge = 1e-6 * np.trace(a @ gram @ a.T) / a.shape[0]
    ref = dense_inverse_reference(gram, a, y, ridge)
    for choice in ("auto", "ct"):
        got, info = ntkspec.inverse_regression(
            ARCH, mapping, grid, op, y, ridge=ridge, preconditioner=choice,
            return_info=True,
        )  # fmt: skip
        _close(got, ref)
        assert info.preconditioner == "ct" and info.converged


@pytest.mark.parametrize("channels", [None, 3])
def test_inverse_regression_path_matches_the_dense_flow(problem, channels):
    grid, mapping, gram, op, a, f = problem
    f = f[:, 0] if channels is None else f
    y = a @ f
    times, lr = [0.0, 0.3, 5.0, 40.0], 0.5
    got, infos = inverse.inverse_regression_path(
        ARCH,
        mapping,
        grid,
        op,
        y,
        times,
        learning_rate=lr,
        rtol=1e-12,
        return_info=True,
    )
    assert got.shape == (len(times),) + f.shape and len(infos) == len(times)
    for t, g in zip(times, got, strict=True):
        ref = dense_inverse_gd_reference(gram, a, y, t, lr=lr)
        if t == 0.0:
            np.testing.assert_array_equal(g, 0.0)
        else:
            _close(g, ref)
    with pytest.raises(ValueError, match="times"):
        inverse.inverse_regression_path(ARCH, mapping, grid, op, y, [])
    with pytest.raises(ValueError, match="times"):
        inverse.inverse_regression_path(ARCH, mapping, grid, op, y, [1.0, -2.0])
    with pytest.raises(TypeError, match="times"):
        inverse.inverse_regression_path(ARCH, mapping, grid, op, y, 3.0)


def test_column_by_column_path_matches_the_dense_formula(monkeypatch):
    # On grids above inverse._BATCH_VALUES points the coarse products apply K one
    # column at a time and CG runs on a column-by-column view of the system; force
    # that path on a small grid and compare with the dense formula.
    monkeypatch.setattr(inverse, "_BATCH_VALUES", 16)
    grid = ntkspec.Grid((32, 32))
    mapping = ntkspec.mappings.gaussian(1, 2, 32, 3.0)
    gram = dense_gram(ARCH, mapping, grid)
    op = measurements.ct_projections(grid.shape, num_angles=20)
    a = op.to_scipy().toarray()
    f = np.random.default_rng(7).random((grid.size, 2))
    y = a @ f
    ridge = 1e-6 * np.trace(a @ gram @ a.T) / a.shape[0]
    ref = dense_inverse_reference(gram, a, y, ridge)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, return_info=True
    )
    _close(got, ref)
    assert info.preconditioner == "ct" and info.converged
    q = 2 * inverse._COARSE_MODES + 1
    assert info.setup_matvecs == 20 * q  # the model check reuses the coarse products
    assert info.setup_seconds > 0 and info.solve_seconds > 0


def test_auto_falls_back_to_blocks_when_the_ct_model_does_not_match():
    # A random sparse map with the CT layout (M = 20 x W) is not a CT projector: the
    # kernel's block model misses its blocks, and "auto" uses the block-circulant one.
    import scipy.sparse

    grid = ntkspec.Grid((32, 32))
    mapping = ntkspec.mappings.gaussian(1, 2, 32, 3.0)
    gram = dense_gram(ARCH, mapping, grid)
    rng = np.random.default_rng(11)
    a = scipy.sparse.random(640, grid.size, density=0.02, random_state=rng).toarray()
    y = a @ rng.random(grid.size)
    ridge = 1e-6 * np.trace(a @ gram @ a.T) / a.shape[0]
    ref = dense_inverse_reference(gram, a, y, ridge)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, scipy.sparse.csr_array(a), y, ridge=ridge,
        return_info=True,
    )  # fmt: skip
    _close(got, ref)
    q = 2 * inverse._COARSE_MODES + 1
    assert info.preconditioner == "blocks" and info.converged
    assert info.setup_matvecs == 20 * q + 20


def test_deflated_preconditioner_with_an_indefinite_block_stays_spd(problem):
    # A model block that Cholesky refuses takes the clipped-eigenvalue fallback; P is
    # still symmetric positive definite and balancing (P S Z = Z).
    grid, mapping, gram, op, a, _ = problem
    K = operators.grid_operator(ARCH, mapping, grid)
    G = operators.composed(op, K)
    blocks = inverse.ct_block_model(K, 5)
    bad = blocks.copy()
    bad[2] -= 2.0 * np.linalg.eigvalsh(blocks[2]).max() * np.eye(blocks.shape[1])
    shift = 1e-4
    pre = inverse.deflated_block_preconditioner(G, bad, shift=shift, coarse_modes=2)
    m = a.shape[0]
    with x64_scope(np.float64):
        P = np.asarray(pre.apply(jnp.eye(m)))
        Z = np.kron(np.eye(5), np.asarray(pre.basis))
        d_inv = np.asarray(pre.block_inverse)
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-10 * np.abs(P).max())
    assert np.linalg.eigvalsh(0.5 * (P + P.T)).min() > 0
    assert np.isfinite(d_inv).all()
    # The healthy blocks are exact inverses of B + c I, shift <= c <= shift +
    # floor lam_max (floor 1e-4; lam_max from power steps, so allow 1 % above).
    w = blocks.shape[1]
    for b in (0, 4):
        lam_max = np.linalg.eigvalsh(blocks[b]).max()
        sym = 0.5 * (blocks[b] + blocks[b].T)
        extra = np.linalg.inv(d_inv[b]) - sym
        c = extra[0, 0]
        np.testing.assert_allclose(extra, c * np.eye(w), rtol=0, atol=1e-8 * lam_max)
        assert shift <= c <= shift + 1.01e-4 * lam_max
    S = a @ gram @ a.T + shift * np.eye(m)
    np.testing.assert_allclose(P @ S @ Z, Z, rtol=0, atol=1e-8)


def test_discrete_gd_above_the_stability_limit_warns(problem):
    # issue 30 item 6: steps=50 at lr = 4 / lambda_max returned 1e23 without a word.
    grid, mapping, gram, op, a, f = problem
    y = a @ f[:, 0]
    lam_max = np.linalg.eigvalsh(a @ gram @ a.T).max()
    with pytest.warns(RuntimeWarning, match="diverges.*stability limit 2 / lambda"):
        ntkspec.inverse_regression(
            ARCH,
            mapping,
            grid,
            op,
            y,
            times=50,
            discrete=True,
            learning_rate=4.0 / lam_max,
            krylov_dim=60,
        )
    # Below the limit: no warning (warnings are errors in this suite).
    got = ntkspec.inverse_regression(
        ARCH,
        mapping,
        grid,
        op,
        y,
        times=50,
        discrete=True,
        learning_rate=1.9 / lam_max,
        krylov_dim=60,
    )
    assert np.all(np.isfinite(got))
