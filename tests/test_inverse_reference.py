"""Dense references for NTK regression through a linear measurement operator.

For the loss 0.5 ||A f(X) - y||^2 the infinitely wide network's prediction on the
grid is

    f*  = K A^T (A K A^T + delta I)^{-1} y          (t = infinity),
    f_t = K A^T G^+ (I - exp(-eta t G)) y           (gradient flow from f_0 = 0,
                                                     rate eta, G = A K A^T).

The helpers below compute both densely (NumPy/SciPy, float64) from ntkspec's Grams on
a small 2D/3D grid, so that a matrix-free `inverse_regression` can be checked against
them. The tests here check the helpers themselves through formulas that do not share
their code (push-through identity, the consistent-system property, t -> infinity).
The contract tests at the end check `ntkspec.inverse_regression` (the call form of
issue 14) against them.
"""

import numpy as np
import pytest
import scipy.linalg

import ntkspec
from ntkspec import measurements
from ntkspec._numerics import x64_scope

# --------------------------------------------------------------------------------------
# Helpers (importable: `from tests.test_inverse_reference import ...`).
# --------------------------------------------------------------------------------------


def dense_gram(arch, mapping, grid, kernel="ntk"):
    """K on all grid points (C order), (N, N) float64, from ntkspec's closed form."""
    feats = np.asarray(mapping(grid.points()))
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    return np.asarray(fn(arch, feats), dtype=np.float64)


def dense_matrix(forward):
    """The (M, N) matrix of a measurement value (or anything as_measurement accepts)."""
    import jax
    import jax.numpy as jnp

    op = measurements.as_measurement(forward)
    m, n = op.shape
    with x64_scope(np.float64):
        cols = jax.jit(jax.vmap(op.forward, in_axes=1, out_axes=1))(jnp.eye(n))
    return np.asarray(cols, dtype=np.float64).reshape(m, n)


def dense_inverse_reference(gram, a, y, ridge=0.0):
    """f* = K A^T (A K A^T + ridge I)^{-1} y; y (M,) or (M, c); min-norm at ridge 0.

    With ridge > 0 the system is symmetric positive definite: Cholesky-based solve.
    At ridge 0 a singular A K A^T (repeated or zero rows) uses the pseudo-inverse.
    """
    gram = np.asarray(gram, np.float64)
    a = np.asarray(a, np.float64)
    y = np.asarray(y, np.float64)
    g = a @ gram @ a.T
    g = 0.5 * (g + g.T)
    if ridge > 0:
        alpha = scipy.linalg.solve(g + ridge * np.eye(len(g)), y, assume_a="pos")
    else:
        alpha = np.linalg.pinv(g, rcond=1e-13, hermitian=True) @ y
    return gram @ a.T @ alpha


def dense_inverse_gd_reference(gram, a, y, t, lr=1.0):
    """f_t after gradient flow of 0.5 ||A f - y||^2 in the NTK from f_0 = 0, time lr*t.

    f_t = K A^T V diag((1 - exp(-lr t lam)) / lam) V^T y with A K A^T = V diag(lam) V^T;
    the factor is lr * t at lam = 0 (no cancellation: -expm1(-x) / lam).
    """
    gram = np.asarray(gram, np.float64)
    a = np.asarray(a, np.float64)
    g = a @ gram @ a.T
    lam, v = np.linalg.eigh(0.5 * (g + g.T))
    lam = np.clip(lam, 0.0, None)
    tau = lr * t
    safe = np.where(lam > 0, lam, 1.0)
    factor = np.where(lam > 0, -np.expm1(-tau * lam) / safe, tau)
    coef = v.T @ np.asarray(y, np.float64)
    coef = factor[:, None] * coef if coef.ndim == 2 else factor * coef
    return gram @ a.T @ (v @ coef)


# --------------------------------------------------------------------------------------
# Fixtures: small 2D CT and 3D k-space problems.
# --------------------------------------------------------------------------------------

ARCH = ntkspec.ReluMLP(4)


@pytest.fixture(scope="module")
def ct_problem():
    grid = ntkspec.Grid((10, 10))
    mapping = ntkspec.mappings.gaussian(0, 2, 64, 3.0)
    gram = dense_gram(ARCH, mapping, grid)
    op = measurements.ct_projections(grid.shape, num_angles=4)
    a = op.to_scipy().toarray()
    rng = np.random.default_rng(0)
    f_true = rng.random((grid.size, 2))
    return grid, mapping, gram, op, a, f_true


@pytest.fixture(scope="module")
def mri_problem():
    grid = ntkspec.Grid((4, 4, 4))
    mapping = ntkspec.mappings.gaussian(1, 3, 64, 2.0)
    gram = dense_gram(ARCH, mapping, grid)
    op = measurements.mri_kspace(grid.shape, num_samples=60, seed=0)
    a = dense_matrix(op)
    f_true = np.random.default_rng(1).random(grid.size)
    return grid, mapping, gram, op, a, f_true


def test_consistent_system_reproduced_at_ridge_zero(ct_problem, mri_problem):
    for _, _, gram, _, a, f_true in (ct_problem, mri_problem):
        y = a @ f_true
        f = dense_inverse_reference(gram, a, y, ridge=0.0)
        np.testing.assert_allclose(a @ f, y, rtol=1e-8, atol=1e-10 * np.abs(y).max())


def test_push_through_identity(ct_problem):
    """K A^T (A K A^T + d I)^{-1} = (A^T A + d K^{-1})^{-1} A^T, K positive definite."""
    _, _, gram, _, a, f_true = ct_problem
    y = a @ f_true
    ridge = 1e-3
    got = dense_inverse_reference(gram, a, y, ridge)
    lhs = a.T @ a + ridge * np.linalg.inv(gram)
    ref = np.linalg.solve(lhs, a.T @ y)
    # Conditioning of K^{-1} costs digits in the reference: 1e-6 relative.
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_gradient_flow_limits(ct_problem):
    _, _, gram, _, a, f_true = ct_problem
    y = a @ f_true
    f_inf = dense_inverse_reference(gram, a, y, ridge=0.0)
    f_long = dense_inverse_gd_reference(gram, a, y, t=1e9)
    np.testing.assert_allclose(
        f_long, f_inf, rtol=1e-7, atol=1e-9 * np.abs(f_inf).max()
    )
    np.testing.assert_array_equal(dense_inverse_gd_reference(gram, a, y, t=0.0), 0.0)
    # Small t: f_t ~ t K A^T y (first order).
    t = 1e-8
    np.testing.assert_allclose(
        dense_inverse_gd_reference(gram, a, y, t=t), t * gram @ a.T @ y, rtol=1e-6
    )


def test_channels_are_independent(mri_problem):
    _, _, gram, _, a, _ = mri_problem
    y = np.random.default_rng(2).standard_normal((a.shape[0], 3))
    both = dense_inverse_reference(gram, a, y, ridge=1e-4)
    for j in range(3):
        np.testing.assert_allclose(
            both[:, j],
            dense_inverse_reference(gram, a, y[:, j], ridge=1e-4),
            rtol=1e-10,
            atol=1e-10 * np.abs(both).max(),
        )


# --------------------------------------------------------------------------------------
# Contract tests for ntkspec.inverse_regression (issue 14).
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dense", "sparse", "functions", "value"])
@pytest.mark.parametrize("channels", [None, 2])
def test_inverse_regression_matches_dense_formula(ct_problem, kind, channels):
    grid, mapping, gram, op, a, f_true = ct_problem
    f_true = f_true[:, 0] if channels is None else f_true
    y = a @ f_true
    ridge = 1e-6 * np.trace(a @ gram @ a.T) / a.shape[0]
    forward = {
        "dense": a,
        "sparse": op.to_scipy(),
        "functions": (op.forward, op.adjoint),
        "value": op,
    }[kind]
    kwargs = {"shape": op.shape} if kind == "functions" else {}
    if kwargs:
        forward = measurements.as_measurement(forward, **kwargs)
    got = np.asarray(
        ntkspec.inverse_regression(ARCH, mapping, grid, forward, y, ridge=ridge)
    )
    ref = dense_inverse_reference(gram, a, y, ridge)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_inverse_regression_3d_kspace(mri_problem):
    grid, mapping, gram, op, a, f_true = mri_problem
    y = a @ f_true
    ridge = 1e-6
    got = np.asarray(
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, ridge=ridge)
    )
    ref = dense_inverse_reference(gram, a, y, ridge)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


def test_inverse_regression_reproduces_consistent_measurements_at_ridge_zero(
    ct_problem,
):
    grid, mapping, _, op, a, f_true = ct_problem
    y = a @ f_true[:, 0]
    got = np.asarray(ntkspec.inverse_regression(ARCH, mapping, grid, op, y, ridge=0.0))
    np.testing.assert_allclose(a @ got, y, rtol=1e-8, atol=1e-8 * np.abs(y).max())


def test_inverse_regression_bad_input(ct_problem):
    grid, mapping, _, op, a, f_true = ct_problem
    y = a @ f_true[:, 0]
    with pytest.raises(ValueError, match="forward"):  # N does not match the grid
        ntkspec.inverse_regression(ARCH, mapping, ntkspec.Grid((9, 10)), op, y)
    with pytest.raises(ValueError, match="y"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y[:-1])
    with pytest.raises(ValueError, match="y"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, np.full_like(y, np.nan))
    with pytest.raises(ValueError, match="ridge"):
        ntkspec.inverse_regression(ARCH, mapping, grid, op, y, ridge=-1.0)
