"""The frameworks' encodings (ntkspec.mappings.from_*) against their formulas.

Each reference below writes out the framework's own forward pass in NumPy, feature
order included (nerfstudio's ``NeRFEncoding.pytorch_fwd`` / ``RFFEncoding.forward``,
tiny-cuda-nn's Frequency encoding kernel, the official NeRF ``Embedder``). A
FourierMapping always lists [cos block, sin block] (then the raw input), so each test
states the permutation from ntkspec's order to the framework's and checks the features
entry by entry after it: a reordering of features does not change any inner product,
hence not the kernel.
"""

import numpy as np
import pytest

import ntkspec
from ntkspec import mappings
from tests.helpers import reference_kernels

# Features sin(phase) with phases up to 2 pi 2^8 ~ 1.6e3 rad: the argument's own
# rounding (eps * phase ~ 4e-13) differs between sin(p + pi/2) and cos(p), so the
# absolute tolerance is 1e-12 (values lie in [-1, 1]; the relative one is moot).
PHASE = dict(rtol=1e-12, atol=1e-12)


# -- the frameworks' formulas ----------------------------------------------------------


def nerfstudio_nerf(x, num_frequencies, min_freq_exp, max_freq_exp, include_input):
    """nerfstudio NeRFEncoding.pytorch_fwd + forward, implementation='torch'."""
    scaled_in = 2 * np.pi * x
    freqs = 2.0 ** np.linspace(min_freq_exp, max_freq_exp, num_frequencies)
    scaled = (scaled_in[..., None] * freqs).reshape(x.shape[0], -1)  # dim-major
    enc = np.sin(np.concatenate([scaled, scaled + np.pi / 2], axis=-1))
    return np.concatenate([enc, x], axis=-1) if include_input else enc


def tcnn_frequency(x, n_frequencies):
    """tiny-cuda-nn Frequency: output j of dim j // (2m), log2 freq (j // 2) % m."""
    n, d = x.shape
    out = np.empty((n, d * 2 * n_frequencies))
    for j in range(out.shape[1]):
        dim = j // (2 * n_frequencies)
        log2_freq = (j // 2) % n_frequencies
        phase = (j % 2) * np.pi / 2
        out[:, j] = np.sin(x[:, dim] * 2.0**log2_freq * np.pi + phase)
    return out


def nerfstudio_rff(x, b_matrix, include_input):
    """nerfstudio RFFEncoding.forward with its b_matrix buffer (in_dim, m)."""
    scaled = (2 * np.pi * x) @ b_matrix
    enc = np.sin(np.concatenate([scaled, scaled + np.pi / 2], axis=-1))
    return np.concatenate([enc, x], axis=-1) if include_input else enc


def nerf_embedder(x, multires, include_input, log_sampling):
    """The official NeRF run_nerf_helpers.Embedder made by get_embedder(multires)."""
    max_freq = multires - 1
    if log_sampling:
        bands = 2.0 ** np.linspace(0.0, max_freq, multires)
    else:
        bands = np.linspace(2.0**0.0, 2.0**max_freq, multires)
    fns = [lambda x: x] if include_input else []
    for freq in bands:
        for p_fn in (np.sin, np.cos):
            fns.append(lambda x, p_fn=p_fn, freq=freq: p_fn(x * freq))
    return np.concatenate([fn(x) for fn in fns], axis=-1)


# -- permutations from ntkspec's order [cos (d*m), sin (d*m), raw (d)] --------------


def _halves_swapped(d, m, include_input):
    """[sin block, cos block (, raw)]: nerfstudio's order."""
    M = d * m
    tail = list(range(2 * M, 2 * M + d)) if include_input else []
    return np.array(list(range(M, 2 * M)) + list(range(M)) + tail)


def _interleaved(d, m):
    """tiny-cuda-nn: per dim, per frequency, [sin, cos]."""
    M = d * m
    return np.array(
        [i for j in range(d) for k in range(m) for i in (M + j * m + k, j * m + k)]
    )


def _nerf_order(d, m, include_input):
    """NeRF: [raw,] then per frequency [sin (d), cos (d)]."""
    M = d * m
    head = list(range(2 * M, 2 * M + d)) if include_input else []
    body = []
    for k in range(m):
        body += [M + j * m + k for j in range(d)]  # sin of every dim at frequency k
        body += [j * m + k for j in range(d)]  # cos
    return np.array(head + body)


# -- feature tests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "d, m, lo, hi, include_input",
    [(3, 10, 0.0, 8.0, True), (3, 2, 0.0, 1.0, False), (2, 4, -1.0, 2.5, True)],
)
def test_nerfstudio_nerf_torch_features(rng, d, m, lo, hi, include_input):
    x = rng.random((7, d))
    mp = mappings.from_nerfstudio_nerf(d, m, lo, hi, include_input=include_input)
    assert isinstance(
        mp, mappings.FourierInputMapping if include_input else ntkspec.FourierMapping
    )
    got = np.asarray(mp(x))[:, _halves_swapped(d, m, include_input)]
    np.testing.assert_allclose(
        got, nerfstudio_nerf(x, m, lo, hi, include_input), **PHASE
    )
    assert mp.out_dim == 2 * d * m + (d if include_input else 0)


def test_nerfstudio_nerf_tcnn_follows_tcnn(rng):
    x = rng.random((5, 3))
    mp = mappings.from_nerfstudio_nerf(3, 4, 0, 3, implementation="tcnn")
    got = np.asarray(mp(x))[:, _interleaved(3, 4)]
    np.testing.assert_allclose(got, tcnn_frequency(x, 4), **PHASE)
    # same arguments, torch implementation: twice the frequencies (factor 2 in 2 pi)
    torch = mappings.from_nerfstudio_nerf(3, 4, 0, 3)
    np.testing.assert_array_equal(np.asarray(torch.B), 2 * np.asarray(mp.B))
    with pytest.raises(ValueError, match="max_freq_exp = num_frequencies - 1 = 3"):
        mappings.from_nerfstudio_nerf(3, 4, 0, 8, implementation="tcnn")
    with pytest.raises(ValueError, match="implementation must be"):
        mappings.from_nerfstudio_nerf(3, 4, 0, 3, implementation="cuda")


@pytest.mark.parametrize("d, m", [(1, 12), (3, 5)])
def test_from_tcnn_features(rng, d, m):
    x = rng.random((6, d)) * 2 - 0.5
    mp = mappings.from_tcnn({"otype": "Frequency", "n_frequencies": m}, d)
    got = np.asarray(mp(x))[:, _interleaved(d, m)]
    np.testing.assert_allclose(got, tcnn_frequency(x, m), **PHASE)
    assert not mp.is_periodic  # b_0 = 1/2


def test_from_tcnn_default_and_refusals():
    assert mappings.from_tcnn({"otype": "frequency"}, 2).num_freqs == 2 * 12
    with pytest.raises(ValueError, match=r"\('Frequency',\).*'HashGrid'"):
        mappings.from_tcnn({"otype": "HashGrid", "n_levels": 16}, 3)
    with pytest.raises(ValueError, match="n_frequency"):
        mappings.from_tcnn({"otype": "Frequency", "n_frequency": 4}, 3)
    with pytest.raises(TypeError, match="config must be"):
        mappings.from_tcnn("Frequency", 3)
    with pytest.raises(ValueError, match="n_frequencies"):
        mappings.from_tcnn({"otype": "Frequency", "n_frequencies": 0}, 3)


@pytest.mark.parametrize("include_input", [False, True])
def test_nerfstudio_rff_with_b_matrix(rng, include_input):
    d, m = 3, 16
    b = rng.normal(scale=4.0, size=(d, m))
    x = rng.random((5, d))
    mp = mappings.from_nerfstudio_rff(
        d, m, 4.0, include_input=include_input, b_matrix=b
    )
    perm = _halves_swapped(1, m, include_input)
    if include_input:  # the raw block has d columns, not 1
        perm = np.concatenate([perm[: 2 * m], np.arange(2 * m, 2 * m + d)])
    got = np.asarray(mp(x))[:, perm]
    np.testing.assert_allclose(got, nerfstudio_rff(x, b, include_input), **PHASE)
    with pytest.raises(ValueError, match=r"b_matrix must have shape \(in_dim"):
        mappings.from_nerfstudio_rff(d, m, 4.0, b_matrix=b.T)


def test_nerfstudio_rff_draw():
    d, m, scale = 2, 4000, 3.0
    mp = mappings.from_nerfstudio_rff(d, m, scale, seed=5)
    B = np.asarray(mp.B)
    assert B.shape == (m, d)
    # sample std of 8000 N(0, 9) draws: relative standard error 1/sqrt(2*8000) < 0.8%
    assert abs(B.std() / scale - 1) < 0.04 and abs(B.mean()) < 0.2
    np.testing.assert_array_equal(B, np.asarray(mappings.gaussian(5, d, m, scale).B))
    with pytest.raises(ValueError, match="scale"):
        mappings.from_nerfstudio_rff(d, m, 0.0)


@pytest.mark.parametrize(
    "d, L, include_input, log_sampling",
    [(3, 10, True, True), (3, 4, False, True), (2, 5, True, False)],
)
def test_nerf_positional_features(rng, d, L, include_input, log_sampling):
    x = rng.random((6, d)) * 2 - 1
    mp = mappings.from_nerf_positional(d, L, include_input, log_sampling)
    got = np.asarray(mp(x))[:, _nerf_order(d, L, include_input)]
    want = nerf_embedder(x, L, include_input, log_sampling)
    np.testing.assert_allclose(got, want, **PHASE)


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="include_input"):
        mappings.from_nerfstudio_nerf(3, 4, 0, 3, include_input="yes")
    with pytest.raises(ValueError, match="num_frequencies"):
        mappings.from_nerfstudio_nerf(3, 0, 0, 3)
    with pytest.raises(ValueError, match="too large"):
        mappings.from_nerfstudio_nerf(1, 2, 0, 2000)
    with pytest.raises(TypeError, match="log_sampling"):
        mappings.from_nerf_positional(3, 4, True, None)
    with pytest.raises(ValueError, match="input_scale"):
        mappings.FourierInputMapping(mappings.basic(1), 0.0)
    with pytest.raises(TypeError, match="input_scale"):
        mappings.FourierInputMapping(mappings.basic(1), "1")
    with pytest.raises(TypeError, match="fourier must be"):
        mappings.FourierInputMapping(mappings.identity(1))


# -- kernels of include_input mappings ----------------------------------------------


def _features_with_input(x, B, a):
    """[a cos 2 pi Bx, a sin 2 pi Bx, x], written out."""
    ph = 2 * np.pi * x @ B.T
    return np.concatenate([a * np.cos(ph), a * np.sin(ph), x], axis=1)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_include_input_kernels_match_reference(rng, param):
    mp = mappings.from_nerfstudio_nerf(2, 3, 0, 2, include_input=True)
    B, a = np.asarray(mp.fourier.B), np.asarray(mp.fourier.a)
    x1, x2 = rng.random((6, 2)), rng.random((5, 2)) + 0.5  # no angle-zero pairs
    arch = ntkspec.ReluMLP(4, W_std=1.3, b_std=0.2, parameterization=param, width=64)
    K, T = reference_kernels(
        _features_with_input(x1, B, a), _features_with_input(x2, B, a), 4, 1.3, 0.2,
        param, width=64,
    )  # fmt: skip
    # the arccos reference is accurate to ~1e-12 away from angle 0
    np.testing.assert_allclose(ntkspec.nngp(arch, mp(x1), mp(x2)), K, rtol=1e-11)
    np.testing.assert_allclose(ntkspec.ntk(arch, mp(x1), mp(x2)), T, rtol=1e-11)
    # and it is not stationary: shifting both points changes the kernel
    shifted = ntkspec.ntk(arch, mp(x1 + 0.25), mp(x2 + 0.25))
    assert np.max(np.abs(np.asarray(shifted) - T)) > 1e-3 * np.max(np.abs(T))


@pytest.mark.parametrize("solver", ["cholesky", "blocked"])
def test_include_input_regression_on_points(rng, solver):
    mp = mappings.from_nerf_positional(1, 3)
    B, a = np.asarray(mp.fourier.B), np.asarray(mp.fourier.a)
    x_tr, x_te = rng.random((12, 1)), rng.random((4, 1)) + 0.03
    y = np.sin(5 * x_tr[:, 0])
    arch = ntkspec.ReluMLP(3)
    ridge = 1e-3
    _, T = reference_kernels(
        _features_with_input(np.vstack([x_tr, x_te]), B, a),
        _features_with_input(np.vstack([x_tr, x_te]), B, a), 3, 2**0.5, 0.0,
    )  # fmt: skip
    # the reference's diagonal (angle 0) is accurate to ~1e-8: ridge 1e-3 keeps the
    # solve's condition near 1e3, so the prediction is good to ~1e-7 relative
    want = T[12:, :12] @ np.linalg.solve(T[:12, :12] + ridge * np.eye(12), y)
    got = ntkspec.kernel_regression(
        arch, mp, x_tr, y, x_te, ridge=ridge, solver=solver, rtol=1e-12
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_include_input_refused_on_grid_paths():
    arch = ntkspec.ReluMLP(3)
    mp = mappings.from_nerfstudio_nerf(1, 2, 0, 1, include_input=True)
    g = ntkspec.Grid((16,))
    y = np.cos(2 * np.pi * g.points()[:, 0])
    for solver in ("fft", "pcg"):
        with pytest.raises(ValueError, match="include_input"):
            ntkspec.kernel_regression(arch, mp, g, y, g, solver=solver)
    with pytest.raises(ValueError, match="include_input"):
        ntkspec.spectrum(arch, mp, g, k=3, method="lanczos")
    with pytest.raises(TypeError, match="include_input"):
        ntkspec.operators.grid_operators(arch, mp, g, g)
    # the default path falls back to the dense Gram of the grid's points
    lam = np.asarray(ntkspec.spectrum(arch, mp, g))
    ref = np.linalg.eigvalsh(np.asarray(ntkspec.ntk(arch, mp(g.points()))))[::-1]
    np.testing.assert_allclose(lam, ref, rtol=1e-10, atol=1e-12)


def test_include_input_dynamics_and_networks(rng):
    mp = mappings.from_nerfstudio_nerf(1, 2, 0, 1, include_input=True)
    g = ntkspec.Grid((8,))
    y = np.cos(2 * np.pi * g.points()[:, 0]) + g.points()[:, 0]
    arch = ntkspec.ReluMLP(3)
    # a grid with a non-stationary mapping takes the dense path, whose t = inf limit
    # is kernel regression (both with ridge 1e-6, well conditioned)
    _, f_te = ntkspec.gd_dynamics(
        arch, mp, g, y, g.points() + 1 / 16, [np.inf], 1.0, ridge=1e-6
    )
    want = ntkspec.kernel_regression(
        arch, mp, g.points(), y, g.points() + 1 / 16, ridge=1e-6
    )
    np.testing.assert_allclose(f_te[-1], want, rtol=1e-8, atol=1e-10)
    # finite networks take FourierMapping / IdentityMapping only: refused, never a
    # network that silently drops the raw input
    with pytest.raises(TypeError, match="FourierInputMapping"):
        ntkspec.networks.mlp(arch, mp, width=8)
