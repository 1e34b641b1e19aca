"""ntkspec.population: the population flow against a dense flow, and its clocks."""

import math

import numpy as np
import pytest

from ntkspec import Grid, ReluMLP, mappings, ntk
from ntkspec.population import (
    FlowTime,
    linearized_bce,
    population_flow,
    sgd_flow_time,
)

# float64 flow against float64 eigh: the Lanczos tolerance (1e-10 relative) and the
# two eigensolvers' rounding are far below this.
TOL = {"rtol": 0.0, "atol": 1e-8}
ARCH = ReluMLP(3)
GRID = Grid((6, 6, 6))


def _dense_flow(mapping, y, times, eta, discrete=False):
    """Reference: K / N by numpy eigh, then the closed form per time (f(0) = 0)."""
    x = GRID.points()
    K = np.asarray(ntk(ARCH, np.asarray(mapping(x)), progress=False), np.float64)
    lam, V = np.linalg.eigh(K / x.shape[0])
    r = V.T @ y
    out = []
    for t in times:
        if discrete:
            d = (1.0 - eta * lam) ** t
        elif np.isinf(t):
            d = np.where(lam > 1e-12 * lam[-1], 0.0, 1.0)
        else:
            d = np.exp(-eta * t * lam)
        out.append(y - V @ (d[:, None] * r))
    return np.stack(out)


def _targets():
    p = GRID.points()
    occ = (np.linalg.norm(p - 0.45, axis=1) < 0.3).astype(np.float64)
    return np.stack([occ - 0.5, np.sin(2 * np.pi * p[:, 0]) * p[:, 1]], axis=1)


@pytest.mark.parametrize(
    ("name", "mapping", "method"),
    [
        ("gaussian", mappings.gaussian(0, 3, 16, 2.0), "krylov"),
        ("none", mappings.identity(3, offset=0.5), "dense"),
    ],
)
def test_population_flow_matches_dense_flow(name, mapping, method):
    y = _targets()
    times = [0.0, 0.3, 3.0, 30.0]
    f, info = population_flow(ARCH, mapping, GRID, y, times, 0.7, return_info=True)
    assert info.method == method
    ref = _dense_flow(mapping, y, times, 0.7)
    np.testing.assert_allclose(f, ref, **TOL)
    # one channel alone evolves the same (time is per point, not per target value)
    f1 = population_flow(ARCH, mapping, GRID, y[:, 1], times, 0.7)
    np.testing.assert_allclose(f1, ref[..., 1], **TOL)


def test_population_flow_discrete_is_gd_on_k_over_n():
    mapping = mappings.gaussian(0, 3, 16, 2.0)
    y = _targets()
    f = population_flow(ARCH, mapping, GRID, y, [0, 1, 7], 0.5, discrete=True)
    np.testing.assert_allclose(
        f, _dense_flow(mapping, y, [0, 1, 7], 0.5, discrete=True), **TOL
    )


def test_population_flow_refuses_points():
    with pytest.raises(TypeError, match="grid must be an ntkspec.Grid"):
        population_flow(ARCH, mappings.basic(3), GRID.points(), np.zeros(216), 1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        population_flow(ARCH, mappings.basic(3), GRID, np.zeros(216), 1.0, 0.0)


def test_linearized_bce_hand_case():
    targets, rate = linearized_bce(np.array([[0.0, 1.0], [0.25, 0.5]]), 0.2)
    np.testing.assert_array_equal(targets, [[-2.0, 2.0], [-1.0, 0.0]])
    assert rate == 0.05
    # the BCE gradient sigma(z) - y against 1/4 (z - (4y - 2)) at small z: O(z^3)
    z = 1e-3
    for y, yt in ((0.0, -2.0), (1.0, 2.0)):
        exact = 1.0 / (1.0 + math.exp(-z)) - y
        assert abs(exact - 0.25 * (z - yt)) < z**3
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        linearized_bce([1.5])
    with pytest.raises(ValueError, match="learning_rate"):
        linearized_bce([1.0], -1.0)


def test_sgd_flow_time_hand_cases():
    # 2000 steps at lr 0.05 on 1/(2B) sum: t = 2000 * 0.05 = 100; eta / B = 0.05 / 4096
    assert sgd_flow_time(2000, 0.05, 4096) == FlowTime(100.0, 0.05 / 4096)
    # the batch changes only the noise scale
    assert sgd_flow_time(2000, 0.05, 1).time == 100.0
    # 1/B sum (no 1/2) doubles the gradient: t = 2 * 300 * 0.1 = 60, noise 0.2 / 32
    assert sgd_flow_time(300, 0.1, 32, loss="mean") == FlowTime(60.0, 0.2 / 32)
    # a BCE run at lr 1e-2 for 1000 steps: rate 1e-2 / 4, so t = 2.5
    _, rate = linearized_bce([1.0], 1e-2)
    assert sgd_flow_time(1000, rate, 8).time == pytest.approx(2.5, rel=1e-15)
    with pytest.raises(ValueError, match="loss"):
        sgd_flow_time(1, 1.0, 1, loss="sum")
    with pytest.raises(TypeError, match="steps"):
        sgd_flow_time(1.5, 1.0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        sgd_flow_time(1, 1.0, 0)


def test_population_flow_large_times_plain_recurrence():
    # max_krylov_dim below N: gd_dynamics runs the plain Lanczos recurrence (no
    # reorthogonalisation) and stops by its estimate; flow times to 1e6 (where the
    # occupancy's slow modes are fitted) against the dense eigh flow.
    mapping = mappings.gaussian(0, 3, 16, 2.0)
    y = _targets()[:, 0]
    times = [1e2, 1e4, 1e6]
    f, info = population_flow(
        ARCH, mapping, GRID, y, times, return_info=True, max_krylov_dim=150
    )
    assert info.method == "krylov" and info.converged and info.krylov_dim < 150
    np.testing.assert_allclose(f, _dense_flow(mapping, y[:, None], times, 1.0)[..., 0],
                               **TOL)  # fmt: skip


def test_population_flow_krylov_basis_within_max_bytes():
    mapping = mappings.gaussian(0, 3, 16, 2.0)
    y = _targets()  # N = 216, c = 2: one basis vector pair is 8 * 216 * 2 bytes
    with pytest.raises(ValueError, match="max_bytes"):
        population_flow(ARCH, mapping, GRID, y, 1.0, max_bytes=8.0 * 216 * 2)
    # a cap of 6 vectors lowers the dimension to 6 and reports the missed rtol
    from ntkspec.solvers import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="max_krylov_dim=6"):
        _, info = population_flow(
            ARCH, mapping, GRID, y, 30.0, max_bytes=8.0 * 216 * 2 * 6, return_info=True
        )
    assert info.krylov_dim == 6 and not info.converged
