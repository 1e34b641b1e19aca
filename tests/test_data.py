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
