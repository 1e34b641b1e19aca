"""Tests for ntkspec.mappings against formulas written out here in NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkspec import FourierMapping, mappings


def _features_np(B, a, v):
    phase = 2 * np.pi * v @ B.T
    return np.concatenate([a * np.cos(phase), a * np.sin(phase)], axis=1)


def test_call_matches_formula(rng):
    B, a, v = rng.normal(size=(7, 3)) * 4, rng.random(7), rng.random((5, 3))
    got = FourierMapping(B, a)(v)
    assert got.shape == (5, 14) and got.dtype == jnp.float64
    np.testing.assert_allclose(got, _features_np(B, a, v), rtol=1e-13, atol=1e-14)


def test_tau_is_the_feature_inner_product(rng):
    m = mappings.gaussian(3, 2, 32, 6.0)
    v1, v2 = rng.random((9, 2)), rng.random((9, 2))
    f1, f2 = np.asarray(m(v1)), np.asarray(m(v2))
    inner = np.sum(f1 * f2, axis=1)
    np.testing.assert_allclose(m.tau(v1 - v2), inner, rtol=1e-12, atol=1e-12)
    assert math.isclose(m.norm_sq, float(np.sum(f1[0] ** 2)), rel_tol=1e-13)


def test_sin2_half_angle_is_stable_near_zero(rng):
    m = mappings.gaussian(4, 2, 16, 3.0)
    B, a2 = np.asarray(m.B), np.asarray(m.a) ** 2
    delta = rng.normal(size=(6, 2)) * 1e-9
    # two-term Taylor series of sin^2, exact to ~1e-16 relative at |pi b.delta| ~ 1e-8
    x = np.pi * delta @ B.T
    series = (x**2 * (1 - x**2 / 3)) @ a2 / a2.sum()
    np.testing.assert_allclose(m.sin2_half_angle(delta), series, rtol=1e-13)
    assert float(m.sin2_half_angle(np.zeros((1, 2)))[0]) == 0.0
    d = rng.random((20, 2))
    np.testing.assert_allclose(
        m.sin2_half_angle(d),
        (1 - np.asarray(m.tau(d)) / m.norm_sq) / 2,
        rtol=1e-10,
        atol=1e-14,
    )


def test_basic_and_identity():
    m = mappings.basic(2)
    np.testing.assert_array_equal(m.B, np.eye(2))
    np.testing.assert_array_equal(m.a, np.ones(2))
    assert m.is_periodic and m.out_dim == 4
    ident = mappings.identity(2, offset=0.5)
    v = np.array([[0.25, 1.0]])
    np.testing.assert_array_equal(ident(v), v - 0.5)
    assert ident(v).dtype == jnp.float64
    assert not ident.is_stationary and not ident.is_periodic


def test_positional_paper_and_official_forms():
    m = mappings.positional(2, 4, sigma=16.0)
    freqs = 16.0 ** (np.arange(4) / 4)  # sigma^(j/m), j = 0..m-1
    expected = np.zeros((8, 2))
    expected[:4, 0] = freqs
    expected[4:, 1] = freqs
    np.testing.assert_allclose(m.B, expected, rtol=1e-15)
    off = mappings.positional(2, 3, scale=6.0)
    np.testing.assert_allclose(off.B[:3, 0], [0.0, 2.0**3 - 1, 63.0], rtol=1e-15)
    np.testing.assert_array_equal(off.B[:3, 1], 0.0)
    assert off.num_freqs == 6


def test_gaussian_seeded_and_scaled():
    a = mappings.gaussian(5, 2, 4000, 10.0)
    b = mappings.gaussian(jax.random.PRNGKey(5), 2, 4000, 10.0)
    np.testing.assert_array_equal(a.B, b.B)
    assert a.B.shape == (4000, 2) and not a.is_periodic
    # sample std of 8000 N(0, 100) draws: within 5 standard errors (sigma / sqrt(2n))
    assert abs(np.std(a.B) - 10.0) < 5 * 10.0 / math.sqrt(2 * 8000)


def test_gaussian_draw_independent_of_callers_config():
    a = mappings.gaussian(7, 2, 8, 1.0)
    with jax.enable_x64(False):
        b = mappings.gaussian(7, 2, 8, 1.0)
    np.testing.assert_array_equal(a.B, b.B)
    with jax.enable_x64(False):
        assert a(np.ones((2, 2))).dtype == jnp.float64


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 2.0])
def test_power_law(p):
    m = mappings.power_law(16, p)
    j = np.arange(1, 17)
    np.testing.assert_allclose(m.a, j ** (-p), rtol=1e-15)
    np.testing.assert_array_equal(m.B[:, 0], j)
    assert m.is_periodic
    n = mappings.power_law(16, p, normalize=True)
    assert math.isclose(float(np.linalg.norm(n.a)), 1.0, rel_tol=1e-14)


def test_power_law_infinity_is_basic():
    m = mappings.power_law(8, math.inf)
    np.testing.assert_array_equal(m.a, np.eye(8)[0])
    v = np.array([[0.1], [0.7]])
    f = np.asarray(m(v))
    np.testing.assert_allclose(
        f[:, [0, 8]], np.asarray(mappings.basic(1)(v)), atol=1e-15
    )


def test_mapping_is_a_pytree(rng):
    m = mappings.gaussian(0, 2, 5, 2.0)
    leaves, tree = jax.tree_util.tree_flatten(m)
    assert len(leaves) == 2
    m2 = jax.tree_util.tree_unflatten(tree, leaves)
    v = rng.random((3, 2))
    with jax.enable_x64(True):
        jitted = jax.jit(lambda mp, x: mp(x))(m2, jnp.asarray(v))
    np.testing.assert_allclose(jitted, m(v), rtol=1e-14)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), shift=st.integers(-5, 5))
def test_tau_symmetric_bounded_and_periodic(seed, shift):
    rng = np.random.default_rng(seed)
    m = mappings.power_law(8, 1.0)
    d = rng.normal(size=(6, 1))
    t = np.asarray(m.tau(d))
    np.testing.assert_allclose(np.asarray(m.tau(-d)), t, rtol=1e-13, atol=1e-14)
    assert np.all(np.abs(t) <= m.norm_sq * (1 + 1e-14))
    np.testing.assert_allclose(np.asarray(m.tau(d + shift)), t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "build,exc,match",
    [
        (
            lambda: FourierMapping(np.ones(3), np.ones(3)),
            ValueError,
            "B must have shape",
        ),
        (
            lambda: FourierMapping(np.ones((3, 2)), np.ones(2)),
            ValueError,
            "a must have",
        ),
        (
            lambda: FourierMapping(np.full((1, 1), np.nan), np.ones(1)),
            ValueError,
            "finite",
        ),
        (lambda: FourierMapping(np.ones((2, 1)), np.zeros(2)), ValueError, "non-zero"),
        (lambda: mappings.basic(0), ValueError, "dim"),
        (lambda: mappings.gaussian(0, 2, 0, 1.0), ValueError, "num_freqs"),
        (lambda: mappings.gaussian(0, 2, 4, -1.0), ValueError, "sigma"),
        (lambda: mappings.gaussian("seed", 2, 4, 1.0), TypeError, "key_or_seed"),
        (lambda: mappings.positional(2, 4), ValueError, "exactly one"),
        (lambda: mappings.positional(2, 4, 2.0, scale=3.0), ValueError, "exactly one"),
        (lambda: mappings.positional(2, 4, sigma=0.0), ValueError, "sigma"),
        (lambda: mappings.power_law(4, -1.0), ValueError, "p must be"),
        (lambda: mappings.power_law(4, "x"), TypeError, "p must be"),
    ],
)
def test_constructors_reject_bad_arguments(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_call_rejects_bad_points():
    m = mappings.basic(2)
    with pytest.raises(ValueError, match=r"v has 3 columns"):
        m(np.ones((4, 3)))
    with pytest.raises(ValueError, match="finite"):
        m(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        m(np.ones(4))
    with pytest.raises(ValueError, match="delta has 1 columns"):
        m.tau(np.ones((2, 1)))
