"""The FreSh baseline of the scale_suggestion study on hand-made spectra."""

import numpy as np
import pytest

from ntkspec.studies import scale_suggestion as ss


def _wave(k1, k2, n=16, c=2):
    x = np.arange(n) / n
    w = np.cos(2 * np.pi * (k1 * x[:, None] + k2 * x[None, :]))
    return np.repeat(w[..., None], c, axis=-1)


def test_fresh_spectrum_puts_a_plane_wave_in_its_l1_bin():
    spec = ss.fresh_spectrum(_wave(3, -2))
    # Two DFT peaks (+-k) of magnitude n^2 / 2 per channel, both at |k1| + |k2| = 5.
    want = np.zeros(16)
    want[5 - 1] = 2 * 2 * (16 * 16 / 2)
    np.testing.assert_allclose(spec, want, rtol=1e-12, atol=1e-9)


def test_fresh_distance_is_the_bin_shift_between_plane_waves():
    assert ss.fresh_distance(_wave(1, 0), _wave(4, 0)) == pytest.approx(3.0, rel=1e-12)
    assert ss.fresh_distance(_wave(2, 1), _wave(1, 2)) == pytest.approx(0.0, abs=1e-12)


def test_fresh_choice_returns_one_of_the_sigmas():
    img = np.random.default_rng(0).uniform(size=(8, 8, 3))
    choice, dist = ss.fresh_choice(img, sigmas=(1.0, 4.0), inits=1)
    assert choice in (1.0, 4.0) and len(dist) == 2
    assert choice == (1.0, 4.0)[int(np.argmin(dist))]
