import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkspec
from ntkspec import mappings, spectra
from ntkspec.grid import Grid
from ntkspec.kernels import ReluMLP
from ntkspec.operators import grid_operator

ARCH = ReluMLP(4)


def _integer_mapping(seed, dim, m, sigma):
    B = np.round(np.asarray(mappings.gaussian(seed, dim, m, sigma).B))
    return mappings.FourierMapping(B, np.ones(m))


def _gram(mapping, points, kernel="ntk"):
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    return np.asarray(fn(ARCH, mapping(points)))


PERIODIC = [
    ("1D n=256", (256,), mappings.power_law(16, 1.0, normalize=True)),
    ("16x16", (16, 16), _integer_mapping(0, 2, 64, 4.0)),
    ("12x20", (12, 20), _integer_mapping(1, 2, 64, 5.0)),
]
GAUSSIAN = [
    ("1D n=256", (256,), mappings.gaussian(3, 1, 16, 10.0)),
    ("16x16", (16, 16), mappings.gaussian(0, 2, 64, 3.0)),
    ("12x20", (12, 20), mappings.gaussian(1, 2, 64, 10.0)),
]


@pytest.mark.parametrize("name, shape, mapping", PERIODIC, ids=[c[0] for c in PERIODIC])
def test_periodic_all_eigenvalues_match_dense(name, shape, mapping):
    grid = Grid(shape)
    K = _gram(mapping, grid.points())
    dense = np.linalg.eigvalsh(K)[::-1]
    lam = ntkspec.spectrum(ARCH, mapping, grid)
    assert lam.dtype == np.float64 and lam.shape == (grid.size,)
    assert np.all(np.diff(lam) <= 0)
    np.testing.assert_allclose(lam, dense, rtol=0, atol=1e-10 * dense[0])
    top = ntkspec.spectrum(ARCH, mapping, grid, k=7)
    np.testing.assert_allclose(top, dense[:7], rtol=0, atol=1e-10 * dense[0])
    # Eigenvectors: real Fourier modes, orthonormal, residual within 1e-9 ||K||.
    vals, vecs = ntkspec.spectrum(ARCH, mapping, grid, k=12, vectors=True)
    assert vecs.shape == (grid.size, 12)
    norm_k = np.linalg.norm(K, 2)
    assert np.linalg.norm(K @ vecs - vecs * vals, axis=0).max() <= 1e-9 * norm_k
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(12), atol=1e-12)


@pytest.mark.parametrize("shape", [(5,), (6,), (3, 4), (4, 5), (3, 4, 5)])
def test_periodic_eigenvalues_by_frequency_from_the_half_spectrum(shape):
    # The periodic path reads all eigenvalues off the build's rfftn half-spectrum by
    # the symmetry Lambda(m) = Lambda(-m) (issue 17): odd and even sides, 1 to 3 axes,
    # against the DFT of the dense Gram's first column, in FFT order.
    grid = Grid(shape)
    mapping = _integer_mapping(2, len(shape), 24, 2.0)
    K = _gram(mapping, grid.points())
    dft = np.fft.fftn(K[:, 0].reshape(shape)).real
    got = ntkspec.grid_spectrum(ARCH, mapping, grid).values
    assert got.shape == shape
    np.testing.assert_allclose(got, dft, rtol=0, atol=1e-12 * np.abs(dft).max())
    # spectrum() sorts the half-spectrum with multiplicities: the same multiset.
    lam = ntkspec.spectrum(ARCH, mapping, grid)
    assert lam.shape == (grid.size,) and np.all(np.diff(lam) <= 0)
    ref = np.sort(dft.reshape(-1))[::-1]
    np.testing.assert_allclose(lam, ref, rtol=0, atol=1e-12 * np.abs(dft).max())


@pytest.mark.parametrize("name, shape, mapping", GAUSSIAN, ids=[c[0] for c in GAUSSIAN])
def test_gaussian_top10_lanczos_matches_dense(name, shape, mapping):
    grid = Grid(shape)
    K = _gram(mapping, grid.points())
    dense = np.linalg.eigvalsh(K)[::-1]
    vals, vecs = ntkspec.spectrum(ARCH, mapping, grid, k=10, vectors=True)
    np.testing.assert_allclose(vals, dense[:10], rtol=0, atol=1e-8 * dense[0])
    norm_k = np.linalg.norm(K, 2)
    assert np.linalg.norm(K @ vecs - vecs * vals, axis=0).max() <= 1e-9 * norm_k
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(10), atol=1e-10)
    only = ntkspec.spectrum(ARCH, mapping, grid, k=10)
    np.testing.assert_allclose(only, vals, rtol=0, atol=1e-10 * dense[0])


def test_lanczos_result_diagnostics():
    grid = Grid((16, 16))
    mapping = mappings.gaussian(0, 2, 64, 3.0)
    op = grid_operator(ARCH, mapping, grid)
    res = spectra.lanczos_eigenpairs(op, 5, block_size=4, algorithm="unrestarted")
    assert res.converged and res.eigenvectors is None
    assert res.matvecs == res.krylov_dim and res.residuals.shape == (5,)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        bad = spectra.lanczos_eigenpairs(
            op, 5, block_size=2, max_krylov_dim=8, rtol=1e-14, algorithm="unrestarted"
        )
    assert not bad.converged
    res = spectra.lanczos_eigenpairs(op, 5, block_size=4, algorithm="restarted")
    assert res.converged and res.residuals.shape == (5,)
    assert np.all(res.residuals <= 1e-10 * res.eigenvalues)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        bad = spectra.lanczos_eigenpairs(
            op,
            5,
            block_size=2,
            max_krylov_dim=10,
            rtol=1e-14,
            max_restarts=0,
            algorithm="restarted",
        )
    assert not bad.converged and bad.restarts == 0
    with pytest.raises(ValueError, match="algorithm"):
        spectra.lanczos_eigenpairs(op, 5, algorithm="arpack")


def test_dense_array_path_and_identity_on_grid(rng):
    x = rng.random((60, 2))
    mapping = mappings.gaussian(1, 2, 16, 2.0)
    K = _gram(mapping, x)
    dense = np.linalg.eigvalsh(K)[::-1]
    np.testing.assert_allclose(
        ntkspec.spectrum(ARCH, mapping, x), dense, atol=1e-12 * dense[0]
    )
    vals, vecs = ntkspec.spectrum(ARCH, mapping, x, k=5, vectors=True)
    np.testing.assert_allclose(vals, dense[:5], atol=1e-12 * dense[0])
    assert np.linalg.norm(K @ vecs - vecs * vals, axis=0).max() <= 1e-9 * dense[0]
    # No mapping on a grid: not stationary, dense path on the grid points.
    grid = Grid((12, 20))
    ident = mappings.identity(2)
    Kg = np.asarray(ntkspec.ntk(ARCH, grid.points()))
    np.testing.assert_allclose(
        ntkspec.spectrum(ARCH, ident, grid),
        np.linalg.eigvalsh(Kg)[::-1],
        atol=1e-12 * np.abs(Kg).max() * grid.size,
    )
    # Non-periodic grid with k=None falls back to dense when it fits.
    gauss = mappings.gaussian(2, 2, 16, 3.0)
    Kgg = _gram(gauss, grid.points())
    np.testing.assert_allclose(
        ntkspec.spectrum(ARCH, gauss, grid),
        np.linalg.eigvalsh(Kgg)[::-1],
        atol=1e-12 * Kgg[0, 0] * grid.size,
    )


def test_nngp_kernel():
    grid = Grid((256,))
    mapping = mappings.power_law(8, 0.5, normalize=True)
    K = _gram(mapping, grid.points(), kernel="nngp")
    dense = np.linalg.eigvalsh(K)[::-1]
    lam = ntkspec.spectrum(ARCH, mapping, grid, kernel="nngp")
    np.testing.assert_allclose(lam, dense, atol=1e-10 * dense[0])


def test_grid_spectrum_labels_and_fourier_spectrum():
    grid = Grid((256,))
    mapping = mappings.power_law(8, 1.0, normalize=True)
    gs = spectra.grid_spectrum(ARCH, mapping, grid)
    K = _gram(mapping, grid.points())
    # Lambda(m) is the Rayleigh quotient of the mode exp(2 pi i m x).
    x = grid.points()[:, 0]
    for m, lam in zip(gs.frequencies[0], gs.values, strict=True):
        e = np.exp(2j * np.pi * m * x)
        assert abs((e.conj() @ K @ e).real / grid.size - lam) <= 1e-11 * gs.values.max()
    fs = spectra.fourier_spectrum(ARCH, mapping, grid)
    np.testing.assert_allclose(fs.values, gs.values, rtol=1e-12, atol=1e-12)
    # Non-periodic: |DFT| of the kernel on centred offsets, from the dense Gram.
    gauss = mappings.gaussian(4, 1, 8, 5.0)
    Kg = _gram(gauss, grid.points())
    n = grid.size
    o = np.arange(n)
    row = np.where(o <= n // 2, Kg[o, 0], Kg[0, (n - o) % n])
    fsg = spectra.fourier_spectrum(ARCH, gauss, grid)
    assert not fsg.exact and "not eigenvalues" in fsg.kind
    np.testing.assert_allclose(
        fsg.values, np.abs(np.fft.fft(row)), rtol=0, atol=1e-11 * n
    )
    vals, freqs = gs.centred()
    assert (
        np.all(np.diff(freqs[0]) == 1) and vals[list(freqs[0]).index(0)] == gs.values[0]
    )


@pytest.mark.parametrize("method", ["chan", "strang"])
def test_circulant_approximation_error_is_measured(method):
    grid = Grid((16, 16))
    mapping = mappings.gaussian(0, 2, 64, 3.0)
    K = _gram(mapping, grid.points())
    dense = np.linalg.eigvalsh(K)[::-1]
    approx = spectra.circulant_approximate_spectrum(ARCH, mapping, grid, method=method)
    assert not approx.exact and "APPROXIMATE" in approx.kind
    err = np.abs(np.sort(approx.values.ravel())[::-1] - dense).max() / dense[0]
    # Measured 5.6e-3 (chan) and 4.9e-3 (strang): approximate, but not wildly off.
    assert 1e-4 < err < 2e-2
    per = _integer_mapping(0, 2, 16, 3.0)
    exact = spectra.circulant_approximate_spectrum(ARCH, per, grid, method=method)
    assert exact.exact


def _gauss_legendre(a, b, panels, order):
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, panels + 1)
    h = np.diff(edges) / 2
    mid = (edges[:-1] + edges[1:]) / 2
    return (mid[:, None] + h[:, None] * x).ravel(), (h[:, None] * w).ravel()


def test_continuous_spectrum_1d_against_quadrature():
    mapping = mappings.power_law(8, 1.0, normalize=True)
    cs = spectra.continuous_spectrum(ARCH, mapping, 12, rtol=1e-10)
    # c(m) = 2 int_0^{1/2} k(t) cos(2 pi m t) dt: k is smooth inside (0, 1/2), with its
    # cusp at the ends, so composite Gauss-Legendre converges fast.
    t, w = _gauss_legendre(0.0, 0.5, 32, 24)
    k = np.asarray(ntkspec.ntk(ARCH, mapping(t[:, None]), mapping(np.zeros((1, 1)))))[
        :, 0
    ]
    m = cs.frequencies[0]
    ref = 2 * (np.cos(2 * np.pi * np.outer(m, t)) * k) @ w
    np.testing.assert_allclose(cs.values, ref, rtol=0, atol=1e-9 * ref.max())
    assert cs.error_estimate is not None and cs.error_estimate < 1e-9 * ref.max()


@pytest.mark.slow
def test_continuous_spectrum_2d_against_duffy_quadrature():
    # B has no point with s = S (where arcsin has a second branch point) besides 0.
    mapping = mappings.FourierMapping(
        np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.ones(3)
    )
    cs = spectra.continuous_spectrum(ARCH, mapping, 3, rtol=1e-8)
    # Duffy: each quadrant of [-1/2, 1/2]^2 splits into two triangles with the cusp at a
    # vertex; (u, v) -> (u, u v) makes the integrand smooth (|Delta| = u sqrt(1 + v^2)).
    u, wu = _gauss_legendre(0.0, 1.0, 4, 20)
    U, V = np.meshgrid(u, u, indexing="ij")
    W = np.outer(wu, wu) * U * 0.25
    pts, wts = [], []
    for sx in (1, -1):
        for sy in (1, -1):
            for swap in (False, True):
                a, b = 0.5 * U, 0.5 * U * V
                x, y = (b, a) if swap else (a, b)
                pts.append(np.stack([sx * x.ravel(), sy * y.ravel()], 1))
                wts.append(W.ravel())
    pts, wts = np.concatenate(pts), np.concatenate(wts)
    k = np.asarray(ntkspec.ntk(ARCH, mapping(pts), mapping(np.zeros((1, 2)))))[:, 0]
    f = cs.frequencies[0]
    M0, M1 = np.meshgrid(f, f, indexing="ij")
    phase = (
        2 * np.pi * (np.outer(M0.ravel(), pts[:, 0]) + np.outer(M1.ravel(), pts[:, 1]))
    )
    ref = ((np.cos(phase) * k) @ wts).reshape(M0.shape)
    np.testing.assert_allclose(cs.values, ref, rtol=0, atol=1e-7 * ref.max())


def test_radial_profile_and_decay_exponent():
    f = np.fft.fftfreq(16) * 16
    M0, M1 = np.meshgrid(f, f, indexing="ij")
    r = np.sqrt(M0**2 + M1**2)
    vals = np.where(r > 0, (r + (r == 0)) ** -3.0, 10.0)
    spec = spectra.GridSpectrum(vals, (f.astype(int), f.astype(int)), "test", True)
    prof = spectra.radial_profile(spec)
    assert prof.radius[0] == 0 and prof.count[0] == 1 and prof.mean[0] == 10.0
    # Shell 1 holds |m| = 1 (4 points) and |m| = sqrt 2 ~ 1.41 (4 points).
    i1 = list(prof.radius).index(1.0)
    assert prof.count[i1] == 8
    np.testing.assert_allclose(prof.mean[i1], (4 * 1.0 + 4 * 2**-1.5) / 8)
    np.testing.assert_allclose([prof.minimum[i1], prof.maximum[i1]], [2**-1.5, 1.0])
    assert prof.count.sum() == 256
    fit = spectra.decay_exponent(r, vals, fit_range=(1, 8))
    np.testing.assert_allclose(fit.exponent, 3.0, rtol=1e-12)
    np.testing.assert_allclose(fit.prefactor, 1.0, rtol=1e-12)
    assert fit.rms_log_residual < 1e-12 and fit.fit_range == (1.0, 8.0)
    with pytest.raises(ValueError, match="fit_range"):
        spectra.decay_exponent(r, vals, fit_range=(100, 200))


def test_bad_input_errors_name_the_argument():
    grid = Grid((8, 8))
    per = mappings.basic(2)
    with pytest.raises(ValueError, match=r"k must be in \[1, N = 64\]"):
        ntkspec.spectrum(ARCH, per, grid, k=0)
    with pytest.raises(ValueError, match=r"k must be in \[1, N = 64\]"):
        ntkspec.spectrum(ARCH, per, grid, k=65)
    with pytest.raises(TypeError, match="k must be None or an integer"):
        ntkspec.spectrum(ARCH, per, grid, k=2.5)
    with pytest.raises(ValueError, match="mapping.dim must equal"):
        ntkspec.spectrum(ARCH, mappings.basic(1), grid)
    with pytest.raises(ValueError, match="mapping.dim must equal"):
        ntkspec.spectrum(ARCH, mappings.basic(3), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="vectors=True"):
        ntkspec.spectrum(ARCH, per, grid, vectors=True, max_bytes=1000)
    with pytest.raises(ValueError, match="Grid"):
        ntkspec.spectrum(
            ARCH, per, np.random.default_rng(0).random((64, 2)), max_bytes=1000
        )
    with pytest.raises(ValueError, match="k="):
        ntkspec.spectrum(ARCH, mappings.gaussian(0, 2, 4, 1.0), grid, max_bytes=1000)
    with pytest.raises(ValueError, match="kernel"):
        ntkspec.spectrum(ARCH, per, grid, kernel="gp")
    with pytest.raises(TypeError, match="vectors"):
        ntkspec.spectrum(ARCH, per, grid, vectors="yes")
    with pytest.raises(ValueError, match="grid spectrum|Grid"):
        spectra.continuous_spectrum(ARCH, mappings.gaussian(0, 1, 4, 1.0), 3)
    with pytest.raises(ValueError, match="periodic"):
        spectra.grid_spectrum(ARCH, mappings.gaussian(0, 2, 4, 1.0), grid)
    with pytest.raises(ValueError, match="method"):
        ntkspec.spectrum(ARCH, per, grid, method="qr")


@settings(max_examples=5)
@given(
    shape=st.sampled_from([(256,), (12, 20), (6, 5, 4)]),
    seed=st.integers(0, 2**16),
    sigma=st.sampled_from([1.0, 4.0]),
)
def test_spectrum_invariants(shape, seed, sigma):
    d = len(shape)
    mapping = _integer_mapping(seed, d, 8, sigma)
    grid = Grid(shape)
    lam = ntkspec.spectrum(ARCH, mapping, grid)
    k0 = float(grid_operator(ARCH, mapping, grid).diagonal_value)
    # Non-negative within round-off, and the sum is the trace N k(0).
    assert lam.min() >= -1e-12 * lam.max()
    np.testing.assert_allclose(lam.sum(), grid.size * k0, rtol=1e-12)


def test_spectrum_return_info_adds_only_the_info():
    from ntkspec.spectra import SpectrumInfo

    arch = ntkspec.ReluMLP(3)
    per = mappings.basic(2)
    gauss = mappings.gaussian(0, 2, 16, 3.0)
    grid = ntkspec.Grid((8, 8))
    for mapping, k, method in ((per, None, "fft"), (gauss, 5, "lanczos")):
        plain = ntkspec.spectrum(arch, mapping, grid, k=k)
        lam, info = ntkspec.spectrum(arch, mapping, grid, k=k, return_info=True)
        assert isinstance(info, SpectrumInfo) and info.method == method
        assert info.converged
        np.testing.assert_array_equal(lam, plain)
        lam2, vecs, info2 = ntkspec.spectrum(
            arch, mapping, grid, k=4, vectors=True, return_info=True
        )
        assert vecs.shape == (64, 4) and info2.method == method
    dense = np.linalg.eigvalsh(np.asarray(ntkspec.ntk(arch, gauss(grid.points()))))
    lam, info = ntkspec.spectrum(arch, gauss, grid, return_info=True)
    assert info.method == "dense" and info.lanczos is None
    np.testing.assert_allclose(lam, dense[::-1], rtol=0, atol=1e-12 * dense.max())


# Issue 30, item 1: on small non-periodic grids the top-k Lanczos path returned values
# above the trace, or zeros with overflows, flagged converged (a rank-deficient block
# QR once the basis neared N). Every 1D size 2-20 and a sample of 2D grids up to 20 per
# axis, k in {1, 2, b - 1, b, b + 1, N - 1, N} (b = 8, the default block), against
# the dense eigvalsh of the same Gram (one kernel call for all grids of a dimension:
# one compile). The full sweep of every size and k: analysis/sweep_topk.py.
_TOPK_B = 8
_TOPK_SHAPES = {
    1: [(n,) for n in range(2, 21)],
    2: [(5, 5), (9, 9), (20, 20), (3, 17), (20, 6)],
}


@pytest.mark.parametrize("dim", [1, 2])
def test_topk_lanczos_path_matches_dense_on_small_grids(dim):
    mapping = mappings.gaussian(0, dim, 16, 3.0)
    grids = [Grid(shape) for shape in _TOPK_SHAPES[dim]]
    gram = _gram(mapping, np.concatenate([g.points() for g in grids]))
    start = 0
    for grid in grids:
        n = grid.size
        block = gram[start : start + n, start : start + n]
        start += n
        dense = np.linalg.eigvalsh(block)[::-1]
        ks = {1, 2, _TOPK_B - 1, _TOPK_B, _TOPK_B + 1, n - 1, n}
        for k in sorted(k for k in ks if 1 <= k <= n):
            lam, info = ntkspec.spectrum(
                ARCH, mapping, grid, k=k, method="lanczos", return_info=True
            )
            assert info.converged, (grid.shape, k)
            np.testing.assert_allclose(
                lam, dense[:k], rtol=0, atol=1e-10 * dense[0], err_msg=f"{grid} k={k}"
            )


# Issue 28, item 2: spectrum(k=) on a grid by symmetry sectors, against dense eigh.
# Odd sizes give sectors of unequal size (the fixed points of the reflections are in
# the even sectors); the basic mapping on a square grid has exact degeneracies across
# sectors (cos 2 pi x and cos 2 pi y), the positional one splits into 4 sectors.
SECTOR_SPECTRA = [
    ("gaussian 15x17", (15, 17), mappings.gaussian(0, 2, 32, 3.0), "auto", 2, 40),
    ("gaussian 1D 201", (201,), mappings.gaussian(1, 1, 16, 10.0), "auto", 2, 10),
    ("positional 17x19", (17, 19), mappings.positional(2, 4, 5.0), "auto", 4, 12),
    ("basic 19x19 ties", (19, 19), mappings.basic(2), "lanczos", 4, 10),
]


@pytest.mark.parametrize(
    "name, shape, mapping, method, count, k",
    SECTOR_SPECTRA,
    ids=[c[0] for c in SECTOR_SPECTRA],
)
def test_sector_spectrum_matches_dense(name, shape, mapping, method, count, k):
    grid = Grid(shape)
    K = _gram(mapping, grid.points())
    dense = np.linalg.eigvalsh(K)[::-1]
    lam, vecs, info = ntkspec.spectrum(
        ARCH, mapping, grid, k=k, vectors=True, method=method, return_info=True
    )
    assert info.method == "lanczos" and info.sectors == count and info.converged
    blocks = info.lanczos.stats["blocks"]
    assert sum(b["size"] for b in blocks) == grid.size
    assert sum(b["in_top_k"] for b in blocks) == k
    np.testing.assert_allclose(lam, dense[:k], rtol=0, atol=1e-10 * dense[0])
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(k), rtol=0, atol=1e-10)
    assert np.linalg.norm(K @ vecs - vecs * lam, axis=0).max() <= 1e-9 * dense[0]
    if "ties" in name:
        # Exact degeneracies among the top k, split over different sectors.
        assert np.min(np.abs(np.diff(dense[:k]))) <= 1e-12 * dense[0]
        assert sum(b["in_top_k"] > 0 for b in blocks) >= 3


def test_sector_spectrum_opt_out_and_errors():
    grid = Grid((15, 17))
    mapping = mappings.gaussian(0, 2, 32, 3.0)
    dense = np.linalg.eigvalsh(_gram(mapping, grid.points()))[::-1]
    whole, info = ntkspec.spectrum(
        ARCH, mapping, grid, k=10, sectors=False, return_info=True
    )
    assert info.sectors == 1 and "blocks" not in info.lanczos.stats
    np.testing.assert_allclose(whole, dense[:10], rtol=0, atol=1e-10 * dense[0])
    with pytest.raises(TypeError, match="sectors"):
        ntkspec.spectrum(ARCH, mapping, grid, k=10, sectors="yes")
