"""kernel_regression against independent dense float64 solves written here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkspec
from ntkspec import mappings
from ntkspec.grid import Grid
from ntkspec.regression import (
    ConvergenceWarning,
    IllConditionedWarning,
    RegressionInfo,
    kernel_regression,
)

ARCH = ntkspec.ReluMLP(4)
GAUSS = mappings.gaussian(0, 2, 32, 4.0)


def dense_reference(arch, mapping, x_tr, y, x_te, ridge, kernel="ntk"):
    """numpy.linalg.solve on the Gram from ntkspec.ntk / nngp."""
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    f_tr, f_te = np.asarray(mapping(x_tr)), np.asarray(mapping(x_te))
    K = np.asarray(fn(arch, f_tr))
    Kt = np.asarray(fn(arch, f_te, f_tr))
    return Kt @ np.linalg.solve(K + ridge * np.eye(K.shape[0]), y), K, Kt


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_dense_matches_numpy_solve(rng, ridge, kernel):
    x, xt = rng.random((64, 2)), rng.random((24, 2))
    y = rng.standard_normal((64, 3))
    pred, info = kernel_regression(
        ARCH, GAUSS, x, y, xt, kernel=kernel, ridge=ridge, return_info=True
    )
    ref, _, _ = dense_reference(ARCH, GAUSS, x, y, xt, ridge, kernel)
    assert isinstance(pred, np.ndarray) and pred.dtype == np.float64
    assert pred.shape == (24, 3)
    assert rel_err(pred, ref) < 1e-8
    assert isinstance(info, RegressionInfo) and info.solver == "cholesky"
    assert info.converged and info.residual < 1e-12
    assert 1.0 < info.condition < 1e12


def test_one_dimensional_y_returns_vector(rng):
    x, xt = rng.random((64, 2)), rng.random((24, 2))
    y = rng.standard_normal(64)
    pred = kernel_regression(ARCH, GAUSS, x, y, xt)
    assert pred.shape == (24,)
    ref, _, _ = dense_reference(ARCH, GAUSS, x, y, xt, 0.0)
    np.testing.assert_allclose(pred, ref, rtol=1e-8, atol=1e-10)


def test_identity_mapping_dense(rng):
    x, xt = rng.random((64, 2)) + 0.1, rng.random((24, 2)) + 0.1
    y = rng.standard_normal((64, 2))
    arch = ntkspec.ReluMLP(3, b_std=0.1)
    m = mappings.identity(2)
    pred = kernel_regression(arch, m, x, y, xt, ridge=1e-3)
    ref, _, _ = dense_reference(arch, m, x, y, xt, 1e-3)
    assert rel_err(pred, ref) < 1e-8


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_blocked_matches_dense(rng, ridge):
    x, xt = rng.random((64, 2)), rng.random((24, 2))
    if ridge > 0:
        x[5] = x[3] + 1e-9  # a near-duplicate pair: the exact near-pair correction
    y = rng.standard_normal((64, 2))
    pred, info = kernel_regression(
        ARCH,
        GAUSS,
        x,
        y,
        xt,
        ridge=ridge,
        solver="blocked",
        block_rows=16,
        rtol=1e-11,
        return_info=True,
    )
    ref, _, _ = dense_reference(ARCH, GAUSS, x, y, xt, ridge)
    assert info.solver == "blocked" and info.converged and info.iterations > 0
    assert rel_err(pred, ref) < 1e-8


@pytest.mark.parametrize("block", [False, True])
def test_nngp_posterior_variance(rng, monkeypatch, block):
    if block:  # test-train kernel applied in blocks of 5 test rows (the last one short)
        monkeypatch.setattr(ntkspec.regression, "_PREDICT_BLOCK_ENTRIES", 5 * 64)
    x, xt = rng.random((64, 2)), rng.random((24, 2))
    y = rng.standard_normal(64)
    ridge = 1e-2
    pred, info = kernel_regression(
        ARCH, GAUSS, x, y, xt, kernel="ntk", ridge=ridge, return_variance=True
    )
    f_tr, f_te = np.asarray(GAUSS(x)), np.asarray(GAUSS(xt))
    K = np.asarray(ntkspec.nngp(ARCH, f_tr))
    Kt = np.asarray(ntkspec.nngp(ARCH, f_te, f_tr))
    Ktt = np.asarray(ntkspec.nngp(ARCH, f_te))
    ref = np.diag(Ktt - Kt @ np.linalg.solve(K + ridge * np.eye(64), Kt.T))
    np.testing.assert_allclose(info.variance, ref, rtol=1e-8, atol=1e-12)
    assert np.all(info.variance > 0)
    ref_mean, _, _ = dense_reference(ARCH, GAUSS, x, y, xt, ridge)
    np.testing.assert_allclose(pred, ref_mean, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "mapping, solver, ridge",
    [
        (GAUSS, "pcg", 0.0),
        (GAUSS, "pcg", 1e-3),
        (mappings.positional(2, 8, scale=3.0), "pcg", 0.0),
        (mappings.basic(2), "fft", 0.0),
        (mappings.basic(2), "fft", 1e-3),
    ],
    ids=["gauss-0", "gauss-1e-3", "posenc-0", "basic-0", "basic-1e-3"],
)
def test_grid_16_to_32_matches_dense(rng, mapping, solver, ridge):
    g_tr, g_te = Grid((16, 16)), Grid((32, 32))
    y = rng.standard_normal((256, 3))
    pred, info = kernel_regression(
        ARCH, mapping, g_tr, y, g_te, ridge=ridge, return_info=True
    )
    ref, _, _ = dense_reference(ARCH, mapping, g_tr.points(), y, g_te.points(), ridge)
    assert info.solver == solver and info.converged
    assert info.residual <= 1e-10
    assert rel_err(pred, ref) < 1e-6
    # the train pixels are reproduced (ridge 0: interpolation)
    if ridge == 0.0:
        train = np.arange(1024).reshape(32, 32)[::2, ::2].ravel()
        np.testing.assert_allclose(pred[train], y, rtol=0, atol=1e-8)


def test_new_grid_size_compiles_only_the_grid_programs(rng):
    # Issue 17: the structured path is a few jitted cores (grid build, T. Chan
    # eigenvalues, PCG, test-train matvec) and no eager op; the profile fit's exact
    # evaluation has one bucketed shape, so a second grid size with the same mapping
    # compiles at most those four programs. And it still matches the dense reference.
    import logging

    import jax

    compiled = []

    class _Count(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Finished XLA compilation"):
                compiled.append(msg.split(" of ")[1].split(" in ")[0])

    y8 = rng.standard_normal(64)
    kernel_regression(ARCH, GAUSS, Grid((8, 8)), y8, Grid((16, 16)))
    g_tr, g_te = Grid((10, 6)), Grid((20, 12))
    y = rng.standard_normal((60, 2))
    handler = _Count()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            pred = kernel_regression(ARCH, GAUSS, g_tr, y, g_te)
    finally:
        logger.removeHandler(handler)
    assert len(compiled) <= 4, compiled
    ref, _, _ = dense_reference(ARCH, GAUSS, g_tr.points(), y, g_te.points(), 0.0)
    assert rel_err(pred, ref) < 1e-6


def test_periodic_fft_equals_toeplitz_pcg(rng):
    m = mappings.power_law(8, 1.0, normalize=True)
    g_tr, g_te = Grid((16,)), Grid((48,))
    y = rng.standard_normal(16)
    a = kernel_regression(ARCH, m, g_tr, y, g_te, solver="fft")
    b = kernel_regression(ARCH, m, g_tr, y, g_te, solver="pcg", rtol=1e-13)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.max(np.abs(a)))


def test_solver_values_dispatch_on_the_structure(rng):
    # Strings are aliases of values: Eigh() is "fft", CG() is "pcg" on Grids.
    from ntkspec.solvers import CG, Cholesky, Eigh

    m = mappings.power_law(8, 1.0, normalize=True)
    g_tr, g_te = Grid((16,)), Grid((32,))
    y = rng.standard_normal(16)
    a, ia = kernel_regression(ARCH, m, g_tr, y, g_te, solver=Eigh(), return_info=True)
    b, ib = kernel_regression(ARCH, m, g_tr, y, g_te, solver="fft", return_info=True)
    c, ic = kernel_regression(
        ARCH, m, g_tr, y, g_te, solver=CG(rtol=1e-13), return_info=True
    )
    d, idd = kernel_regression(
        ARCH, m, g_tr, y, g_te, solver=Cholesky(), return_info=True
    )
    assert (ia.solver, ib.solver, ic.solver, idd.solver) == (
        "fft", "fft", "pcg", "cholesky"
    )  # fmt: skip
    np.testing.assert_array_equal(a, b)
    for other in (c, d):
        np.testing.assert_allclose(other, a, rtol=0, atol=1e-9 * np.max(np.abs(a)))
    with pytest.raises(ValueError, match="periodic"):
        kernel_regression(ARCH, GAUSS, Grid((4, 4)), y, Grid((8, 8)), solver=Eigh())


def test_grid_mixed_with_points_uses_dense(rng):
    g = Grid((8, 8))
    y = rng.standard_normal(64)
    xt = rng.random((5, 2))
    pred, info = kernel_regression(ARCH, GAUSS, g, y, xt, return_info=True)
    ref, _, _ = dense_reference(ARCH, GAUSS, g.points(), y, xt, 0.0)
    assert info.solver == "cholesky"
    assert rel_err(pred, ref) < 1e-8


def test_ill_conditioned_warns_and_stays_finite(rng):
    x = rng.random((59, 2))
    x = np.concatenate([x, x[:5]])  # exact duplicates: singular Gram
    y = rng.standard_normal(64)
    with pytest.warns(IllConditionedWarning, match="ridge"):
        pred, info = kernel_regression(ARCH, GAUSS, x, y, x[:24], return_info=True)
    assert np.all(np.isfinite(pred))
    assert info.condition > 1e12


def test_pcg_not_converged_warns(rng):
    g_tr, g_te = Grid((16, 16)), Grid((32, 32))
    y = rng.standard_normal(256)
    with pytest.warns(ConvergenceWarning, match="did not reach"):
        _, info = kernel_regression(
            ARCH,
            GAUSS,
            g_tr,
            y,
            g_te,
            max_iter=2,
            return_info=True,
        )
    assert not info.converged and info.iterations == 2 and info.residual > 1e-10


@settings(max_examples=6)
@given(
    n=st.sampled_from([24, 64]),
    seed=st.integers(0, 2**16),
    sigma=st.sampled_from([1.0, 3.0, 10.0]),
)
def test_interpolates_training_points(n, seed, sigma):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2))
    y = rng.standard_normal(n)
    m = mappings.gaussian(seed, 2, 32, sigma)
    K = np.asarray(ntkspec.ntk(ARCH, np.asarray(m(x))))
    if np.linalg.cond(K) > 1e8:
        return
    pred = kernel_regression(ARCH, m, x, y, x)
    np.testing.assert_allclose(pred, y, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ bad input


def test_bad_inputs(rng):
    x, y = rng.random((10, 2)), rng.standard_normal(10)
    with pytest.raises(ValueError, match="y_train has 9 rows"):
        kernel_regression(ARCH, GAUSS, x, y[:9], x)
    y_bad = y.copy()
    y_bad[2] = np.nan
    with pytest.raises(ValueError, match="y_train must be finite"):
        kernel_regression(ARCH, GAUSS, x, y_bad, x)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        kernel_regression(ARCH, GAUSS, x, y, x, ridge=-1.0)
    with pytest.raises(ValueError, match="kernel must be"):
        kernel_regression(ARCH, GAUSS, x, y, x, kernel="rbf")
    with pytest.raises(ValueError, match="solver must be"):
        kernel_regression(ARCH, GAUSS, x, y, x, solver="qr")
    with pytest.raises(ValueError, match="needs x_train and x_test as ntkspec.Grid"):
        kernel_regression(ARCH, GAUSS, x, y, x, solver="pcg")
    with pytest.raises(ValueError, match="dimension 3"):
        kernel_regression(ARCH, GAUSS, rng.random((10, 3)), y, x)
    with pytest.raises(TypeError, match="arch must be"):
        kernel_regression("mlp", GAUSS, x, y, x)


def test_incompatible_grid_says_what_is_allowed(rng):
    y = rng.standard_normal(64)
    with pytest.raises(ValueError, match="positive integer multiple"):
        kernel_regression(ARCH, GAUSS, Grid((8, 8)), y, Grid((12, 16)))
    with pytest.raises(ValueError, match="dimension"):
        kernel_regression(ARCH, GAUSS, Grid((8, 8)), y, Grid((16,)))


def test_dense_request_over_cap(rng):
    x, y = rng.random((200, 2)), rng.standard_normal(200)
    with pytest.raises(ValueError, match="memory cap"):
        kernel_regression(ARCH, GAUSS, x, y, x, solver="cholesky", max_bytes=1e5)
