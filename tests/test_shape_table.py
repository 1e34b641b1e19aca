"""The 3D shape column of Table 1 (issue 15): NTK occupancy on grids, IoU on points."""

import json

import numpy as np
import pytest

import ntkspec
from ntkspec import shapes
from ntkspec.studies import shape_table

ARCH = ntkspec.ReluMLP(8, W_std=1.0, b_std=0.0, parameterization="standard", width=256)


def _dense_ntk(mapping, x1, x2):
    return np.asarray(
        ntkspec.ntk(ARCH, np.asarray(mapping(x1)), np.asarray(mapping(x2))),
        np.float64,
    )


@pytest.mark.parametrize(
    "mapping",
    [
        ntkspec.mappings.gaussian(0, 3, 64, 3.0),
        ntkspec.mappings.positional(3, 8, scale=2.0),
        ntkspec.mappings.basic(3),
    ],
    ids=["gaussian", "positional", "basic"],
)
def test_occupancy_prediction_matches_dense_formula(mapping):
    """Train on 4^3 (every other node), predict 8^3: K_*X K_XX^{-1} y densely."""
    solid = shapes.sphere(0.3)
    train, test = ntkspec.Grid((4, 4, 4)), ntkspec.Grid((8, 8, 8))
    y = shapes.occupancy(solid, train.points())
    k_xx = _dense_ntk(mapping, train.points(), train.points())
    k_tx = _dense_ntk(mapping, test.points(), train.points())
    ref = k_tx @ np.linalg.solve(k_xx, y)
    got = ntkspec.kernel_regression(ARCH, mapping, train, y, test, rtol=1e-12)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    # The train nodes are test[::2, ::2, ::2]: interpolation reproduces y there.
    np.testing.assert_allclose(
        got.reshape(8, 8, 8)[::2, ::2, ::2].reshape(-1), y, rtol=0, atol=1e-7
    )


def test_budget_prediction_matches_dense_formula():
    """10,000 GD steps on 0.5 ||f - y||^2 at eta = 1 / lambda_max, densely."""
    mapping = ntkspec.mappings.gaussian(1, 3, 64, 3.0)
    solid = shapes.torus(0.28, 0.1)
    train, test = ntkspec.Grid((4, 4, 4)), ntkspec.Grid((8, 8, 8))
    y = shapes.occupancy(solid, train.points())
    k_xx = _dense_ntk(mapping, train.points(), train.points())
    k_tx = _dense_ntk(mapping, test.points(), train.points())
    lam, V = np.linalg.eigh(k_xx)
    eta = 1.0 / (1.01 * lam.max())
    k = 10_000
    ref = k_tx @ (V @ ((1.0 - (1.0 - eta * lam) ** k) / lam * (V.T @ y)))
    _, got = ntkspec.gd_dynamics(
        ARCH, mapping, train, y, test, [k], eta * y.size, discrete=True, rtol=1e-11
    )
    np.testing.assert_allclose(got[0], ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())


@pytest.mark.parametrize(
    ("pred_shape", "true_shape", "exact"),
    [
        (shapes.sphere(0.25), shapes.sphere(0.3), (0.25 / 0.3) ** 3),
        (shapes.torus(0.28, 0.08), shapes.torus(0.28, 0.1), (0.08 / 0.1) ** 2),
    ],
    ids=["spheres", "tori"],
)
def test_grid_iou_of_nested_shapes_matches_closed_form(pred_shape, true_shape, exact):
    """IoU of nested solids is the volume ratio (r1/r2)^3 or (r1/r2)^2."""
    n = 64
    pred = shapes.occupancy(pred_shape, ntkspec.Grid((n, n, n)).points())
    pts = shapes.uniform_points(2**17, seed=3)
    got = shape_table.grid_iou_scores(
        pred.reshape(n, n, n),
        true_shape,
        {"u": (pts, shapes.occupancy(true_shape, pts))},
    )
    # Monte Carlo (2^17 points: std ~ 0.004) plus the grid's h = 1/64 boundary.
    assert abs(got["u"] - exact) < 0.025
    assert abs(got["heldout_nodes"] - exact) < 0.025


def test_quick_run_writes_table_and_figure(tmp_path):
    out = shape_table.run(tmp_path, quick=True, command="pytest")
    data = json.loads((tmp_path / "shape_table.json").read_text())
    assert (tmp_path / "shape_table.png").stat().st_size > 0
    assert out["json"].endswith("shape_table.json")
    rows = {r[0]: r for r in data["tables"][0]["rows"]}
    assert set(shape_table.PAPER_SHAPE) <= set(rows)
    for name in shape_table.QUICK_MAPPINGS:
        assert all(0.0 <= v <= 1.0 for v in rows[name][2:6])
    assert rows["gaussian"][-1] == {"mean": 0.973, "std": 0.002}
    assert data["reduced_for_report"]
    with pytest.raises(ValueError, match="size"):
        shape_table.run(tmp_path, size="huge")
