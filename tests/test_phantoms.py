"""Phantoms: an independent ellipse sum for the plain table, ranges, determinism."""

import numpy as np
import pytest

from ntkspec import phantoms

# The modified Shepp-Logan table (Toft 1996, Table B.1; angles in degrees), written out
# here independently of phantominator: grey, semi-axis a, semi-axis b, xc, yc, angle.
_TABLE_2D = np.array(
    [
        [1.0, 0.69, 0.92, 0.0, 0.0, 0.0],
        [-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0],
        [-0.2, 0.11, 0.31, 0.22, 0.0, -18.0],
        [-0.2, 0.16, 0.41, -0.22, 0.0, 18.0],
        [0.1, 0.21, 0.25, 0.0, 0.35, 0.0],
        [0.1, 0.046, 0.046, 0.0, 0.1, 0.0],
        [0.1, 0.046, 0.046, 0.0, -0.1, 0.0],
        [0.1, 0.046, 0.023, -0.08, -0.605, 0.0],
        [0.1, 0.023, 0.023, 0.0, -0.605, 0.0],
        [0.1, 0.023, 0.046, 0.06, -0.605, 0.0],
    ]
)


def _reference_2d(h, w):
    # Columns run over x in [-1, 1], rows over y in [-1, 1] (phantominator's layout).
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    img = np.zeros((h, w))
    for g, a, b, xc, yc, deg in _TABLE_2D:
        t = np.deg2rad(deg)
        u = (x - xc) * np.cos(t) + (y - yc) * np.sin(t)
        v = (x - xc) * np.sin(t) - (y - yc) * np.cos(t)
        img += g * ((u / a) ** 2 + (v / b) ** 2 <= 1)
    return np.clip(img, 0, 1)


@pytest.mark.parametrize("shape", [(64, 64), (48, 40)])
def test_unperturbed_phantom_matches_ellipse_sum(shape):
    img = phantoms.shepp_logan(shape, noise_scale=0.0)
    ref = _reference_2d(*shape)
    # Pixels exactly on an ellipse boundary may round either way: allow a handful.
    assert img.shape == shape
    assert np.mean(np.abs(img - ref) > 1e-12) < 0.002


def test_ct_phantoms_shapes_ranges_determinism():
    a = phantoms.ct_phantoms(32, num_search=3, num_test=2, seed=1)
    b = phantoms.ct_phantoms(32, num_search=3, num_test=2, seed=1)
    c = phantoms.ct_phantoms(32, num_search=1, num_test=2, seed=1)
    d = phantoms.ct_phantoms(32, num_search=3, num_test=2, seed=2)
    assert a.search.shape == (3, 32, 32) and a.test.shape == (2, 32, 32)
    assert a.search.dtype == np.float64
    assert a.search.min() >= 0.0 and a.search.max() <= 1.0
    np.testing.assert_array_equal(a.search, b.search)
    np.testing.assert_array_equal(a.test, c.test)  # test set independent of num_search
    assert not np.array_equal(a.test, d.test)
    assert not np.array_equal(a.search[0], a.search[1])
    # Perturbed, not the plain phantom, but close to it (parameters move by ~1/20).
    plain = phantoms.shepp_logan(32, noise_scale=0.0)
    diff = np.mean(np.abs(a.search - plain), axis=(1, 2))
    assert np.all(diff > 0) and np.all(diff < 0.3)


def test_mri_phantoms_3d():
    s = phantoms.mri_phantoms(16, num_search=1, num_test=1, seed=0)
    assert s.search.shape == (1, 16, 16, 16) and s.test.shape == (1, 16, 16, 16)
    assert 0.0 <= s.test.min() and s.test.max() <= 1.0
    assert s.test.std() > 0.05  # not blank: the head and its ellipsoids are visible
    np.testing.assert_array_equal(
        s.test[0], phantoms.shepp_logan(16, dim=3, split="test", index=0)
    )


def test_bad_input():
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        phantoms.shepp_logan(8, dim=4)
    with pytest.raises(ValueError, match="resolution must be"):
        phantoms.shepp_logan((8, 8, 8), dim=2)
    with pytest.raises(ValueError, match=r"resolution\[0\] must be an integer >= 2"):
        phantoms.ct_phantoms((1, 8))
    with pytest.raises(ValueError, match="split must be"):
        phantoms.shepp_logan(8, split="train")
    with pytest.raises(ValueError, match="noise_scale must be >= 0"):
        phantoms.shepp_logan(8, noise_scale=-1.0)
    with pytest.raises(ValueError, match="num_test must be an integer >= 0"):
        phantoms.ct_phantoms(8, num_test=-1)
    with pytest.raises(TypeError, match="seed"):
        phantoms.mri_phantoms(8, seed=1.5)
