"""ntkspec.plotting: every helper draws on Agg and the drawn data equal the input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ntkspec import plotting  # noqa: E402

# The plotted data must be the input values, bit for bit (matplotlib stores float64).
RTOL, ATOL = 0.0, 0.0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _xy(line):
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def test_eigenvalue_spectrum_draws_rank_and_values(rng):
    lam = np.sort(rng.uniform(0.01, 1.0, 40))[::-1]
    ax = plotting.eigenvalue_spectrum(lam, label="ntk")
    x, y = _xy(ax.lines[0])
    np.testing.assert_allclose(x, np.arange(1, 41), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y, lam, rtol=RTOL, atol=ATOL)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    ax2 = plotting.eigenvalue_spectrum(lam, normalize=True)
    np.testing.assert_allclose(_xy(ax2.lines[0])[1], lam / lam[0], rtol=1e-15, atol=0)


def test_eigenvalue_spectrum_draws_on_given_ax():
    fig, ax = plt.subplots()
    out = plotting.eigenvalue_spectrum([3.0, 2.0, 1.0], ax)
    assert out is ax and len(ax.lines) == 1


def test_radial_spectrum_sorted_by_frequency(rng):
    freq = rng.uniform(0.0, 10.0, 30)
    lam = rng.uniform(0.1, 1.0, 30)
    ax = plotting.radial_spectrum(freq, lam)
    x, y = _xy(ax.lines[0])
    order = np.argsort(freq, kind="stable")
    np.testing.assert_allclose(x, freq[order], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y, lam[order], rtol=RTOL, atol=ATOL)


def test_kernel_profile_draws_input(rng):
    d = np.linspace(-0.5, 0.5, 21)
    k = np.exp(-(d**2))
    ax = plotting.kernel_profile(d, k, label="k")
    x, y = _xy(ax.lines[0])
    np.testing.assert_allclose(x, d, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y, k, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("log", [True, False])
def test_frequency_image_array_equals_input(rng, log):
    img = rng.uniform(1e-6, 1.0, (9, 12))
    ax = plotting.frequency_image(img, log=log, title="t")
    drawn = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(drawn, img, rtol=RTOL, atol=ATOL)
    left, right, bottom, top = ax.images[0].get_extent()
    assert (left, right) == (-6.5, 5.5) and (top, bottom) == (-4.5, 4.5)


def test_curves_one_line_per_curve(rng):
    t = np.arange(10.0)
    ys = {"train": rng.uniform(0.1, 1, 10), "test": rng.uniform(0.1, 1, 10)}
    ax = plotting.curves(t, ys, logx=False)
    assert [ln.get_label() for ln in ax.lines] == ["train", "test"]
    for line, y in zip(ax.lines, ys.values(), strict=True):
        x, yy = _xy(line)
        np.testing.assert_allclose(x, t, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(yy, y, rtol=RTOL, atol=ATOL)


def test_image_grid_shows_each_image(rng):
    ims = [
        rng.uniform(0, 1, (8, 8)),
        rng.uniform(0, 1, (8, 8, 3)),
        rng.uniform(0, 1, (8, 8)),
    ]
    fig = plotting.image_grid(ims, titles=["a", "b", "c"], ncols=2)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3
    for ax, im in zip(axes, ims, strict=True):
        np.testing.assert_allclose(
            np.asarray(ax.images[0].get_array()), im, rtol=RTOL, atol=ATOL
        )
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: plotting.eigenvalue_spectrum(np.ones((2, 2))), "eigenvalues"),
        (lambda: plotting.radial_spectrum([1.0, 2.0], [1.0]), "same shape"),
        (lambda: plotting.kernel_profile([1.0], [1.0, 2.0]), "same shape"),
        (lambda: plotting.frequency_image(np.ones(3)), "2-D"),
        (lambda: plotting.frequency_image(-np.ones((2, 2))), "positive"),
        (lambda: plotting.curves([1.0, 2.0], {"a": [1.0]}), "match"),
        (lambda: plotting.image_grid([np.ones((2, 2, 5))]), r"images\[0\]"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
