"""MRI by the NTK: inverse_regression with a k-space mask on a 3D grid (issue 15).

References are dense NumPy computations written here: the kernel Gram K from
ntkspec.ntk on the mapped grid points, the (M, N) matrix of the mask from its forward
map on unit vectors (the adjoint test of the mask is in test_measurements.py), and

    f* = K A^T (A K A^T + delta I)^{-1} y                       (t = infinity),
    f_k = K A^T V diag((1 - (1 - eta lam)^k) / lam) V^T y       (k GD steps),

with A K A^T + delta I = V diag(lam) V^T by numpy.linalg.eigh.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkspec
from ntkspec import measurements
from ntkspec._numerics import x64_scope

ARCH = ntkspec.ReluMLP(4)
# Float64 throughout; the dense references are exact to a few 1e-13 here, the CG
# stopping rule (rtol 1e-12) sets the 1e-8 agreement asked for by the issue.
RTOL = 1e-8


def _dense_mask(op):
    n = op.shape[1]
    with x64_scope(np.float64):
        cols = jax.vmap(op.forward, in_axes=1, out_axes=1)(jnp.eye(n))
    return np.asarray(cols, np.float64)


def _dense_gram(mapping, grid):
    feats = np.asarray(mapping(grid.points()))
    return np.asarray(ntkspec.ntk(ARCH, feats), np.float64)


@pytest.fixture(scope="module")
def problem():
    grid = ntkspec.Grid((6, 6, 6))
    op = measurements.mri_kspace(grid.shape, num_samples=120, seed=0)
    a = _dense_mask(op)
    f_true = np.random.default_rng(0).random(grid.size)
    return grid, op, a, f_true


@pytest.mark.parametrize(
    "mapping",
    [
        ntkspec.mappings.gaussian(0, 3, 64, 2.0),
        ntkspec.mappings.positional(3, 8, scale=2.5),
    ],
    ids=["gaussian", "positional"],
)
def test_t_inf_matches_dense_formula_with_kspace_preconditioner(problem, mapping):
    grid, op, a, f_true = problem
    y = a @ f_true
    K = _dense_gram(mapping, grid)
    G = a @ K @ a.T
    ridge = 1e-6 * float(np.mean(np.diag(G)))
    ref = K @ a.T @ np.linalg.solve(G + ridge * np.eye(len(G)), y)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, rtol=1e-12, return_info=True
    )
    assert info.preconditioner == "kspace" and info.converged
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
    _, plain = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, rtol=1e-12, preconditioner=None,
        return_info=True,
    )  # fmt: skip
    assert info.iterations < plain.iterations


def test_periodic_mapping_is_solved_exactly_by_the_preconditioner(problem):
    """Integer frequencies: K is circulant, so the preconditioner is the exact inverse.

    The Gaussian draw rounded to integers: 64 frequencies like the other tests' maps,
    so the kernel and solver compilations are theirs (basic(3) compiled its own).
    """
    grid, op, a, f_true = problem
    gauss = ntkspec.mappings.gaussian(0, 3, 64, 2.0)
    mapping = ntkspec.mappings.FourierMapping(np.round(np.asarray(gauss.B)), gauss.a)
    assert mapping.is_periodic
    y = a @ f_true
    K = _dense_gram(mapping, grid)
    G = a @ K @ a.T
    ridge = 1e-3 * float(np.mean(np.diag(G)))
    ref = K @ a.T @ np.linalg.solve(G + ridge * np.eye(len(G)), y)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, rtol=1e-12, return_info=True
    )
    assert info.iterations <= 2
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_ridge_zero_reproduces_consistent_measurements(problem):
    grid, op, a, f_true = problem
    mapping = ntkspec.mappings.gaussian(1, 3, 64, 2.0)
    y = a @ f_true
    K = _dense_gram(mapping, grid)
    ref = K @ a.T @ np.linalg.pinv(a @ K @ a.T, rcond=1e-12, hermitian=True) @ y
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=0.0, rtol=1e-12, return_info=True
    )
    assert info.preconditioner == "kspace"
    np.testing.assert_allclose(a @ got, y, rtol=RTOL, atol=RTOL * np.abs(y).max())
    # Ill-conditioned pseudo-inverse reference: 1e-6 relative.
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_finite_steps_match_dense_formula(problem):
    grid, op, a, f_true = problem
    mapping = ntkspec.mappings.gaussian(0, 3, 64, 2.0)
    y = a @ f_true
    K = _dense_gram(mapping, grid)
    G = a @ K @ a.T
    ridge = 1e-6 * float(np.mean(np.diag(G)))
    lam, V = np.linalg.eigh(0.5 * (G + G.T) + ridge * np.eye(len(G)))
    lr = 1.0 / lam.max()
    k = 1000
    filt = (1.0 - (1.0 - lr * lam) ** k) / lam
    ref = K @ a.T @ (V @ (filt * (V.T @ y)))
    got = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, times=k, discrete=True,
        learning_rate=lr, rtol=1e-11, krylov_dim=200,
    )  # fmt: skip
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())


def test_kspace_preconditioner_matches_dense_inverse():
    """P r = (A C A^T + d I)^{-1} r with C = F^H diag(lam) F formed densely."""
    shape = (4, 6)
    op = measurements.mri_kspace(shape, num_samples=30, seed=2)
    a = _dense_mask(op)
    n = op.shape[1]
    # A real, even spectrum (lam_{-k} = lam_k) with a negative entry that is clipped.
    raw = np.random.default_rng(3).random(shape) + 0.1
    lam = 0.5 * (raw + raw[(-np.arange(4))[:, None] % 4, -np.arange(6) % 6])
    lam[1, 2] = lam[3, 4] = -1.0  # a pair (k, -k)
    clipped = np.maximum(lam, 1e-12 * np.abs(lam).max())
    F = np.fft.fftn(np.eye(n).reshape(n, *shape), axes=(1, 2), norm="ortho")
    F = F.reshape(n, n).T  # F[:, j] = DFT of unit vector j
    C = (F.conj().T @ np.diag(clipped.reshape(-1)) @ F).real
    ridge = 0.3
    r = np.random.default_rng(4).standard_normal(op.shape[0])
    ref = np.linalg.solve(a @ C @ a.T + ridge * np.eye(len(r)), r)
    pre = measurements.kspace_preconditioner(op, lam, ridge=ridge)
    with x64_scope(np.float64):
        got = np.asarray(pre.apply(jnp.asarray(r)))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_kspace_preconditioner_bad_input():
    op = measurements.mri_kspace((4, 4), num_samples=10, seed=0)
    with pytest.raises(TypeError, match="mask"):
        measurements.kspace_preconditioner(np.eye(3), np.ones((4, 4)))
    with pytest.raises(ValueError, match="eigenvalues"):
        measurements.kspace_preconditioner(op, np.ones(5))
    with pytest.raises(ValueError, match="eigenvalues"):
        measurements.kspace_preconditioner(op, np.full((4, 4), np.nan))
    with pytest.raises(TypeError, match="eigenvalues"):
        measurements.kspace_preconditioner(op, np.ones((4, 4), complex))
    with pytest.raises(ValueError, match="ridge"):
        measurements.kspace_preconditioner(op, np.ones((4, 4)), ridge=-1.0)


def test_kspace_preconditioner_refuses_other_forward_maps():
    grid = ntkspec.Grid((4, 4))
    a = np.random.default_rng(0).random((5, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="kspace"):
            ntkspec.inverse_regression(
                ARCH, ntkspec.mappings.basic(2), grid, a, np.ones(5),
                preconditioner="kspace",
            )  # fmt: skip


def test_column_by_column_system_with_a_kspace_mask(problem, monkeypatch):
    # On grids above inverse._BATCH_VALUES points CG runs on a column-by-column view
    # of the system; force it here (3 channels) and compare with the dense formula.
    from ntkspec import inverse

    monkeypatch.setattr(inverse, "_BATCH_VALUES", 16)
    grid, op, a, _ = problem
    mapping = ntkspec.mappings.gaussian(0, 3, 64, 2.0)
    f = np.random.default_rng(4).random((grid.size, 3))
    y = a @ f
    K = _dense_gram(mapping, grid)
    G = a @ K @ a.T
    ridge = 1e-6 * float(np.mean(np.diag(G)))
    ref = K @ a.T @ np.linalg.solve(G + ridge * np.eye(len(G)), y)
    got, info = ntkspec.inverse_regression(
        ARCH, mapping, grid, op, y, ridge=ridge, rtol=1e-12, return_info=True
    )
    assert info.preconditioner == "kspace" and info.converged
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * np.abs(ref).max())
