"""Shapes: Monte Carlo volume and IoU against closed forms, determinism, samplers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkspec import shapes
from ntkspec._numerics import x64_scope

N_MC = 2**17


def _within_5se(estimate, exact, p, n):
    se = math.sqrt(p * (1 - p) / n)
    assert abs(estimate - exact) <= 5 * se, (estimate, exact, se)


@pytest.mark.parametrize(
    "shape",
    [
        shapes.sphere(0.31),
        shapes.sphere(0.2, center=(0.4, 0.55, 0.6)),
        shapes.torus(0.28, 0.1),
        shapes.torus(0.3, 0.06, center=(0.5, 0.45, 0.5)),
    ],
)
def test_monte_carlo_volume_matches_closed_form(shape):
    x = shapes.uniform_points(N_MC, seed=3)
    frac = float(shapes.occupancy(shape, x).mean())
    _within_5se(frac, shape.exact_volume, shape.exact_volume, N_MC)


def test_iou_of_nested_shapes_matches_closed_form():
    x = shapes.uniform_points(N_MC, seed=4)
    # Concentric balls: IoU = (r1 / r2)^3; nested tori with one centre line: (r1/r2)^2.
    for inner, outer, exact in [
        (shapes.sphere(0.25), shapes.sphere(0.3), (0.25 / 0.3) ** 3),
        (shapes.torus(0.28, 0.07), shapes.torus(0.28, 0.1), (0.07 / 0.1) ** 2),
    ]:
        got = shapes.iou(shapes.occupancy(inner, x), shapes.occupancy(outer, x))
        n_union = int(shapes.occupancy(outer, x).sum())  # the union is the outer shape
        _within_5se(got, exact, exact, n_union)


def test_iou_exact_small_cases():
    assert shapes.iou([0.9, 0.2, 0.7, 0.1], [1, 1, 0, 0]) == pytest.approx(1 / 3)
    assert shapes.iou(np.array([True, False]), np.array([True, False])) == 1.0
    assert shapes.iou(np.zeros(5), np.zeros(5)) == 1.0
    assert shapes.iou([0.5, 0.51], [1, 1]) == 0.5  # 0.5 itself is outside (> 0.5)
    assert shapes.iou([0.3, 0.4], [1, 1], threshold=0.35) == 0.5


def test_shape_set_is_detailed_closed_and_seeded():
    x = shapes.uniform_points(2**15, seed=5)
    a, b, c = shapes.shape_set(0), shapes.shape_set(0), shapes.shape_set(1)
    assert len(a) >= 4 and a == b and a != c
    face = np.random.default_rng(6).random((3000, 3))
    face[:, 0] = np.round(face[:, 0])
    for s0, s1 in zip(a, c, strict=True):
        o0, o1 = shapes.occupancy(s0, x), shapes.occupancy(s1, x)
        assert 0.03 < o0.mean() < 0.5  # a solid of sensible size
        assert shapes.iou(o0, o1) < 0.95  # another seed gives another shape
        for axis in range(3):  # closed inside the box: nothing on its faces
            assert shapes.occupancy(s0, np.roll(face, axis, axis=1)).max() == 0.0


def test_numpy_and_jax_agree_and_jit():
    s = shapes.shape_set(0)[2]
    x = shapes.uniform_points(2000, seed=7)
    with x64_scope(np.float64):
        xj = jnp.asarray(x)
        got = jax.jit(lambda p: shapes.sdf(s, p))(xj)
        assert isinstance(got, jax.Array) and got.dtype == jnp.float64
        np.testing.assert_allclose(
            np.asarray(got), shapes.sdf(s, x), rtol=1e-12, atol=1e-14
        )


def test_surface_and_near_surface_points():
    ball = shapes.sphere(0.3)
    p = shapes.surface_points(ball, 5000, seed=0, resolution=64)
    r = np.linalg.norm(p - 0.5, axis=1)
    # Marching cubes on a grid of spacing h = 1/63 stays within h^2 / r of the sphere.
    assert np.abs(r - 0.3).max() < (1 / 63) ** 2 / 0.3
    # Area-uniform on a sphere: the z coordinate is uniform on [-r, r] (Archimedes).
    z = (p[:, 2] - 0.5) / 0.3
    assert abs(z.mean()) < 5 * math.sqrt(1 / 3 / 5000)
    assert abs((z**2).mean() - 1 / 3) < 5 * math.sqrt(4 / 45 / 5000)
    q = shapes.near_surface_points(ball, 20000, seed=0, resolution=64)
    d = np.linalg.norm(q - 0.5, axis=1) - 0.3
    assert abs(d.std() - 0.01) < 0.0005
    np.testing.assert_array_equal(
        q, shapes.near_surface_points(ball, 20000, seed=0, resolution=64)
    )


def test_bad_input():
    s = shapes.sphere()
    with pytest.raises(TypeError, match="shape must be a shapes.Shape"):
        shapes.occupancy("ball", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="points has 2 columns"):
        shapes.occupancy(s, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="points must be finite"):
        shapes.sdf(s, np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="radius must be > 0"):
        shapes.sphere(0.0)
    with pytest.raises(ValueError, match="major must be > minor"):
        shapes.torus(0.1, 0.2)
    with pytest.raises(ValueError, match="center must be 3 numbers"):
        shapes.sphere(0.2, center=(0.5, 0.5))
    with pytest.raises(ValueError, match="same shape"):
        shapes.iou(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="pred_occupancy contains NaN"):
        shapes.iou(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"true_occupancy must have shape \(n,\)"):
        shapes.iou(np.zeros(4), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_points must be an integer >= 1"):
        shapes.uniform_points(0)
    with pytest.raises(ValueError, match="resolution must be an integer >= 8"):
        shapes.surface_points(s, 10, resolution=4)
    with pytest.raises(ValueError, match="std must be >= 0"):
        shapes.near_surface_points(s, 10, std=-0.1)
    with pytest.raises(TypeError, match="seed"):
        shapes.shape_set(0.5)
