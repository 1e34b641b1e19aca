"""Data: the 1D power-law signal, bundled image sets, splits and PSNR."""

import math

import numpy as np
import pytest

from ntkspec import data
from ntkspec.grid import Grid


def test_power_law_signal_band_limit_and_range():
    x, y = data.power_law_signal(3)
    assert x.shape == (256, 1) and y.shape == (256,)
    np.testing.assert_allclose(x[:, 0], np.arange(256) / 256, rtol=0, atol=0)
    assert y.min() == pytest.approx(-0.5) and y.max() == pytest.approx(0.5)
    # Re(IDFT) of coefficients on k < 64 only: DFT support on |k| < 64
    spec = np.abs(np.fft.fft(y))
    assert np.max(spec[64:193]) < 1e-12 * np.max(spec)
    # deterministic per seed, different across seeds
    np.testing.assert_array_equal(y, data.power_law_signal(3)[1])
    assert not np.allclose(y, data.power_law_signal(4)[1])


def test_power_law_signal_spectrum_slope():
    """Averaged power |Y_k|^2 falls like (1 + k)^(-2 alpha) before scaling."""
    k = np.arange(1, 60)
    power = np.zeros(59)
    for seed in range(200):
        _, y = data.power_law_signal(seed, data_power=1.0, band_limit=None)
        power += np.abs(np.fft.fft(y))[1:60] ** 2
    slope = np.polyfit(np.log(1 + k), np.log(power), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.15)


def test_signal_1d_task_split():
    x_tr, y_tr, x_te, y_te = data.signal_1d_task(0)
    assert x_tr.shape == (32, 1) and x_te.shape == (224, 1)
    np.testing.assert_allclose(x_tr[:, 0], np.arange(32) / 32)
    assert len(np.intersect1d(x_tr, x_te)) == 0


def test_image_task_split_and_indices():
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 3))
    g_tr, y_tr, g_te, y_te = data.image_task(img)
    assert g_tr == Grid((4, 4)) and g_te == Grid((8, 8))
    np.testing.assert_array_equal(y_tr, img[::2, ::2].reshape(16, 3))
    np.testing.assert_array_equal(y_te, img.reshape(64, 3))
    # Grid points line up with pixels: train point k/4 is pixel 2k of the image
    np.testing.assert_allclose(
        g_tr.points() * 8, g_te.points()[data.train_indices((8, 8))] * 8
    )
    held = data.heldout_indices((8, 8))
    np.testing.assert_array_equal(y_te[held], img[1::2, 1::2].reshape(-1, 3))
    pix = np.rint(g_te.points()[held] * 8).astype(int)
    assert np.all(pix % 2 == 1)
    non = data.nontrain_indices((8, 8))
    assert non.size == 48
    assert len(np.intersect1d(non, data.train_indices((8, 8)))) == 0
    with pytest.raises(ValueError, match="r even"):
        data.image_task(np.zeros((7, 7, 3)))


def test_psnr():
    assert data.psnr(np.full(4, 0.1), np.zeros(4)) == pytest.approx(20.0, abs=1e-12)
    t = np.linspace(0, 1, 30)
    noise = 0.01 * np.sin(np.arange(30))
    assert data.psnr(t + noise, t) == pytest.approx(-10 * math.log10(np.mean(noise**2)))
    assert data.psnr(t, t) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        data.psnr(t, t[:-1])


@pytest.mark.slow
def test_bundled_image_sets():
    nat = data.natural_images()
    assert set(nat) == {
        "astronaut",
        "immunohistochemistry",
        "hubble_deep_field",
        "retina",
        "grace_hopper",
    }
    txt = data.text_images(num_rendered=2)
    assert set(txt) == {"text", "page", "rendered_0", "rendered_1"}
    for img in [*nat.values(), *txt.values()]:
        assert img.shape == (512, 512, 3) and img.dtype == np.float64
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05
    # rendering is deterministic for a seed
    np.testing.assert_array_equal(txt["rendered_1"], data.rendered_text_image(1))
    # rendered text is mostly white background with coloured strokes
    assert np.mean(txt["rendered_0"] > 0.95) > 0.5


def test_text_set_is_deterministic_given_the_seed():
    a = data.text_set(96, count=8, seed=3)
    b = data.text_set(96, count=8, seed=3)
    assert list(a) == [f"text_{i}" for i in range(8)]
    for name in a:
        assert a[name].shape == (96, 96, 3) and a[name].dtype == np.float64
        np.testing.assert_array_equal(a[name], b[name])
    other = data.text_set(96, count=2, seed=4)
    for name in other:
        assert not np.array_equal(other[name], a[name])
    # the images of a set differ from each other, and a longer set extends a shorter
    assert not np.array_equal(a["text_0"], a["text_1"])
    np.testing.assert_array_equal(
        data.text_set(96, count=1, seed=3)["text_0"], a["text_0"]
    )


def test_text_set_looks_like_coloured_text_on_white():
    img = data.text_set(256, count=1, seed=0)["text_0"]
    assert 0.0 <= img.min() and img.max() <= 1.0
    white = np.all(img > 0.97, axis=2).mean()
    assert 0.3 < white < 0.95  # a page full of strokes, not a blank or a solid one
    ink = img[np.any(img < 0.7, axis=2)]
    # several hues: the per-channel spread of the ink is large
    assert ink.std(axis=0).min() > 0.1
    # crops keep the pixel pitch: a crop is the centre of the full image
    crop = data.text_set(256, count=1, seed=0, crop=64)["text_0"]
    np.testing.assert_array_equal(crop, img[96:160, 96:160])


def test_text_set_checks_arguments():
    with pytest.raises(ValueError, match="count"):
        data.text_set(64, count=0)
    with pytest.raises(ValueError, match="crop"):
        data.text_set(64, count=1, crop=128)
    with pytest.raises(TypeError, match="res"):
        data.text_set(64.0)


def test_natural_set_has_five_full_size_photos_and_more_as_crops():
    crops = data.natural_set(512, crop=64)
    assert len(crops) >= 8 and "cat" not in crops  # cat is chelsea
    for img in crops.values():
        assert img.shape == (64, 64, 3) and img.dtype == np.float64
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.01
    # a photo smaller than 512 is cropped at its native resolution (no resize)
    import skimage.data as skdata

    coffee = skdata.coffee() / 255.0
    np.testing.assert_allclose(
        crops["coffee"], coffee[168:232, 268:332], rtol=0, atol=1e-15
    )
    # at 512 only the photos at least that large, none upsampled
    sizes = {k: v[1] for k, v in data.NATURAL_SET.items()}
    full = [k for k in data.NATURAL_SET if sizes[k] >= 512]
    assert len(full) >= 5
    small = data.natural_set(512, names=["coffee", "astronaut"])
    assert list(small) == ["astronaut"]
    with pytest.raises(ValueError, match="names"):
        data.natural_set(64, names=["lily"])
