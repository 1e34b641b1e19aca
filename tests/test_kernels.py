"""Tests for ntkspec.kernels against independent references (tolerances written
here)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkspec
from ntkspec import mappings
from ntkspec.kernels import ReluMLP, nngp, ntk, profile
from tests.helpers import reference_kernels, theta_zero_kernels

ARCHS = [
    ReluMLP(depth, W_std, b_std, param, width=37)
    for depth in (1, 2, 3, 5)
    for W_std in (1.0, math.sqrt(2.0), 1.7)
    for b_std in (None, 0.0, 0.1, 1.0)
    for param in ("ntk", "standard")
]


def _rel_close(actual, expected, rtol, atol_scale):
    """|a - b| <= rtol |b| + atol_scale * max|b| (atol for entries near 0 by
    cancellation)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    atol = atol_scale * np.max(np.abs(expected))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [None, 0.0, 0.3])
def test_depth1_is_the_linear_kernel(param, b_std, rng):
    x1, x2 = rng.normal(size=(6, 5)), rng.normal(size=(4, 5))
    arch = ReluMLP(1, 1.3, b_std, param)
    sb2 = 0.0 if b_std is None else b_std**2
    linear = 1.3**2 * x1 @ x2.T / 5 + sb2
    np.testing.assert_allclose(nngp(arch, x1, x2), linear, rtol=1e-13, atol=1e-15)
    if param == "ntk":
        expected_ntk = linear
    else:  # d(x.W + b)/d(W, b): x.x' + 1 per trained bias
        expected_ntk = x1 @ x2.T + (0.0 if b_std is None else 1.0)
    np.testing.assert_allclose(ntk(arch, x1, x2), expected_ntk, rtol=1e-13, atol=1e-14)


def _arccos_kernel(n, theta):
    """Cho & Saul (2009) arc-cosine kernel of order n for unit vectors, J_n / pi."""
    if n == 0:
        return 1.0 - theta / np.pi
    return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("W_std,b_std", [(math.sqrt(2), 0.0), (1.0, None), (1.7, 0.4)])
def test_depth2_matches_arc_cosine_closed_form(param, W_std, b_std, rng):
    d, width = 6, 50
    x1, x2 = rng.normal(size=(7, d)), rng.normal(size=(5, d))
    sw2, sb2 = W_std**2, (0.0 if b_std is None else b_std**2)
    k1 = sw2 * x1 @ x2.T / d + sb2  # first-layer NNGP
    v1 = sw2 * np.sum(x1**2, 1) / d + sb2
    v2 = sw2 * np.sum(x2**2, 1) / d + sb2
    norm = np.sqrt(np.outer(v1, v2))
    theta = np.arccos(np.clip(k1 / norm, -1, 1))
    # E[relu(u) relu(u')] = norm * k_1 / 2 and E[step(u) step(u')] = k_0 / 2 (Cho-Saul).
    relu_cov = norm * _arccos_kernel(1, theta) / 2
    step_cov = _arccos_kernel(0, theta) / 2
    expected_nngp = sw2 * relu_cov + sb2
    if param == "ntk":
        expected_ntk = expected_nngp + sw2 * k1 * step_cov
    else:
        first = x1 @ x2.T + (0.0 if b_std is None else 1.0)
        expected_ntk = (
            width * relu_cov + sw2 * first * step_cov + (0.0 if b_std is None else 1.0)
        )
    arch = ReluMLP(2, W_std, b_std, param, width=width)
    np.testing.assert_allclose(
        nngp(arch, x1, x2), expected_nngp, rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(ntk(arch, x1, x2), expected_ntk, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "arch",
    ARCHS,
    ids=lambda a: f"{a.depth}-{a.W_std:.2f}-{a.b_std}-{a.parameterization}",
)
def test_matches_layer_recursion_reference(arch, rng):
    x1, x2 = rng.normal(size=(9, 4)), rng.normal(size=(7, 4))
    K, T = reference_kernels(
        x1, x2, arch.depth, arch.W_std, arch.b_std, arch.parameterization, arch.width
    )
    # rtol 1e-11: the arccos reference itself loses ~1e-13 at small angles; atol for
    # entries that are ~0 by cancellation in x1.x2 (depth 1-2).
    _rel_close(nngp(arch, x1, x2), K, 1e-11, 1e-14)
    _rel_close(ntk(arch, x1, x2), T, 1e-11, 1e-14)


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [None, 0.0, 0.5])
@pytest.mark.parametrize("depth", [2, 4])
def test_angle_zero_entries_are_exact(param, b_std, depth, rng):
    """Diagonal and duplicate pairs (and collinear pairs without bias) vs theta = 0.

    Depth 2 (one hidden layer) and 4 (angle zero carried through three): every hidden
    layer applies the same map, and depth 6 (the costliest compile) added only two more.
    """
    d, width = 8, 64
    x = rng.normal(size=(5, d))
    arch = ReluMLP(depth, 1.3, b_std, param, width=width)
    q = np.sum(x**2, 1) / d
    K0, T0 = theta_zero_kernels(q, q, depth, 1.3, b_std, param, width, d)
    np.testing.assert_allclose(np.diag(ntk(arch, x)), T0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(nngp(arch, x)), K0, rtol=1e-12)
    # duplicates planted in a cross kernel
    x2 = np.concatenate([rng.normal(size=(3, d)), x[2:4]])
    t = np.asarray(ntk(arch, x, x2))
    np.testing.assert_allclose([t[2, 3], t[3, 4]], T0[2:4], rtol=1e-12)
    if b_std in (None, 0.0):  # collinear pairs stay at angle 0 without a bias variance
        t = np.asarray(ntk(arch, x, 2.5 * x))
        _, Tc = theta_zero_kernels(q, 6.25 * q, depth, 1.3, b_std, param, width, d)
        np.testing.assert_allclose(np.diag(t), Tc, rtol=1e-12)


def test_angle_zero_exact_on_fourier_features_fast_path(rng):
    """Large equal-norm inputs take the Chebyshev path; its diagonal is still exact."""
    m = mappings.gaussian(1, 2, 64, 10.0)
    v = rng.random((100, 2))
    x = np.asarray(m(v))
    arch = ReluMLP(4, math.sqrt(2), 0.1)
    q = np.full(100, np.sum(x[0] ** 2) / 128)
    K0, T0 = theta_zero_kernels(q, q, 4, math.sqrt(2), 0.1, d=128)
    t = np.asarray(ntk(arch, x, np.concatenate([x, x[:7]])))
    np.testing.assert_allclose(np.diag(t[:, :100]), T0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(t[:7, 100:]), T0[:7], rtol=1e-12)
    K, T = reference_kernels(x, x, 4, math.sqrt(2), 0.1)
    off = ~np.eye(100, dtype=bool)
    _rel_close(t[:, :100][off], T[off], 1e-12, 1e-14)


def test_zero_input_uses_right_angle_convention():
    """A zero input (raw coordinates at the origin) has theta = pi/2, as
    neural-tangents."""
    x = np.array([[0.0, 0.0], [0.3, 0.4]])
    arch = ReluMLP(3, 1.0, 0.0, "standard", width=10)
    K, T = reference_kernels(x, x, 3, 1.0, 0.0, "standard", 10)
    np.testing.assert_allclose(ntk(arch, x), T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(nngp(arch, x), K, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- profile


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
@pytest.mark.parametrize(
    "arch",
    [ReluMLP(4), ReluMLP(3, 1.0, 0.0, "standard", width=32), ReluMLP(6, 1.7, 1.0)],
)
def test_profile_equals_kernel_on_features(kernel, arch, rng):
    m = mappings.gaussian(2, 2, 16, 3.0)
    v1, v2 = rng.random((300, 2)), rng.random((300, 2))
    full = (ntk if kernel == "ntk" else nngp)(arch, m(v1), m(v2))
    direct = np.diag(np.asarray(full))
    s = m.sin2_half_angle(v1 - v2)
    # small input: exact recursion; large input (> 4096 entries): Chebyshev path
    for reps in (1, 20):
        h = profile(
            arch,
            np.tile(s, reps),
            input_var=m.norm_sq / 32,
            input_dim=32,
            kernel=kernel,
        )
        np.testing.assert_allclose(np.asarray(h)[:300], direct, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
@pytest.mark.parametrize("arch", [ReluMLP(4), ReluMLP(6, 1.7, 1.0)])
def test_profile_with_coefs_inside_jit_matches_the_kernel(kernel, arch, rng):
    # The grid build evaluates the verified fit inside one jitted program (issue 17):
    # same values as the dense kernel on the features, 1e-12 relative.
    from ntkspec.kernels import profile_coefficients

    m = mappings.gaussian(5, 2, 16, 3.0)
    v1, v2 = rng.random((200, 2)), rng.random((200, 2))
    direct = np.diag(np.asarray((ntk if kernel == "ntk" else nngp)(arch, m(v1), m(v2))))
    s = np.asarray(m.sin2_half_angle(v1 - v2))
    q = m.norm_sq / 32
    coefs = profile_coefficients(arch, q, 32, kernel)
    assert coefs is not None
    fn = jax.jit(
        lambda s: profile(
            arch, s, input_var=q, input_dim=32, kernel=kernel, coefs=coefs
        )
    )
    with jax.enable_x64(True):
        got = np.asarray(fn(jnp.asarray(s, jnp.float64)))
    eager = np.asarray(
        profile(arch, s, input_var=q, input_dim=32, kernel=kernel, coefs=coefs)
    )
    scale = np.abs(direct).max()
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(eager, got, rtol=0, atol=1e-15 * scale)


def test_profile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sin2_half"):
        profile(ReluMLP(2), np.array([1.5]))
    with pytest.raises(ValueError, match="kernel"):
        profile(ReluMLP(2), np.array([0.5]), kernel="gp")
    with pytest.raises(ValueError, match="input_var"):
        profile(ReluMLP(2), np.array([0.5]), input_var=-1.0)


# ---------------------------------------------------------------- Monte Carlo


def _sample_outputs(x, depth, W_std, b_std, width, n_nets, key):
    """Outputs of n_nets independent finite NTK-parameterised networks (one output)."""

    def one(k):
        h = x
        keys = jax.random.split(k, 2 * depth)
        for layer in range(depth):
            n_in = h.shape[1]
            n_out = 1 if layer == depth - 1 else width
            W = jax.random.normal(keys[2 * layer], (n_in, n_out), jnp.float64)
            b = jax.random.normal(keys[2 * layer + 1], (n_out,), jnp.float64)
            h = W_std / jnp.sqrt(n_in) * h @ W + b_std * b[None, :]
            if layer < depth - 1:
                h = jax.nn.relu(h)
        return h[:, 0]

    # lax.map in batches keeps the sampled weights of only 100 networks in memory
    return jax.lax.map(one, jax.random.split(key, n_nets), batch_size=100)


def test_monte_carlo_nngp_of_random_networks(rng):
    """One hidden layer: E[f(x) f(x')] over random nets equals the NNGP at any width."""
    x = rng.normal(size=(4, 3))
    arch = ReluMLP(2, 1.4, 0.2)
    with jax.enable_x64(True):
        f = np.asarray(
            _sample_outputs(
                jnp.asarray(x), 2, 1.4, 0.2, 64, 10000, jax.random.PRNGKey(0)
            )
        )
    prods = f[:, :, None] * f[:, None, :]
    emp = prods.mean(0)
    se = prods.std(0) / np.sqrt(prods.shape[0])
    k = np.asarray(nngp(arch, x))
    # exact in expectation: the only error is sampling; 5 standard errors (p ~ 6e-7
    # each)
    assert np.all(np.abs(emp - k) <= 5 * se), (emp, k, se)


@pytest.mark.slow
def test_monte_carlo_nngp_deeper_network(rng):
    """Depth 3, width 256: sampling error plus an O(1/width) finite-width bias."""
    x = rng.normal(size=(3, 3))
    arch = ReluMLP(3, math.sqrt(2), 0.1)
    with jax.enable_x64(True):
        f = np.asarray(
            _sample_outputs(
                jnp.asarray(x), 3, math.sqrt(2), 0.1, 256, 2000, jax.random.PRNGKey(1)
            )
        )
    prods = f[:, :, None] * f[:, None, :]
    emp, se = prods.mean(0), prods.std(0) / np.sqrt(prods.shape[0])
    k = np.asarray(nngp(arch, x))
    # 5 standard errors plus a finite-width allowance of 4/width relative
    assert np.all(np.abs(emp - k) <= 5 * se + 4 / 256 * np.abs(k)), (emp, k, se)


# ---------------------------------------------------------------- gradients


def _central_difference(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        g[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("coincident", [False, True])
def test_input_gradients_match_central_differences(coincident, rng):
    arch = ReluMLP(3, 1.2, 0.1)
    x2 = rng.normal(size=(3, 4))
    x1 = x2[:2].copy() if coincident else rng.normal(size=(2, 4))
    weights = rng.normal(size=(2, 3))

    def loss(a):
        return jnp.sum(weights * ntk(arch, a, x2))

    with jax.enable_x64(True):
        g = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(x1)))
        # eager values: concrete inputs get the exact near-pair pass, which the finite
        # differences need (the pair at distance 1e-6 has w ~ 1e-13)
        fd = _central_difference(lambda a: float(loss(a)), x1)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_gradients_wrt_mapping_and_architecture(rng):
    v1, v2 = rng.random((3, 2)), rng.random((4, 2))
    v2[0] = v1[0]  # a coincident pair
    B0 = rng.normal(size=(5, 2)) * 3
    a0 = rng.random(5) + 0.5

    def loss(B, a, W_std, b_std):
        m = ntkspec.FourierMapping(B, a)
        arch = ReluMLP(3, W_std, b_std)
        return jnp.sum(ntk(arch, m(v1), m(v2)) + nngp(arch, m(v1), m(v2)))

    with jax.enable_x64(True):
        grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(
            jnp.asarray(B0), jnp.asarray(a0), jnp.float64(1.3), jnp.float64(0.2)
        )
        f = jax.jit(loss)
        fd_B = _central_difference(lambda B: float(f(B, a0, 1.3, 0.2)), B0)
        fd_a = _central_difference(lambda a: float(f(B0, a, 1.3, 0.2)), a0)
        fd_w = _central_difference(
            lambda w: float(f(B0, a0, w[0], 0.2)), np.array([1.3])
        )
        fd_b = _central_difference(
            lambda b: float(f(B0, a0, 1.3, b[0])), np.array([0.2])
        )
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(grads[0], fd_B, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[1], fd_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[2], fd_w[0], rtol=1e-6)
    np.testing.assert_allclose(grads[3], fd_b[0], rtol=1e-6)


def test_gradient_of_self_kernel_is_finite():
    arch = ReluMLP(4)
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 3)))
    with jax.enable_x64(True):
        g = jax.jit(jax.grad(lambda a: jnp.sum(ntk(arch, a))))(x)
    assert np.all(np.isfinite(np.asarray(g)))


# ---------------------------------------------------------------- transforms, dtypes


def test_jit_matches_eager(rng):
    arch = ReluMLP(3, 1.1, 0.2)
    x1, x2 = rng.normal(size=(6, 3)), rng.normal(size=(5, 3))
    eager = ntk(arch, x1, x2)
    with jax.enable_x64(True):
        jitted = jax.jit(lambda a, b: ntk(arch, a, b))(jnp.asarray(x1), jnp.asarray(x2))
    np.testing.assert_allclose(jitted, eager, rtol=1e-13, atol=1e-15)


def test_blocked_equals_unblocked(rng):
    arch = ReluMLP(4, 1.3, 0.1)
    x1, x2 = rng.normal(size=(37, 3)), rng.normal(size=(11, 3))
    whole = np.asarray(ntk(arch, x1, x2))
    blocked = np.asarray(ntk(arch, x1, x2, block_rows=5))
    np.testing.assert_array_equal(blocked, whole)


def test_float64_whatever_the_callers_config(rng):
    x = rng.normal(size=(4, 3))
    assert not jax.config.jax_enable_x64  # the library must not need a global switch
    assert ntk(ReluMLP(3), x).dtype == jnp.float64
    assert not jax.config.jax_enable_x64  # and must not leave one behind
    m = mappings.basic(3)
    assert m(x).dtype == jnp.float64


def test_float32_mode_is_within_its_stated_tolerance(rng):
    m = mappings.gaussian(0, 2, 32, 5.0)
    x = np.asarray(m(rng.random((80, 2))))
    arch = ReluMLP(4)
    k64 = np.asarray(ntk(arch, x))
    k32 = ntk(arch, x, dtype=np.float32)
    assert k32.dtype == jnp.float32
    # float32 floor: ~sqrt(eps32) ~ 3e-4 relative where the angle is ~0 (diagonal,
    # kappa_0's slope), ~1e-6 elsewhere; the stated tolerance is 1e-3 on the diagonal.
    off = ~np.eye(80, dtype=bool)
    np.testing.assert_allclose(
        np.asarray(k32)[off], k64[off], rtol=2e-5, atol=2e-5 * np.abs(k64).max()
    )
    np.testing.assert_allclose(np.diag(np.asarray(k32)), np.diag(k64), rtol=1e-3)


# ---------------------------------------------------------------- properties


@settings(max_examples=8)
@given(
    n=st.sampled_from([3, 9]),
    depth=st.integers(1, 5),
    sigma=st.sampled_from([0.5, 10.0, 100.0, 1000.0]),
    seed=st.integers(0, 2**16),
    b_std=st.sampled_from([None, 0.0, 0.5]),
)
def test_gram_is_symmetric_psd_and_finite(n, depth, sigma, seed, b_std):
    rng = np.random.default_rng(seed)
    m = mappings.gaussian(seed, 2, 8, sigma)
    v = rng.random((n, 2))
    v[-1] = v[0]  # a coincident pair
    arch = ReluMLP(depth, 1.2, b_std)
    for fn in (ntk, nngp):
        K = np.asarray(fn(arch, m(v)))
        assert np.all(np.isfinite(K))
        np.testing.assert_allclose(K, K.T, rtol=1e-12, atol=1e-14 * np.abs(K).max())
        ev = np.linalg.eigvalsh((K + K.T) / 2)
        assert ev[0] >= -1e-12 * ev[-1]


@settings(max_examples=8)
@given(
    seed=st.integers(0, 2**16),
    depth=st.integers(1, 5),
    shift=st.floats(-3.0, 3.0, allow_nan=False),
)
def test_fourier_kernel_is_stationary(seed, depth, shift):
    rng = np.random.default_rng(seed)
    m = mappings.gaussian(seed, 2, 8, 4.0)
    v1, v2 = rng.random((5, 2)), rng.random((4, 2))
    t = np.array([shift, -0.7 * shift])
    arch = ReluMLP(depth)
    k = np.asarray(ntk(arch, m(v1), m(v2)))
    k_shift = np.asarray(ntk(arch, m(v1 + t), m(v2 + t)))
    np.testing.assert_allclose(k_shift, k, rtol=1e-10, atol=1e-12 * np.abs(k).max())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(depth=0), ValueError, "depth"),
        (dict(depth=2.5), TypeError, "depth"),
        (dict(depth=2, W_std=0.0), ValueError, "W_std"),
        (dict(depth=2, W_std=-1.0), ValueError, "W_std"),
        (dict(depth=2, W_std=float("nan")), ValueError, "W_std"),
        (dict(depth=2, b_std=-0.1), ValueError, "b_std"),
        (dict(depth=2, parameterization="mup"), ValueError, "parameterization"),
        (dict(depth=2, parameterization="standard"), ValueError, "width"),
        (dict(depth=2, width=0), ValueError, "width"),
    ],
)
def test_relumlp_rejects_bad_fields(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ReluMLP(**kwargs)


@pytest.mark.parametrize("fn", [ntk, nngp])
def test_kernels_reject_bad_inputs(fn):
    arch = ReluMLP(2)
    good = np.ones((3, 2))
    with pytest.raises(ValueError, match="x1 must have shape"):
        fn(arch, np.ones(3))
    with pytest.raises(ValueError, match="x1 must be finite"):
        fn(arch, np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="x2 must be finite"):
        fn(arch, good, np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="same number of columns"):
        fn(arch, good, np.ones((3, 3)))
    with pytest.raises(TypeError, match="arch"):
        fn("relu", good)
    with pytest.raises(TypeError, match="real numbers"):
        fn(arch, np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="dtype"):
        fn(arch, good, dtype=np.int32)


def test_dense_request_over_the_cap_is_refused(monkeypatch):
    x = np.ones((100, 2))
    with pytest.raises(ValueError, match="Grid"):
        ntk(ReluMLP(2), x, max_bytes=1000)
    monkeypatch.setenv("NTKSPEC_MAX_DENSE_BYTES", "1000")
    with pytest.raises(ValueError, match="memory cap"):
        nngp(ReluMLP(2), x)
    monkeypatch.setenv("NTKSPEC_MAX_DENSE_BYTES", "lots")
    with pytest.raises(ValueError, match="NTKSPEC_MAX_DENSE_BYTES"):
        nngp(ReluMLP(2), x)


@pytest.mark.parametrize("fourier", [True, False])
@pytest.mark.parametrize("progress", [False, True])
def test_large_self_gram_tiles_assembled_on_device(fourier, progress, rng):
    """The tiled self-Gram (N > 512, padded to whole tiles, chunked when a bar shows)
    equals the NumPy reference, is exactly symmetric, and its planted duplicates in
    both triangles (near pairs in off-diagonal tiles) are exact."""
    n = 1100
    if fourier:
        x = np.array(mappings.gaussian(2, 2, 32, 10.0)(rng.random((n, 2))))
    else:
        x = rng.normal(size=(n, 6))
    dup = [(3, 1050), (10, 600), (700, 20), (5, 6)]
    for a, b in dup:
        x[b] = x[a]
    arch = ReluMLP(4, math.sqrt(2), 0.1)
    t = ntk(arch, x, progress=progress)
    assert isinstance(t, jax.Array) and t.shape == (n, n)
    t = np.asarray(t)
    np.testing.assert_array_equal(t, t.T)
    d = x.shape[1]
    q = np.sum(x**2, 1) / d
    _, T0 = theta_zero_kernels(q, q, 4, math.sqrt(2), 0.1, d=d)
    np.testing.assert_allclose(np.diag(t), T0, rtol=1e-12)
    for a, b in dup:
        np.testing.assert_allclose([t[a, b], t[b, a]], [T0[a], T0[a]], rtol=1e-12)
    _, T = reference_kernels(x, x, 4, math.sqrt(2), 0.1)
    off = ~np.eye(n, dtype=bool)
    for a, b in dup:
        off[a, b] = off[b, a] = False
    _rel_close(t[off], T[off], 1e-11, 1e-14)
