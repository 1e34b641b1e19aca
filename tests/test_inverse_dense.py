"""The dense path of ``inverse_regression`` (A K A^T formed, solved exactly).

References are independent NumPy/SciPy computations of the same formulas from the
closed-form Gram (``ntkspec.ntk`` on the grid's features) and the dense matrix of A:

    f*  = K A^T (G + delta I)^{-1} y,                       G = A K A^T,
    f_t = K A^T V phi(Lambda) V^T y,   G + delta I = V Lambda V^T,
    phi = (1 - exp(-eta t lam)) / lam (flow),  (1 - (1 - eta lam)^k) / lam (k GD steps).

Tolerances: the dense path and the references differ only by rounding (the grid
operator's FFT K against the closed-form Gram, Cholesky against LU): 1e-10 relative,
with a ridge of 1e-3 of the mean diagonal bounding the condition number. The
iterative path agrees within its own tolerance, 1e-6 relative: CG stops at the relative
residual 1e-12, and Lanczos runs to the full Krylov dimension M (exact in exact
arithmetic) with rtol 1e-6 on its estimate (the change from M - 1 to M steps, which
bounds the older iterate, not this one).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntkspec
from ntkspec import measurements
from ntkspec._numerics import x64_scope

ARCH = ntkspec.ReluMLP(3)
GRID = ntkspec.Grid((8, 8))
MAPPING = ntkspec.mappings.gaussian(0, 2, 16, 2.0)
DENSE_RTOL = 1e-10
ITER_RTOL = 1e-6


def _matrix(op):
    op = measurements.as_measurement(op)
    with x64_scope(np.float64):
        cols = jax.vmap(op.forward, in_axes=1, out_axes=1)(jnp.eye(op.shape[1]))
    return np.asarray(cols, np.float64)


def _gram(mapping):
    return np.asarray(ntkspec.ntk(ARCH, np.asarray(mapping(GRID.points()))), float)


def _reference(k, a, y, ridge, *, time=None, steps=None, lr=1.0):
    g = a @ k @ a.T
    g = 0.5 * (g + g.T) + ridge * np.eye(len(g))
    if time is None and steps is None:
        return k @ a.T @ scipy.linalg.solve(g, y, assume_a="pos")
    lam, v = np.linalg.eigh(g)
    lam = np.clip(lam, 0.0, None)
    if time is not None:
        phi = -np.expm1(-lr * time * lam) / lam
    else:
        phi = (1.0 - (1.0 - lr * lam) ** steps) / lam
    y2 = y.reshape(len(g), -1)
    out = k @ a.T @ (v @ (phi[:, None] * (v.T @ y2)))
    return out.reshape((k.shape[0],) + y.shape[1:])


def _forwards():
    rng = np.random.default_rng(1)
    return {
        "ct": measurements.ct_projections(GRID.shape, num_angles=3),
        "dense": rng.standard_normal((20, GRID.size)),
        "kspace": measurements.mri_kspace(GRID.shape, num_samples=24, seed=0),
    }


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module", params=["ct", "dense", "kspace"])
def case(request):
    forward = _forwards()[request.param]
    a = _matrix(forward)
    k = _gram(MAPPING)
    f = np.random.default_rng(0).random(GRID.size)
    y = a @ f
    ridge = 1e-3 * float(np.mean(np.diag(a @ k @ a.T)))
    return forward, a, k, y, ridge


def _new_names(when):
    """The reference's time / steps as inverse_regression's times (+ discrete)."""
    if "steps" in when:
        return {"times": when["steps"], "discrete": True}
    return {"times": when["time"]} if "time" in when else {}


@pytest.mark.parametrize(
    "when", [{}, {"time": 3.0}, {"steps": 7}], ids=["inf", "flow", "gd"]
)
def test_dense_path_matches_numpy_formula(case, when):
    forward, a, k, y, ridge = case
    lr = 1.0 if "time" in when else 0.5 / np.linalg.eigvalsh(a @ k @ a.T)[-1]
    kw = dict(_new_names(when), learning_rate=lr) if when else {}
    got, info = ntkspec.inverse_regression(
        ARCH, MAPPING, GRID, forward, y, ridge=ridge, solver="dense",
        return_info=True, **kw,
    )  # fmt: skip
    want = _reference(k, a, y, ridge, lr=lr, **when)
    assert info.solver == ("cholesky" if not when else "eigh")
    assert _rel(got, want) <= DENSE_RTOL


@pytest.mark.parametrize("when", [{}, {"time": 3.0}], ids=["inf", "flow"])
def test_iterative_path_agrees_with_dense(case, when):
    forward, _, _, y, ridge = case
    m = y.shape[0]
    rtol = 1e-6 if when else 1e-12
    common = dict(ridge=ridge, rtol=rtol, krylov_dim=m, **_new_names(when))
    dense = ntkspec.inverse_regression(
        ARCH, MAPPING, GRID, forward, y, solver="dense", **common
    )
    it, info = ntkspec.inverse_regression(
        ARCH, MAPPING, GRID, forward, y, solver="iterative", return_info=True, **common
    )
    assert info.solver in ("cg", "pcg", "lanczos")
    assert _rel(it, dense) <= ITER_RTOL


def test_raw_coordinates_take_the_dense_path_by_default():
    """No FFT operator for raw coordinates: "auto" forms A K A^T (c columns of y)."""
    identity = ntkspec.mappings.identity()
    forward = measurements.ct_projections(GRID.shape, num_angles=3)
    a = _matrix(forward)
    k = _gram(identity)
    y = a @ np.random.default_rng(2).random((GRID.size, 2))
    ridge = 1e-3 * float(np.mean(np.diag(a @ k @ a.T)))
    got, info = ntkspec.inverse_regression(
        ARCH, identity, GRID, forward, y, ridge=ridge, return_info=True
    )
    assert info.solver == "cholesky" and got.shape == (GRID.size, 2)
    assert _rel(got, _reference(k, a, y, ridge)) <= DENSE_RTOL


def test_solver_argument_and_cap():
    forward = measurements.ct_projections(GRID.shape, num_angles=3)
    y = np.ones(forward.shape[0])
    with pytest.raises(ValueError, match="solver must be one of"):
        ntkspec.inverse_regression(ARCH, MAPPING, GRID, forward, y, solver="lu")
    with pytest.raises(ValueError, match="dense memory cap"):
        ntkspec.inverse_regression(
            ARCH, MAPPING, GRID, forward, y, solver="dense", max_bytes=1000
        )
    with pytest.raises(ValueError, match="needs the grid operator"):
        ntkspec.inverse_regression(
            ARCH, ntkspec.mappings.identity(), GRID, forward, y,
            solver="iterative", preconditioner="ct",
        )  # fmt: skip


def test_path_dense_matches_numpy_formula(case):
    forward, a, k, y, ridge = case
    times = [0.5, 3.0]
    got, infos = ntkspec.inverse.inverse_regression_path(
        ARCH, MAPPING, GRID, forward, y, times, ridge=ridge, learning_rate=2.0,
        solver="dense", return_info=True,
    )  # fmt: skip
    assert got.shape == (2, GRID.size) and infos[0].solver == "eigh"
    for t, f in zip(times, got, strict=True):
        assert _rel(f, _reference(k, a, y, ridge, time=t, lr=2.0)) <= DENSE_RTOL
