"""gd_dynamics against eigh + exp and explicit GD loops written here."""

import numpy as np
import pytest
import scipy.linalg

import ntkspec
from ntkspec import dynamics as dyn
from ntkspec import mappings
from ntkspec.dynamics import eigenmode_residuals, gd_dynamics, gradient_flow
from ntkspec.grid import Grid
from ntkspec.regression import kernel_regression

ARCH = ntkspec.ReluMLP(4)
GAUSS = mappings.gaussian(0, 2, 32, 4.0)
N_TR, N_TE = 64, 24


def kernels(mapping, x, xt, kernel="ntk"):
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    f, ft = np.asarray(mapping(x)), np.asarray(mapping(xt))
    return np.asarray(fn(ARCH, f)), np.asarray(fn(ARCH, ft, f))


@pytest.fixture
def problem(rng):
    x, xt = rng.random((N_TR, 2)), rng.random((N_TE, 2))
    y = rng.standard_normal((N_TR, 3))
    f0 = 0.1 * rng.standard_normal((N_TR, 3))
    ft0 = 0.1 * rng.standard_normal((N_TE, 3))
    return x, xt, y, f0, ft0


@pytest.mark.parametrize("ridge", [0.0, 1e-2])
def test_continuous_matches_expm(problem, ridge):
    x, xt, y, f0, ft0 = problem
    times = np.array([0.0, 0.5, 3.0, 40.0])
    lr = 2.0
    f_tr, f_te = gd_dynamics(
        ARCH, GAUSS, x, y, xt, times, lr, ridge=ridge, f_train_0=f0, f_test_0=ft0
    )
    K, Kt = kernels(GAUSS, x, xt)
    A = K + ridge * np.eye(N_TR)
    assert f_tr.shape == (4, N_TR, 3) and f_te.shape == (4, N_TE, 3)
    for i, t in enumerate(times):
        E = scipy.linalg.expm(-lr * t * A / y.size)  # N_y = y.size = 3 n
        ref_tr = y + E @ (f0 - y)
        ref_te = ft0 + Kt @ np.linalg.solve(A, (np.eye(N_TR) - E) @ (y - f0))
        np.testing.assert_allclose(f_tr[i], ref_tr, rtol=0, atol=1e-10)
        np.testing.assert_allclose(f_te[i], ref_te, rtol=0, atol=1e-10)


@pytest.mark.parametrize("times_per_block", [1, 2, None])
def test_gradient_flow_on_a_clustered_spectrum_matches_expm(
    rng, monkeypatch, times_per_block
):
    # the eigendecomposition (MRRR) on a Gram with a tight cluster, a repeated
    # eigenvalue and a condition number 1e8, against expm and a dense solve; times
    # one, two (blocks 2, 2, 1 with t = inf in the last) or all per matrix product
    n, nt = 90, 30
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.sort(
        np.concatenate(
            [np.logspace(-6, 2, n - 20), 1e-2 * (1 + 1e-13 * np.arange(10)), [3.0] * 10]
        )
    )
    K = (q * lam) @ q.T
    K = 0.5 * (K + K.T)
    Kt = rng.standard_normal((nt, n)) @ K / n
    y = rng.standard_normal((n, 2))
    if times_per_block is not None:
        monkeypatch.setattr(dyn, "_BATCH_BYTES", 8.0 * 2 * n * times_per_block)
    times = np.array([0.0, 1.0, 1e3, 1e6, np.inf])
    f_tr, f_te = gradient_flow(K, y, Kt, times, 2.0)
    for i, t in enumerate(times):
        E = 0 * K if np.isinf(t) else scipy.linalg.expm(-2.0 * t * K / y.size)
        ref_te = Kt @ np.linalg.solve(K, (np.eye(n) - E) @ y)
        np.testing.assert_allclose(f_tr[i], y - E @ y, rtol=0, atol=1e-10)
        np.testing.assert_allclose(f_te[i], ref_te, rtol=0, atol=1e-8)


def test_discrete_matches_gd_loop(problem):
    x, xt, y, f0, ft0 = problem
    K, Kt = kernels(GAUSS, x, xt)
    lam_max = np.linalg.eigvalsh(K)[-1]
    lr = 1.5 * y.size / lam_max  # below the stability limit 2 N_y / lam_max
    steps = [0, 1, 7, 30]
    f_tr, f_te = gd_dynamics(
        ARCH, GAUSS, x, y, xt, steps, lr, f_train_0=f0, f_test_0=ft0, discrete=True
    )
    f, g = f0.copy(), ft0.copy()
    for k in range(31):
        if k in steps:
            i = steps.index(k)
            np.testing.assert_allclose(f_tr[i], f, rtol=0, atol=1e-10)
            np.testing.assert_allclose(f_te[i], g, rtol=0, atol=1e-10)
        grad = (lr / y.size) * (f - y)
        f, g = f - K @ grad, g - Kt @ grad


def test_infinite_time_equals_kernel_regression(problem):
    x, xt, y, _, _ = problem
    for ridge in (0.0, 1e-3):
        f_tr, f_te = gd_dynamics(ARCH, GAUSS, x, y, xt, [np.inf, 1e9], 1.0, ridge=ridge)
        krr = kernel_regression(ARCH, GAUSS, x, y, xt, ridge=ridge)
        np.testing.assert_allclose(f_te[0], krr, rtol=0, atol=1e-9)
        np.testing.assert_allclose(f_te[1], krr, rtol=0, atol=1e-6)
        np.testing.assert_allclose(f_tr[0], y, rtol=0, atol=1e-12)


def test_loss_normalisation_counts_values_not_points(problem):
    """With c identical columns, N_y = c n: like one column at learning rate lr / c."""
    x, xt, y, _, _ = problem
    y1 = y[:, :1]
    y3 = np.repeat(y1, 3, axis=1)
    t = [0.7, 5.0]
    a_tr, a_te = gd_dynamics(ARCH, GAUSS, x, y3, xt, t, 3.0)
    b_tr, b_te = gd_dynamics(ARCH, GAUSS, x, y1, xt, t, 1.0)
    np.testing.assert_allclose(a_tr[..., 1], b_tr[..., 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_te[..., 2], b_te[..., 0], rtol=0, atol=1e-12)


def test_one_dimensional_y_and_nngp(problem):
    x, xt, y, _, _ = problem
    f_tr, f_te = gd_dynamics(ARCH, GAUSS, x, y[:, 0], xt, 2.0, 1.0, kernel="nngp")
    assert f_tr.shape == (1, N_TR) and f_te.shape == (1, N_TE)
    K, Kt = kernels(GAUSS, x, xt, "nngp")
    lam, V = np.linalg.eigh(K)
    decay = np.exp(-2.0 * lam / N_TR)
    ref_te = Kt @ V @ (((1 - decay) / lam) * (V.T @ y[:, 0]))
    np.testing.assert_allclose(f_te[0], ref_te, rtol=0, atol=1e-10)


def test_periodic_grid_path_matches_dense():
    m = mappings.power_law(8, 1.0, normalize=True)
    g_tr, g_te = Grid((16,)), Grid((64,))
    rng = np.random.default_rng(3)
    y = rng.standard_normal((16, 2))
    f0 = 0.1 * rng.standard_normal((16, 2))
    t = [0.0, 1.0, 30.0, np.inf]
    a_tr, a_te = gd_dynamics(ARCH, m, g_tr, y, g_te, t, 4.0, f_train_0=f0, ridge=1e-3)
    b_tr, b_te = gd_dynamics(
        ARCH, m, g_tr.points(), y, g_te.points(), t, 4.0, f_train_0=f0, ridge=1e-3
    )
    np.testing.assert_allclose(a_tr, b_tr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a_te, b_te, rtol=0, atol=1e-10)


def test_eigenmode_residuals(problem):
    x, _, y, f0, _ = problem
    t = np.array([0.0, 2.0, 9.0])
    modes = eigenmode_residuals(ARCH, GAUSS, x, y, t, 1.0, f_train_0=f0)
    f_tr, _ = gd_dynamics(ARCH, GAUSS, x, y, x[:2], t, 1.0, f_train_0=f0)
    for i in range(t.size):
        np.testing.assert_allclose(
            modes.eigenvectors @ modes.residual[i], f_tr[i] - y, rtol=0, atol=1e-10
        )
    np.testing.assert_allclose(
        modes.decay[1], np.exp(-2.0 * modes.eigenvalues / y.size), rtol=1e-14
    )
    assert modes.rate == pytest.approx(1.0 / y.size)


def test_eigenmode_residuals_top_k_by_lanczos_matches_dense(rng, monkeypatch):
    """k modes on a non-periodic Grid: block Lanczos on the FFT matvec, no dense Gram.

    Checked against the dense path (every mode by eigh) on the same grid: the top k
    eigenvalues, and the residual carried by those modes in pixel space (invariant to
    the eigenvectors' signs), within 1e-8.
    """
    grid, k = Grid((12, 12)), 7
    y = rng.standard_normal((grid.size, 3))
    f0 = 0.1 * rng.standard_normal((grid.size, 3))
    t = np.array([0.0, 5.0, 50.0])
    args = (ARCH, GAUSS, grid, y, t, 1.0)
    dense = eigenmode_residuals(*args, f_train_0=f0, ridge=1e-3)
    lam = dense.eigenvalues
    assert (lam[-k] - lam[-k - 1]) > 3e-3 * lam[-1]  # the top-k space is well defined

    def no_dense(*a, **kw):
        raise AssertionError("the k path must not form the dense Gram")

    monkeypatch.setattr(ntkspec.dynamics, "dense_gram", no_dense)
    top = eigenmode_residuals(*args, f_train_0=f0, ridge=1e-3, k=k)
    assert top.eigenvectors.shape == (grid.size, k)
    assert top.initial.shape == (k, 3) and top.decay.shape == (t.size, k)
    assert top.residual.shape == (t.size, k, 3)
    assert np.all(np.diff(top.eigenvalues) >= 0)  # ascending, as the dense path
    np.testing.assert_allclose(top.eigenvalues, lam[-k:], rtol=1e-8, atol=0)
    np.testing.assert_allclose(
        top.eigenvectors.T @ top.eigenvectors, np.eye(k), rtol=0, atol=1e-8
    )
    for i in range(t.size):
        want = dense.eigenvectors[:, -k:] @ dense.residual[i, -k:]
        got = top.eigenvectors @ top.residual[i]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-8 * np.abs(want).max())
    np.testing.assert_allclose(top.decay, dense.decay[:, -k:], rtol=1e-8, atol=0)
    assert top.rate == dense.rate
    with pytest.raises(ValueError, match="k"):
        eigenmode_residuals(*args, k=0)


def test_gradient_flow_on_kernels_matches_closed_form(rng):
    A = rng.standard_normal((10, 10))
    K = A @ A.T + 0.1 * np.eye(10)
    Kt = rng.standard_normal((4, 10))
    y = rng.standard_normal(10)
    f_tr, f_te = gradient_flow(K, y, Kt, [1.0], 0.5)
    E = scipy.linalg.expm(-0.5 * K / 10)
    np.testing.assert_allclose(f_tr[0], y - E @ y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        f_te[0], Kt @ np.linalg.solve(K, y - E @ y), rtol=0, atol=1e-10
    )


def test_bad_inputs(problem):
    x, xt, y, f0, _ = problem
    with pytest.raises(ValueError, match="times must be >= 0"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [-1.0], 1.0)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [1.0], -1.0)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [1.0], 1.0, ridge=-1e-3)
    with pytest.raises(ValueError, match="whole numbers"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [1.5], 1.0, discrete=True)
    with pytest.raises(ValueError, match="y_train has"):
        gd_dynamics(ARCH, GAUSS, x, y[:-1], xt, [1.0], 1.0)
    with pytest.raises(ValueError, match="f_train_0 must have shape"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [1.0], 1.0, f_train_0=f0[:-1])
    with pytest.raises(ValueError, match="positive integer multiple"):
        gd_dynamics(ARCH, GAUSS, Grid((4, 4)), y[:16], Grid((6, 8)), [1.0], 1.0)
    with pytest.raises(ValueError, match="memory cap"):
        gd_dynamics(ARCH, GAUSS, x, y, xt, [1.0], 1.0, max_bytes=1e3)


@pytest.mark.parametrize("discrete", [False, True])
def test_periodic_grid_path_1d_targets_and_info_against_eigh(discrete):
    # 1-D y on the FFT path: shapes (T, n), values against eigh + filters written here
    m = mappings.power_law(8, 1.0, normalize=True)
    g_tr, g_te = Grid((16,)), Grid((32,))
    y = np.random.default_rng(5).standard_normal(16)
    t = np.array([0.0, 3.0, 20.0])
    lr = 2.0
    f_tr, f_te, info = gd_dynamics(
        ARCH, m, g_tr, y, g_te, t, lr, discrete=discrete, return_info=True
    )
    assert info.method == "fft" and f_tr.shape == (3, 16) and f_te.shape == (3, 32)
    K, Kt = kernels(m, g_tr.points(), g_te.points())
    lam, V = np.linalg.eigh(K)
    rate = lr / y.size
    for i, ti in enumerate(t):
        decay = (1 - rate * lam) ** ti if discrete else np.exp(-rate * ti * lam)
        np.testing.assert_allclose(
            f_tr[i], y - V @ (decay * (V.T @ y)), rtol=0, atol=1e-10
        )
        np.testing.assert_allclose(
            f_te[i], Kt @ V @ ((1 - decay) / lam * (V.T @ y)), rtol=0, atol=1e-10
        )
    dense = gd_dynamics(ARCH, m, g_tr.points(), y, g_te.points(), t, lr,
                        discrete=discrete, return_info=True)  # fmt: skip
    assert dense[2].method == "dense"
    np.testing.assert_allclose(dense[0], f_tr, rtol=0, atol=1e-10)
