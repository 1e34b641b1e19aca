"""The Krylov path of gd_dynamics on Toeplitz grids against a dense eigh here."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import ntkspec
from ntkspec import mappings
from ntkspec._numerics import x64_scope
from ntkspec.dynamics import gd_dynamics
from ntkspec.grid import Grid
from ntkspec.operators import DenseOperator, grid_operator
from ntkspec.solvers import ConvergenceWarning, lanczos_matfuns

ARCH = ntkspec.ReluMLP(3)
GAUSS = mappings.gaussian(1, 2, 32, 6.0)
G_TR, G_TE = Grid((10, 10)), Grid((20, 20))
RTOL, ATOL = 1e-8, 1e-8  # the target, relative to the largest value


def _dense_reference(y, f0, times, lr, discrete):
    """f_train, f_test by eigh of the dense Grams (kernels evaluated on points)."""
    x, xt = G_TR.points(), G_TE.points()
    f, ft = np.asarray(GAUSS(x)), np.asarray(GAUSS(xt))
    K = np.asarray(ntkspec.ntk(ARCH, f))
    Kt = np.asarray(ntkspec.ntk(ARCH, ft, f))
    lam, V = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    rate = lr / y.size
    r = V.T @ (y - f0)
    tr, te = [], []
    for t in times:
        dec = (1 - rate * lam) ** t if discrete else np.exp(-rate * t * lam)
        tr.append(y - V @ (dec[:, None] * r))
        te.append(Kt @ V @ (((1 - dec) / lam)[:, None] * r))
    return np.stack(tr), np.stack(te)


@pytest.fixture
def task():
    rng = np.random.default_rng(7)
    y = rng.standard_normal((G_TR.size, 3))
    f0 = 0.1 * rng.standard_normal((G_TR.size, 3))
    return y, f0


@pytest.mark.parametrize(
    "discrete, times", [(False, [3.0, 300.0, 3e4]), (True, [2, 50, 2000])]
)
def test_krylov_path_matches_dense_eigh(task, discrete, times):
    y, f0 = task
    lr = 1.0
    tr, te, info = gd_dynamics(
        ARCH, GAUSS, G_TR, y, G_TE, times, lr, f_train_0=f0, discrete=discrete,
        return_info=True,
    )  # fmt: skip
    ref_tr, ref_te = _dense_reference(y, f0, times, lr, discrete)
    assert info.method == "krylov" and info.converged
    assert 0 < info.krylov_dim <= G_TR.size and info.error_estimate <= 1e-10
    for got, ref in ((tr, ref_tr), (te, ref_te)):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL * scale)


def test_structured_path_taken_over_max_bytes(task):
    y, f0 = task
    times = [0.0, 100.0, np.inf]
    tiny = 1024.0  # far below the 80 kB dense train Gram
    tr, te, info = gd_dynamics(
        ARCH, GAUSS, G_TR, y, G_TE, times, 1.0, f_train_0=f0, max_bytes=tiny,
        return_info=True,
    )  # fmt: skip
    assert info.method == "krylov" and info.cg_iterations > 0
    with pytest.raises(ValueError, match="max_bytes|cap|GiB|memory"):
        gd_dynamics(
            ARCH, GAUSS, G_TR.points(), y, G_TE.points(), times, 1.0, max_bytes=tiny
        )
    d_tr, d_te = gd_dynamics(
        ARCH, GAUSS, G_TR.points(), y, G_TE.points(), times, 1.0, f_train_0=f0
    )
    np.testing.assert_allclose(tr, d_tr, rtol=0, atol=RTOL * np.abs(d_tr).max())
    np.testing.assert_allclose(te, d_te, rtol=0, atol=RTOL * np.abs(d_te).max())


def test_error_estimate_bounds_true_error():
    op = grid_operator(ARCH, GAUSS, G_TR)
    K = np.asarray(op.matvec(np.eye(G_TR.size)))
    lam, V = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    v = np.random.default_rng(1).standard_normal((G_TR.size, 2))
    s = 1e-2

    def phi(x):
        x = np.maximum(x, 0.0)
        return np.where(x > 0, -np.expm1(-s * x) / np.where(x > 0, x, 1), s)

    ref = V @ (phi(lam)[:, None] * (V.T @ v))
    for dim in (8, 16, 24, 32):
        for reorth in (True, False):
            (sol,) = lanczos_matfuns(
                op, [phi], v, max_dim=dim, check_every=4, reorthogonalize=reorth
            )
            err = np.max(
                np.linalg.norm(np.asarray(sol.value) - ref, axis=0)
                / np.linalg.norm(ref, axis=0)
            )
            est = float(sol.residual)
            assert err <= max(est, 1e-13), (dim, reorth, err, est)


def test_krylov_space_filling_a_small_grid_is_exact_not_a_missed_tolerance():
    """When the Krylov space reaches the whole train space the answer is exact.

    A 6 x 6 train grid at large times: the Lanczos run needs all 36 dimensions. It
    must detect the invariant space (error estimate ~0, converged, no warning), not
    report a missed rtol, and equal the dense eigh.
    """
    g_tr, g_te = Grid((6, 6)), Grid((12, 12))
    y = np.random.default_rng(3).standard_normal((g_tr.size, 2))
    times = [1e4, 1e6]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        tr, te, info = gd_dynamics(
            ARCH, GAUSS, g_tr, y, g_te, times, 1.0, return_info=True
        )
    assert info.method == "krylov" and info.converged
    assert info.krylov_dim == g_tr.size and info.error_estimate <= 1e-10
    f, ft = np.asarray(GAUSS(g_tr.points())), np.asarray(GAUSS(g_te.points()))
    lam, V = np.linalg.eigh(np.asarray(ntkspec.ntk(ARCH, f)))
    Kt = np.asarray(ntkspec.ntk(ARCH, ft, f))
    for k, t in enumerate(times):
        dec = np.exp(-t * lam / y.size)
        ref_tr = y - V @ (dec[:, None] * (V.T @ y))
        ref_te = Kt @ V @ ((-np.expm1(-t * lam / y.size) / lam)[:, None] * (V.T @ y))
        np.testing.assert_allclose(tr[k], ref_tr, rtol=0, atol=ATOL * np.abs(y).max())
        np.testing.assert_allclose(
            te[k], ref_te, rtol=0, atol=ATOL * np.abs(ref_te).max()
        )


def test_nonconvergence_warns_and_returns_best_iterate(task):
    y, f0 = task
    with pytest.warns(ConvergenceWarning, match="Krylov"):
        tr, te, info = gd_dynamics(
            ARCH, GAUSS, G_TR, y, G_TE, [3e4], 1.0, f_train_0=f0, max_krylov_dim=4,
            return_info=True,
        )  # fmt: skip
    assert not info.converged and info.krylov_dim == 4
    assert np.isfinite(info.error_estimate) and info.error_estimate > 1e-10
    assert np.all(np.isfinite(tr)) and np.all(np.isfinite(te))


def test_lanczos_matfuns_several_functions_one_run():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((80, 80)))
    lam = np.geomspace(1e-3, 10, 80)
    a = (q * lam) @ q.T

    with x64_scope(np.float64):
        dense = DenseOperator(jnp.asarray(a))
    v = rng.standard_normal((80, 3))
    fs = [lambda x, s=s: np.exp(-s * x) for s in (0.1, 1.0, 3.0)]
    sols = lanczos_matfuns(dense, fs, v, rtol=1e-12)
    for s, sol in zip((0.1, 1.0, 3.0), sols, strict=True):
        ref = q @ (np.exp(-s * lam)[:, None] * (q.T @ v))
        np.testing.assert_allclose(np.asarray(sol.value), ref, rtol=0, atol=1e-11)
        assert bool(sol.converged)
    with pytest.raises(TypeError, match="fs"):
        lanczos_matfuns(dense, [], v)


def test_discrete_gd_above_the_stability_limit(task):
    # The Krylov path checks stability as the dense and FFT paths do (issue 30, 6).
    y, _ = task
    K = np.asarray(ntkspec.ntk(ARCH, np.asarray(GAUSS(G_TR.points()))))
    lr = 2.5 * y.size / np.linalg.eigvalsh(K).max()
    with pytest.warns(RuntimeWarning, match="diverges.*stability limit 2 N_y"):
        gd_dynamics(ARCH, GAUSS, G_TR, y, G_TE, [3], lr, discrete=True)
    with pytest.raises(ValueError, match="stability limit"):
        gd_dynamics(ARCH, GAUSS, G_TR, y, G_TE, [np.inf], lr, discrete=True)
