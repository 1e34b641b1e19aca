import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ntkspec
from ntkspec import mappings
from ntkspec.grid import Grid
from ntkspec.kernels import ReluMLP
from ntkspec.operators import (
    circulant_matvec,
    grid_operator,
    kernel_on_offsets,
    toeplitz_matvec,
)

ARCH = ReluMLP(4)
# Relative to the largest entry of the compared product; the FFT and the three-matmul
# offsets each add a few ulps times log N.
RTOL_MATVEC = 1e-12


def _integer_mapping(seed, dim, m, sigma):
    B = np.round(np.asarray(mappings.gaussian(seed, dim, m, sigma).B))
    return mappings.FourierMapping(B, np.ones(m))


def _dense_gram(mapping, grid, kernel="ntk"):
    feats = mapping(grid.points())
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    return np.asarray(fn(ARCH, feats))


CASES = [
    ("periodic 1D", (256,), mappings.power_law(16, 1.0, normalize=True)),
    ("gaussian 1D", (256,), mappings.gaussian(3, 1, 16, 10.0)),
    ("periodic 16x16", (16, 16), _integer_mapping(0, 2, 64, 4.0)),
    ("gaussian 16x16", (16, 16), mappings.gaussian(0, 2, 64, 3.0)),
    ("periodic 12x20", (12, 20), _integer_mapping(1, 2, 64, 5.0)),
    ("gaussian 12x20", (12, 20), mappings.gaussian(1, 2, 64, 10.0)),
    ("positional 12x20", (12, 20), mappings.positional(2, 8, scale=3.0)),
    ("gaussian 3D", (6, 5, 4), mappings.gaussian(2, 3, 32, 2.0)),
    ("periodic 3D", (6, 5, 4), _integer_mapping(2, 3, 32, 3.0)),
]


@pytest.mark.parametrize("name, shape, mapping", CASES, ids=[c[0] for c in CASES])
def test_matvec_matches_dense_gram(name, shape, mapping, rng):
    grid = Grid(shape)
    K = _dense_gram(mapping, grid)
    op = grid_operator(ARCH, mapping, grid)
    assert op.is_circulant == mapping.is_periodic
    assert op.shape == (grid.size, grid.size)
    v = rng.standard_normal((grid.size, 3))
    expected = K @ v
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        np.asarray(op.matvec(v)), expected, rtol=0, atol=RTOL_MATVEC * scale
    )
    np.testing.assert_allclose(
        np.asarray(op.matvec(v[:, 0])), expected[:, 0], rtol=0, atol=RTOL_MATVEC * scale
    )
    np.testing.assert_allclose(float(op.diagonal_value), K[0, 0], rtol=1e-13)


@pytest.mark.parametrize("shape", [(256,), (12, 20), (6, 5, 4)])
def test_kernel_on_offsets_is_the_gram_column(shape):
    grid = Grid(shape)
    mapping = _integer_mapping(4, len(shape), 16, 3.0)
    col = np.asarray(kernel_on_offsets(ARCH, mapping, grid))
    K = _dense_gram(mapping, grid)
    assert col.shape == shape
    # Entry o is k(o / n) = K[o, 0]: the first column in C order.
    np.testing.assert_allclose(col.reshape(-1), K[:, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "shape, kernel", [((256,), "ntk"), ((12, 20), "ntk"), ((12, 20), "nngp")]
)
def test_embedding_entries(shape, kernel):
    grid = Grid(shape)
    mapping = mappings.gaussian(5, len(shape), 8, 4.0)
    emb = np.asarray(kernel_on_offsets(ARCH, mapping, grid, kernel=kernel, embed=True))
    assert emb.shape == tuple(2 * n for n in shape)
    idx = np.indices(emb.shape).reshape(len(shape), -1).T  # (M, d)
    n = np.array(shape)
    delta = np.where(idx > n, idx - 2 * n, idx) / n
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    ref = np.asarray(fn(ARCH, mapping(delta), mapping(np.zeros((1, len(shape))))))[:, 0]
    ref = np.where(np.any(idx == n, axis=1), 0.0, ref)
    np.testing.assert_allclose(emb.reshape(-1), ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(12, 20), (256,)])
def test_eigenvalues_by_frequency_label_fourier_modes(shape):
    grid = Grid(shape)
    mapping = _integer_mapping(6, len(shape), 32, 4.0)
    K = _dense_gram(mapping, grid)
    lam = np.asarray(grid_operator(ARCH, mapping, grid).eigenvalues_by_frequency())
    assert lam.shape == shape
    # K exp(2 pi i m.x) = Lambda(m) exp(2 pi i m.x) for every frequency m.
    freqs = np.meshgrid(*grid.frequencies(), indexing="ij")
    m = np.stack([f.ravel() for f in freqs], axis=1)  # (N, d) in FFT order
    modes = np.exp(2j * np.pi * grid.points() @ m.T)  # (N, N)
    lhs = K @ modes
    rhs = modes * lam.reshape(-1)[None, :]
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-11 * np.abs(lam).max())


def _chan_reference(K, shape):
    """Frobenius-optimal multilevel circulant: average K over pairs with equal wrapped
    offset, then its eigenvalues (fftn of the first column)."""
    idx = np.indices(shape).reshape(len(shape), -1).T
    off = (idx[:, None, :] - idx[None, :, :]) % np.array(shape)
    flat = np.ravel_multi_index(tuple(off.reshape(-1, len(shape)).T), shape)
    sums = np.bincount(flat, weights=K.reshape(-1), minlength=int(np.prod(shape)))
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    col = (sums / counts).reshape(shape)
    return np.fft.fftn(col).real


@pytest.mark.parametrize("shape", [(256,), (12, 20)])
def test_t_chan_preconditioner_matches_frobenius_projection(shape):
    grid = Grid(shape)
    mapping = mappings.gaussian(7, len(shape), 16, 5.0)
    K = _dense_gram(mapping, grid)
    op = grid_operator(ARCH, mapping, grid)
    got = np.asarray(op.t_chan_preconditioner())
    np.testing.assert_allclose(
        got, _chan_reference(K, shape), rtol=0, atol=1e-11 * K[0, 0]
    )
    # For a circulant Gram it is the Gram's own spectrum.
    per = _integer_mapping(7, len(shape), 16, 5.0)
    opc = grid_operator(ARCH, per, grid)
    np.testing.assert_allclose(
        np.asarray(opc.t_chan_preconditioner()),
        np.asarray(opc.eigenvalues_by_frequency()),
        rtol=1e-13,
        atol=1e-12,
    )


def test_pure_matvec_functions(rng):
    grid = Grid((12, 20))
    for mapping, fn in (
        (_integer_mapping(8, 2, 8, 3.0), circulant_matvec),
        (mappings.gaussian(8, 2, 8, 3.0), toeplitz_matvec),
    ):
        op = grid_operator(ARCH, mapping, grid)
        K = _dense_gram(mapping, grid)
        v = rng.standard_normal(grid.size)
        with jax.enable_x64(True):
            out = jax.jit(fn, static_argnums=2)(op.symbol, v, grid.shape)
            # The operator itself is a pytree argument of a jitted function.
            out2 = jax.jit(lambda o, x: o.matvec(x))(op, v)
        np.testing.assert_allclose(
            np.asarray(out2), np.asarray(out), rtol=1e-14, atol=0
        )
        np.testing.assert_allclose(
            np.asarray(out), K @ v, rtol=0, atol=1e-12 * K[0, 0] * 48
        )


def test_float32_operator(rng):
    grid = Grid((16, 16))
    mapping = mappings.gaussian(0, 2, 32, 3.0)
    op32 = grid_operator(ARCH, mapping, grid, dtype=np.float32)
    assert op32.dtype == np.float32
    K = _dense_gram(mapping, grid)
    v = rng.standard_normal(grid.size).astype(np.float32)
    out = np.asarray(op32.matvec(v))
    assert out.dtype == np.float32
    # float32 floor: about 1e-6 relative per entry, times sqrt(N) accumulation.
    np.testing.assert_allclose(out, K @ v, rtol=0, atol=1e-5 * np.abs(K @ v).max())


def test_errors_name_the_argument():
    grid = Grid((8, 8))
    with pytest.raises(ValueError, match="mapping.dim must equal grid.dim"):
        grid_operator(ARCH, mappings.basic(1), grid)
    with pytest.raises(TypeError, match="mapping must be a FourierMapping"):
        grid_operator(ARCH, mappings.identity(2), grid)
    with pytest.raises(ValueError, match="embed=False needs a periodic mapping"):
        kernel_on_offsets(ARCH, mappings.gaussian(0, 2, 4, 1.0), grid)
    with pytest.raises(TypeError, match="arch"):
        grid_operator("relu", mappings.basic(2), grid)
    with pytest.raises(TypeError, match="grid"):
        grid_operator(ARCH, mappings.basic(2), (8, 8))
    with pytest.raises(ValueError, match="kernel"):
        kernel_on_offsets(ARCH, mappings.basic(2), grid, kernel="gp")
    op = grid_operator(ARCH, mappings.gaussian(0, 2, 4, 1.0), grid)
    with pytest.raises(ValueError, match="eigenvalues_by_frequency needs a circulant"):
        op.eigenvalues_by_frequency()
    with pytest.raises(ValueError, match=r"v must have shape \(64,\)"):
        op.matvec(np.ones(10))


@settings(max_examples=5)
@given(
    shape=st.sampled_from([(256,), (12, 20), (6, 5, 4)]),
    seed=st.integers(0, 2**16),
    periodic=st.booleans(),
)
def test_matvec_is_symmetric(shape, seed, periodic):
    d = len(shape)
    mapping = (
        _integer_mapping(seed, d, 8, 3.0)
        if periodic
        else mappings.gaussian(seed, d, 8, 3.0)
    )
    op = grid_operator(ARCH, mapping, Grid(shape))
    r = np.random.default_rng(seed)
    u, v = r.standard_normal((2, op.shape[0]))
    lhs = float(u @ np.asarray(op.matvec(v)))
    rhs = float(v @ np.asarray(op.matvec(u)))
    assert abs(lhs - rhs) <= 1e-12 * float(op.diagonal_value) * op.shape[0]


# --------------------------------------------------------------------------------------
# The operator values of the operator layer, each against a dense Gram built here.
# --------------------------------------------------------------------------------------


def test_dense_operator_and_its_eigendecomposition(rng):
    from ntkspec.operators import DenseOperator, Shifted, dense_gram

    gauss = mappings.gaussian(1, 2, 16, 3.0)
    x = rng.random((30, 2))
    op = dense_gram(ARCH, gauss, x)
    assert isinstance(op, DenseOperator) and op.shape == (30, 30)
    K = _dense_gram_points(gauss, x)
    v = rng.standard_normal((30, 2))
    np.testing.assert_allclose(np.asarray(op.matvec(v)), K @ v, rtol=1e-13, atol=1e-13)
    eig = op.eigendecomposition()
    g = 1.0 / (np.asarray(eig.eigenvalues) + 0.5)
    got = np.asarray(eig.from_modes(g[:, None] * np.asarray(eig.to_modes(v))))
    np.testing.assert_allclose(
        got, np.linalg.solve(K + 0.5 * np.eye(30), v), rtol=1e-11, atol=1e-12
    )
    shifted = Shifted(op, 0.5)
    np.testing.assert_allclose(
        np.asarray(shifted.matvec(v)), K @ v + 0.5 * v, rtol=1e-13, atol=1e-13
    )


def _dense_gram_points(mapping, x1, x2=None, kernel="ntk"):
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    f2 = None if x2 is None else mapping(x2)
    return np.asarray(fn(ARCH, mapping(x1), f2))


@pytest.mark.parametrize("kernel", ["ntk", "nngp"])
def test_blocked_gram_matches_dense_with_near_pairs(rng, kernel):
    from ntkspec.operators import blocked_gram

    gauss = mappings.gaussian(2, 2, 16, 3.0)
    x = rng.random((50, 2))
    x[7] = x[3] + 1e-9  # a near-duplicate: corrected by the exact pair value
    x[9] = x[3]  # an exact duplicate
    xt = np.concatenate([rng.random((13, 2)), x[:2]])
    op = blocked_gram(ARCH, gauss(x), kernel=kernel, block_rows=8)
    assert op.shape == (50, 50) and op.corr_rows.size > 0
    v = rng.standard_normal((50, 3))
    K = _dense_gram_points(gauss, x, kernel=kernel)
    np.testing.assert_allclose(np.asarray(op.matvec(v)), K @ v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(op.matvec(v[:, 0])), K @ v[:, 0], rtol=0, atol=1e-12
    )
    test = blocked_gram(ARCH, gauss(xt), gauss(x), kernel=kernel, block_rows=4)
    Kt = _dense_gram_points(gauss, xt, x, kernel=kernel)
    assert test.shape == (15, 50)
    np.testing.assert_allclose(np.asarray(test.matvec(v)), Kt @ v, rtol=0, atol=1e-12)
    # a pytree: jit with the operator as an argument
    jitted = jax.jit(lambda o, w: o.matvec(w))
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(jitted(op, v)), K @ v, rtol=0, atol=1e-12)


# Odd last sides on 1-3 axes (even ones are in CASES): the real half-spectrum
# (n_d // 2 + 1 bins on the last axis) must reproduce the full product either way.
ODD_EVEN_SHAPES = [(7,), (6, 7), (3, 4, 5)]


@pytest.mark.parametrize("periodic", [True, False], ids=["circulant", "toeplitz"])
@pytest.mark.parametrize("shape", ODD_EVEN_SHAPES, ids=str)
def test_real_fft_matvec_equals_dense_on_odd_and_even_sides(shape, periodic, rng):
    d = len(shape)
    mapping = (
        _integer_mapping(5, d, 8, 2.0) if periodic else mappings.gaussian(5, d, 8, 2.0)
    )
    grid = Grid(shape)
    K = _dense_gram(mapping, grid)
    op = grid_operator(ARCH, mapping, grid)
    assert op.structure == ("circulant" if periodic else "toeplitz")
    # the stored symbol is the half-spectrum of the column (last axis n // 2 + 1)
    assert op.symbol.shape == op.column.shape[:-1] + (op.column.shape[-1] // 2 + 1,)
    for c in (None, 1, 3):  # a vector, a one-column block, a block (column by column)
        v = rng.standard_normal(grid.size if c is None else (grid.size, c))
        expected = K @ v
        np.testing.assert_allclose(
            np.asarray(op.matvec(v)),
            expected,
            rtol=0,
            atol=RTOL_MATVEC * np.abs(expected).max(),
        )
    if periodic:
        # the eigenvalues are the full DFT (all N, not the half-spectrum)
        lam = np.sort(np.asarray(op.eigenvalues_by_frequency()).ravel())
        np.testing.assert_allclose(
            lam, np.linalg.eigvalsh(K), rtol=0, atol=1e-12 * K[0, 0] * grid.size
        )


@pytest.mark.parametrize(
    "mapping",
    [mappings.gaussian(0, 2, 32, 3.0), _integer_mapping(0, 2, 32, 4.0)],
    ids=["toeplitz", "circulant"],
)
def test_grid_test_train_operator_matches_dense(rng, mapping):
    from ntkspec.operators import grid_operators

    g_tr, g_te = Grid((6, 8)), Grid((12, 16))
    train, test_train = grid_operators(ARCH, mapping, g_tr, g_te)
    assert test_train.shape == (192, 48) and train.shape == (48, 48)
    v = rng.standard_normal((48, 2))
    Kt = _dense_gram_points(mapping, g_te.points(), g_tr.points())
    K = _dense_gram_points(mapping, g_tr.points())
    scale = np.abs(Kt).sum(axis=1).max() * np.abs(v).max()
    np.testing.assert_allclose(
        np.asarray(test_train.matvec(v)), Kt @ v, rtol=0, atol=RTOL_MATVEC * scale
    )
    np.testing.assert_allclose(
        np.asarray(train.matvec(v)), K @ v, rtol=0, atol=RTOL_MATVEC * scale
    )


def test_circulant_eigendecomposition_matches_dense(rng):
    mapping = _integer_mapping(3, 2, 32, 4.0)
    grid = Grid((8, 6))
    eig = grid_operator(ARCH, mapping, grid).eigendecomposition()
    K = _dense_gram_points(mapping, grid.points())
    v = rng.standard_normal((48, 2))
    lam = np.asarray(eig.eigenvalues)
    modes = np.asarray(eig.to_modes(v))
    got = np.asarray(eig.from_modes((1.0 / (lam + 1.0))[..., None] * modes))
    np.testing.assert_allclose(
        got, np.linalg.solve(K + np.eye(48), v), rtol=1e-11, atol=1e-12
    )
    np.testing.assert_allclose(
        np.sort(lam.ravel()), np.linalg.eigvalsh(K), rtol=0, atol=1e-11 * lam.max()
    )
    with pytest.raises(ValueError, match="circulant"):
        grid_operator(ARCH, mappings.gaussian(0, 2, 8, 3.0), grid).eigendecomposition()


@pytest.mark.parametrize("form", ["dense", "sparse", "functions"])
def test_composed_operator_is_a_k_at(rng, form):
    import scipy.sparse

    from ntkspec.operators import composed, dense_gram, measurement

    gauss = mappings.gaussian(4, 1, 8, 2.0)
    x = rng.random((20, 1))
    K = _dense_gram_points(gauss, x)
    A = rng.standard_normal((7, 20)) * (rng.random((7, 20)) < 0.3)
    if form == "dense":
        meas = measurement(A)
    elif form == "sparse":
        meas = measurement(scipy.sparse.csr_matrix(A))
    else:
        import jax.numpy as jnp

        with jax.enable_x64(True):
            Aj = jnp.asarray(A)
        meas = measurement(lambda v: Aj @ v, lambda u: Aj.T @ u, shape=(7, 20))
    op = composed(meas, dense_gram(ARCH, gauss, x))
    assert op.shape == (7, 7)
    u = rng.standard_normal((7, 2))
    with jax.enable_x64(True):
        got = np.asarray(op.matvec(u))
    np.testing.assert_allclose(got, A @ K @ A.T @ u, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="columns"):
        composed(measurement(A[:, :5]), dense_gram(ARCH, gauss, x))
    with pytest.raises(TypeError, match="adjoint"):
        measurement(lambda v: v)


# --------------------------------------------------------------------------------------
# The operator protocol and the one path choice (issue 23).
# --------------------------------------------------------------------------------------


def test_structure_is_chosen_once_from_grid_and_mapping():
    from ntkspec.operators import structure

    per, gauss = mappings.basic(2), mappings.gaussian(0, 2, 8, 3.0)
    g, pts = Grid((4, 4)), np.zeros((3, 2))
    assert structure(per, g) == "circulant"
    assert structure(per, g, Grid((8, 8))) == "circulant"
    assert structure(gauss, g) == "toeplitz"
    assert structure(gauss, g, pts) == "points"  # test points: no grid structure
    assert structure(gauss, pts) == "points"
    assert structure(mappings.identity(), g) == "points"  # not stationary


def test_kernel_operator_builds_the_tagged_operator(monkeypatch):
    from ntkspec.operators import (
        STRUCTURES,
        KernelOperator,
        Shifted,
        kernel_operator,
    )

    per, gauss = _integer_mapping(0, 2, 16, 3.0), mappings.gaussian(0, 2, 16, 3.0)
    g, fine = Grid((6, 6)), Grid((12, 12))
    circ = kernel_operator(ARCH, per, g)
    toep, test_train = kernel_operator(ARCH, gauss, g, fine)
    dense = kernel_operator(ARCH, gauss, g.points())
    blocked = kernel_operator(ARCH, gauss, g.points(), max_bytes=100.0)
    tags = [op.structure for op in (circ, toep, test_train, dense, blocked)]
    assert tags == ["circulant", "toeplitz", "grid_test_train", "dense", "blocked"]
    for op in (circ, toep, test_train, dense, blocked, Shifted(circ, 1.0)):
        assert isinstance(op, KernelOperator) and op.structure in STRUCTURES
    assert circ.is_symmetric and dense.is_symmetric and not test_train.is_symmetric
    # Every structure applies the same Gram: dense reference on the grid's points.
    ref = _dense_gram(gauss, g)
    v = np.random.default_rng(0).standard_normal((g.size, 2))
    for op in (toep, dense, blocked):
        got = np.asarray(op.matvec(v))
        np.testing.assert_allclose(
            got, ref @ v, rtol=0, atol=RTOL_MATVEC * np.abs(ref @ v).max()
        )
    # The exact eigendecomposition of a shifted circulant: the DFT, shifted.
    eig = Shifted(circ, 0.5).eigendecomposition()
    lam = np.sort(np.asarray(eig.eigenvalues).ravel())
    ref_lam = np.linalg.eigvalsh(_dense_gram(per, g)) + 0.5
    np.testing.assert_allclose(lam, ref_lam, rtol=0, atol=1e-12 * ref_lam.max())


def test_offset_sin2_against_the_direct_sum_and_differentiable():
    from ntkspec.operators import offset_sin2

    m = _integer_mapping(2, 2, 8, 3.0)
    B, a = np.asarray(m.B), np.asarray(m.a)
    shape = (4, 6)
    for shift in (False, True):
        o = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1)
        delta = (o + (0.5 if shift else 0.0)) / np.array(shape)
        ref = np.sin(np.pi * delta @ B.T) ** 2 @ a**2 / np.sum(a**2)
        got = np.asarray(offset_sin2(m, shape, shift=shift))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-14)

    w = np.random.default_rng(1).random(shape)  # a plain sum is constant in a

    def total(amp):
        return (w * offset_sin2(mappings.FourierMapping(B, amp), shape)).sum()

    with jax.enable_x64(True):
        grad = np.asarray(jax.grad(total)(jax.numpy.asarray(a)))
        h, e0 = 1e-6, np.eye(a.size)[0]
        fd = (float(total(a + h * e0)) - float(total(a - h * e0))) / (2 * h)
    np.testing.assert_allclose(grad[0], fd, rtol=1e-7)


# Issue 28, item 2: the symmetry sectors of a grid Gram. The reference is the dense
# Gram of the grid points and the reflections written as index permutations here.
_AXIS1_ONLY = mappings.FourierMapping(
    np.array([[0.7, 1.3, 0.2], [0.7, -1.3, 0.2], [1.1, 0.4, -0.9], [1.1, -0.4, -0.9]]),
    np.array([1.0, 1.0, 0.5, 0.5]),
)
SECTOR_CASES = [
    ("gaussian 1D odd", (7,), mappings.gaussian(0, 1, 8, 3.0), (0,), 2),
    ("gaussian 5x6", (5, 6), mappings.gaussian(0, 2, 16, 3.0), (), 2),
    ("positional 5x7", (5, 7), mappings.positional(2, 4, 5.0), (0, 1), 4),
    ("basic 3D", (3, 4, 3), mappings.basic(3), (0, 1, 2), 8),
    ("axis 1 only 3x4x5", (3, 4, 5), _AXIS1_ONLY, (1,), 4),
]


def _reflection(shape, axes):
    """The permutation matrix reversing the given axes of a C-ordered grid."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    perm = np.flip(idx, axis=tuple(axes)).reshape(-1)
    return np.eye(perm.size)[perm]


@pytest.mark.parametrize(
    "name, shape, mapping, axes, count",
    SECTOR_CASES,
    ids=[c[0] for c in SECTOR_CASES],
)
def test_symmetry_sectors_block_diagonalise_the_gram(
    name, shape, mapping, axes, count, rng
):
    from ntkspec.operators import even_axes, symmetry_sectors

    grid = Grid(shape)
    K = _dense_gram(mapping, grid)
    assert even_axes(mapping) == axes
    # The reflections the split relies on commute with the dense Gram.
    for refl in [tuple(range(len(shape)))] + [(a,) for a in axes]:
        P = _reflection(shape, refl)
        np.testing.assert_allclose(P @ K @ P, K, rtol=0, atol=1e-13 * K.max())
    op = grid_operator(ARCH, mapping, grid)
    assert op.even_axes == axes
    sectors = symmetry_sectors(op)
    assert len(sectors) == count
    sizes = [s.size for s in sectors]
    assert sum(sizes) == grid.size
    bases = [np.asarray(s.lift(np.eye(s.size))) for s in sectors]
    B = np.concatenate(bases, axis=1)
    np.testing.assert_allclose(B.T @ B, np.eye(grid.size), rtol=0, atol=1e-15)
    M = B.T @ K @ B
    start = 0
    for s, b in zip(sectors, bases, strict=True):
        stop = start + s.size
        M[start:stop, start:stop] = 0.0
        # Each basis vector has the sector's parities under the reflections.
        for group, sign in zip(s.groups, s.signs, strict=True):
            P = _reflection(shape, group)
            np.testing.assert_allclose(P @ b, sign * b, rtol=0, atol=1e-15)
        np.testing.assert_allclose(
            np.asarray(s.project(np.eye(grid.size))), b.T, rtol=0, atol=0
        )
        v = rng.standard_normal((s.size, 2))
        ref = b.T @ K @ b @ v
        got = np.asarray(s.matvec(v))
        np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL_MATVEC * K.max() * 10)
        start = stop
    # Off the diagonal blocks the Gram vanishes (up to the Gram's rounding).
    assert np.abs(M).max() <= 1e-13 * K.max()


def test_symmetry_sectors_sizes_and_errors():
    from ntkspec.operators import SectorOperator, even_axes, symmetry_sectors

    op = grid_operator(ARCH, mappings.positional(2, 3, 4.0), Grid((5, 7)))
    sizes = sorted(s.size for s in symmetry_sectors(op))
    assert sizes == [2 * 3, 2 * 4, 3 * 3, 3 * 4]  # ceil/floor halves of 5 and 7
    assert all(isinstance(s, SectorOperator) for s in symmetry_sectors(op))
    # Rotated frequencies: even under the point reflection only.
    rot = mappings.FourierMapping(np.array([[1.0, 0.5], [0.5, -1.0]]), np.ones(2))
    assert even_axes(rot) == ()
    assert even_axes(mappings.identity(2)) == ()
    with pytest.raises(TypeError, match="operator"):
        symmetry_sectors(np.eye(3))
