"""ntkspec.design: predicted held-out error against dense references written here."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkspec
from ntkspec import design, mappings

ARCH = ntkspec.ReluMLP(3, b_std=0.1)
# Periodic: integer frequencies with uneven amplitudes (a circulant Gram).
PERIODIC = mappings.FourierMapping(
    np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [5.0, -1.0], [3.0, 3.0]]),
    np.array([1.0, 0.7, 0.4, 0.3, 0.2]),
)
GAUSS = mappings.gaussian(1, 2, 24, 4.0)  # non-integer: Toeplitz, Krylov path
RTOL = 1e-8  # the target, relative to the error


def _image(shape=(12, 10, 3), seed=0):
    return np.random.default_rng(seed).uniform(size=shape)


def _dense_error(
    arch, mapping, image, times, learning_rate=1.0, ridge=0.0, kernel="ntk"
):
    """Held-out MSE by eigh of the dense train Gram (kernels on points, no FFT)."""
    if image.ndim == mapping.dim:
        image = image[..., None]
    shape = image.shape[: mapping.dim]
    axes = [np.arange(s) / s for s in shape]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    tr = pts[(slice(None, None, 2),) * mapping.dim].reshape(-1, mapping.dim)
    te = pts[(slice(1, None, 2),) * mapping.dim].reshape(-1, mapping.dim)
    c = image.shape[-1]
    y = image[(slice(None, None, 2),) * mapping.dim].reshape(-1, c)
    y_te = image[(slice(1, None, 2),) * mapping.dim].reshape(-1, c)
    fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
    f_tr, f_te = np.asarray(mapping(tr)), np.asarray(mapping(te))
    K = np.asarray(fn(arch, f_tr)) + ridge * np.eye(len(tr))
    Kt = np.asarray(fn(arch, f_te, f_tr))
    lam, V = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    if math.isinf(times):
        phi = np.where(lam > 0, 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
    else:
        phi = -np.expm1(-learning_rate / y.size * times * lam) / lam
    pred = Kt @ V @ (phi[:, None] * (V.T @ y))
    return float(np.mean((pred - y_te) ** 2))


@pytest.mark.parametrize("time", [30.0, np.inf])
@pytest.mark.parametrize("mapping", [PERIODIC, GAUSS], ids=["periodic", "gaussian"])
def test_predicted_error_matches_dense(mapping, time):
    img = _image()
    got = design.predicted_error(ARCH, mapping, img, times=time, rtol=1e-13)
    want = _dense_error(ARCH, mapping, img, time)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


def test_predicted_error_matches_gd_dynamics_with_ridge_lr_nngp():
    img = _image((8, 8), seed=3)  # grey: (H, W)
    for mapping in (PERIODIC, GAUSS):
        kw = dict(times=7.0, learning_rate=2.5, ridge=0.05, kernel="nngp")
        got = design.predicted_error(ARCH, mapping, img, rtol=1e-11, **kw)
        _, ft = ntkspec.gd_dynamics(
            ARCH, mapping, ntkspec.Grid((4, 4)), img[::2, ::2].reshape(-1),
            ntkspec.Grid((8, 8)), [7.0], 2.5, kernel="nngp", ridge=0.05, rtol=1e-11,
        )  # fmt: skip
        want = np.mean((ft[0].reshape(8, 8)[1::2, 1::2] - img[1::2, 1::2]) ** 2)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
        want = _dense_error(ARCH, mapping, img, **kw)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("time", [5.0, np.inf])
def test_predicted_error_1d_signal(time):
    sig = _image((16, 2), seed=1)
    mp = mappings.power_law(6, 1.0)
    got = design.predicted_error(ARCH, mp, sig, times=time)
    np.testing.assert_allclose(got, _dense_error(ARCH, mp, sig, time), rtol=RTOL)


def test_time_zero_is_the_zero_predictor():
    img = _image((8, 8, 2))
    e = design.predicted_error(ARCH, PERIODIC, img, times=0.0)
    assert e == pytest.approx(np.mean(img[1::2, 1::2] ** 2), rel=1e-14)


@pytest.mark.parametrize("time", [20.0, np.inf])
def test_gradient_in_amplitudes_matches_central_differences(time):
    img = _image((8, 8, 2), seed=2)
    B, a0 = np.asarray(PERIODIC.B), np.asarray(PERIODIC.a)

    def err(a):
        return design.predicted_error(
            ARCH, mappings.FourierMapping(B, a), img, times=time
        )

    with jax.enable_x64(True):
        g = np.asarray(jax.grad(err)(jnp.asarray(a0)))
    h = 1e-5
    fd = np.array(
        [(err(a0 + h * e) - err(a0 - h * e)) / (2 * h) for e in np.eye(a0.size)]
    )
    # Central differences: O(h^2) truncation ~1e-10 relative, round-off ~1e-11 / h.
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9 * np.abs(fd).max())
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


def test_gradient_without_x64_in_the_caller_is_float32():
    img = _image((8, 8), seed=7)
    B = np.asarray(PERIODIC.B)

    def err(a):
        return design.predicted_error(
            ARCH, mappings.FourierMapping(B, a), img, times=10.0
        )

    g32 = jax.grad(err)(jnp.asarray(PERIODIC.a, dtype=jnp.float32))
    with jax.enable_x64(True):
        g64 = np.asarray(jax.grad(err)(jnp.asarray(PERIODIC.a)))
    assert g32.dtype == jnp.float32
    # float32 round-off through FFTs of 16 points and the kernel recursion.
    np.testing.assert_allclose(np.asarray(g32), g64, rtol=1e-3, atol=1e-6)


def test_gradient_through_psnr_and_jit():
    img = _image((8, 8), seed=4)
    B = np.asarray(PERIODIC.B)
    with jax.enable_x64(True):
        f = jax.jit(
            lambda a: design.predicted_psnr(
                ARCH, mappings.FourierMapping(B, a), img, times=10.0
            )
        )
        v = float(f(jnp.asarray(PERIODIC.a)))
    assert v == pytest.approx(
        design.predicted_psnr(ARCH, PERIODIC, img, times=10.0), rel=1e-12
    )


def test_krylov_path_refuses_tracing():
    img = _image((8, 8))
    B = np.asarray(GAUSS.B)
    with pytest.raises(TypeError, match="not differentiable"):
        jax.grad(
            lambda a: design.predicted_error(
                ARCH, mappings.FourierMapping(B, a), img, times=1.0
            )
        )(jnp.asarray(GAUSS.a))
    with pytest.raises(TypeError, match="mapping.B must be concrete"):
        jax.grad(lambda m: design.predicted_error(ARCH, m, img))(PERIODIC)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(image=np.zeros((1, 1))), ValueError, "even and >= 4"),
        (dict(image=np.zeros((5, 6))), ValueError, "even and >= 4"),
        (dict(image=np.zeros((8,))), ValueError, r"\(H, W\)"),
        (dict(image=np.full((4, 4), 1.5)), ValueError, r"\[0, 1\]"),
        (dict(image=np.full((4, 4), np.nan)), ValueError, "finite"),
        (dict(image="x.png"), TypeError, "array"),
        (dict(times=-1.0), ValueError, "times"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(ridge=-1.0), ValueError, "ridge"),
        (dict(kernel="rbf"), ValueError, "kernel"),
        (dict(mapping=mappings.identity(2)), TypeError, "FourierMapping"),
        (dict(arch="mlp"), TypeError, "arch"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(arch=ARCH, mapping=PERIODIC, image=np.zeros((4, 4)))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        design.predicted_error(args.pop("arch"), args.pop("mapping"), **args)


def test_suggest_scale_is_the_argmax_of_its_curve():
    img = _image((16, 16, 3), seed=5)
    s = design.suggest_scale(ARCH, img, num_freqs=16, times=50.0)
    assert s.scales.size >= 8 and s.predicted_psnr.shape == s.scales.shape
    assert np.all(np.diff(s.scales) > 0)
    assert s.scale == s.scales[np.argmax(s.predicted_psnr)] and s.time == 50.0
    k = 3
    mp = mappings.gaussian(0, 2, 16, float(s.scales[k]))
    want = -10 * math.log10(_dense_error(ARCH, mp, img, 50.0))
    assert s.predicted_psnr[k] == pytest.approx(want, abs=1e-4)
    d = s.to_dict()
    assert set(d) >= {"scale", "scales", "predicted_psnr", "time"}


def test_suggest_scale_positional_and_default_budget():
    img = _image((16, 16), seed=6)
    # rtol 1e-4: on this 8 x 8 train grid the Lanczos estimate stalls near 1e-6 once
    # the Krylov space is the whole space (dimension 64).
    s = design.suggest_scale(ARCH, img, family="positional", num_freqs=16, rtol=1e-4)
    assert s.time == design.DEFAULT_TIME and s.family == "positional"
    assert s.scales.size >= 8
    s2 = design.suggest_scale(
        ARCH, img, family="positional", num_freqs=16, learning_rate=10.0, rtol=1e-4
    )
    assert s2.time == design.DEFAULT_TIME / 10.0
    # Same eta * t: the same curve.
    np.testing.assert_allclose(s2.predicted_psnr, s.predicted_psnr, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(family="sinc"), "family"),
        (dict(scales=[1.0]), "at least 2"),
        (dict(scales=[1.0, -2.0]), "positive"),
        (dict(num_freqs=1), "num_freqs"),
        (dict(times=-3.0), "times"),
        (dict(image=np.zeros((2, 2))), "even and >= 4"),
    ],
)
def test_suggest_scale_bad_input(kwargs, match):
    args = dict(image=np.zeros((8, 8)))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        design.suggest_scale(ARCH, args.pop("image"), **args)


# --------------------------------------------------------------------------------------
# FreSh's spectrum and distance: hand-computed cases.
# --------------------------------------------------------------------------------------

# W1 of normalised spectra: a handful of float64 sums, exact to round-off
W1_RTOL, W1_ATOL = 1e-12, 1e-12
# |DFT| of a unit cosine on N points is N/2 at +-k (N^2/2 in 2-D), exact to round-off
DFT_RTOL, DFT_ATOL = 1e-12, 1e-9


def _cos(k, n=16):
    return np.cos(2 * np.pi * k * np.arange(n) / n)


def test_fresh_distance_matches_hand_computed_1d_cases():
    # One cosine at frequency 2 against one at 5: point masses at bins 2 and 5,
    # W1 = |5 - 2| = 3.
    np.testing.assert_allclose(
        design.fresh_distance(_cos(2), _cos(5)), 3.0, rtol=W1_RTOL, atol=W1_ATOL
    )
    # Target: frequencies 1 and 4 (mass 1/2 each); output: frequency 2.
    # W1 = 1/2 |2 - 1| + 1/2 |4 - 2| = 1.5 on all bins; with spectrum size 3
    # (bins 1..3) the target keeps only bin 1: W1 = |2 - 1| = 1.
    target, out = _cos(1) + _cos(4), _cos(2)
    np.testing.assert_allclose(
        design.fresh_distance(target, out), 1.5, rtol=W1_RTOL, atol=W1_ATOL
    )
    np.testing.assert_allclose(
        design.fresh_distance(target, out, size=3), 1.0, rtol=W1_RTOL, atol=W1_ATOL
    )
    # Unequal amplitudes, both spread: target 3 cos(1) + cos(3) has masses 3/4, 1/4 at
    # bins 1, 3; output cos(2) + cos(3) has 1/2, 1/2 at bins 2, 3. CDF differences
    # after bins 1, 2: 3/4 - 0 and 3/4 - 1/2, so W1 = 3/4 + 1/4 = 1. The amplitudes
    # are |DFT| (not power): the cosine of amplitude 3 weighs 3, not 9.
    np.testing.assert_allclose(
        design.fresh_distance(3 * _cos(1) + _cos(3), _cos(2) + _cos(3)),
        1.0, rtol=W1_RTOL, atol=W1_ATOL,
    )  # fmt: skip
    # The scale of either signal cancels (normalised spectra), the constant is dropped.
    np.testing.assert_allclose(
        design.fresh_distance(5 + 7 * _cos(2), _cos(5)), 3.0, rtol=W1_RTOL,
        atol=W1_ATOL,
    )  # fmt: skip
    # Channels are summed: a 2-channel signal whose channels are the two cosines.
    two = np.stack([_cos(1), _cos(4)], axis=1)
    np.testing.assert_allclose(
        design.fresh_distance(two, np.stack([out, out], axis=1), dim=1), 1.5,
        rtol=W1_RTOL, atol=W1_ATOL,
    )  # fmt: skip
    # The 1-D spectrum vector itself: bins 1..8 of |DFT|, 16/2 = 8 at the frequency.
    spec = design.fresh_spectrum(_cos(2))
    assert spec.shape == (8,)
    np.testing.assert_allclose(spec, 8.0 * (np.arange(1, 9) == 2), atol=DFT_ATOL)


def test_fresh_spectrum_2d_bins_by_index_sum_of_one_conjugate_representative():
    n = 8
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    # (1, 2): bin 1 + 2 = 3, weight n^2/2 = 32 per channel (its conjugate (7, 6) is
    # not counted)
    same = np.cos(2 * np.pi * (1 * i + 2 * j) / n)
    spec = design.fresh_spectrum(np.stack([same] * 3, axis=-1))
    assert spec.shape == (2 * n - 2,)
    expect = np.zeros(2 * n - 2)
    expect[3 - 1] = 3 * n * n / 2
    np.testing.assert_allclose(spec, expect, rtol=DFT_RTOL, atol=DFT_ATOL)
    # (1, -2) = unshifted (1, 6): bin 7 = n - 1 (a mixed-sign frequency lands near n,
    # where a radial |k1| + |k2| binning would put it at 3)
    mixed = np.cos(2 * np.pi * (1 * i - 2 * j) / n)
    expect = np.zeros(2 * n - 2)
    expect[7 - 1] = n * n / 2
    np.testing.assert_allclose(
        design.fresh_spectrum(mixed), expect, rtol=DFT_RTOL, atol=DFT_ATOL
    )
    # (0, 5) = (0, -3): the axis entry k2 > n/2 is dropped, its conjugate (0, 3) kept
    axis = np.cos(2 * np.pi * 5 * j / n)
    expect = np.zeros(2 * n - 2)
    expect[3 - 1] = n * n / 2
    np.testing.assert_allclose(
        design.fresh_spectrum(axis), expect, rtol=DFT_RTOL, atol=DFT_ATOL
    )
    # so the distance between (1, 2) and (1, -2) is 7 - 3 = 4 bins
    np.testing.assert_allclose(
        design.fresh_distance(same, mixed), 4.0, rtol=W1_RTOL, atol=W1_ATOL
    )
    # a constant has no spectrum: infinite distance, not a NaN
    assert design.fresh_distance(np.ones((n, n)), same) == math.inf


def test_fresh_bad_input_is_refused_with_the_argument_named():
    sq = np.zeros((8, 8))
    with pytest.raises(ValueError, match="same shape"):
        design.fresh_distance(sq, sq[:, :4])
    with pytest.raises(ValueError, match="size"):
        design.fresh_distance(sq, sq, size=0)
    with pytest.raises(TypeError, match="size"):
        design.fresh_distance(sq, sq, size=2.5)
    with pytest.raises(ValueError, match="square"):
        design.fresh_spectrum(np.zeros((8, 6)))
    with pytest.raises(ValueError, match="dim"):
        design.fresh_spectrum(sq, dim=3)
    with pytest.raises(ValueError, match="finite"):
        design.fresh_spectrum(np.full(8, np.nan))
    with pytest.raises(TypeError, match="real"):
        design.fresh_spectrum(np.zeros(8, complex))
