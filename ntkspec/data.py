r"""The paper's 1D signals and 2D image-regression tasks, from bundled images only.

1D (Tancik et al. 2020, Fig. 2/3, official notebook ``1d_regression``): a random
power-law signal on a 256-point grid of [0, 1); DFT coefficient k is a complex standard
normal times :math:`(1 + \min(k, 256 - k))^{-\alpha}`, coefficients at indices >= 64 are
zeroed, the real part of the inverse DFT is kept and min-max scaled to [-0.5, 0.5].
Train on every 8th point, test on the other 224.

2D (Table 1, official notebook ``2d_image_regression``): 512 x 512 RGB images in [0, 1];
train on the pixels ``[::2, ::2]`` (a 256 x 256 grid), predict the full 512 x 512 grid;
the official PSNR is measured on the held-out pixels ``[1::2, 1::2]``. The paper's DIV2K
and text sets are downloads; the stand-ins here come from packages, with no download:

* natural set: scikit-image's ``astronaut`` and ``immunohistochemistry`` (512 x 512 as
  shipped), ``hubble_deep_field`` (872 x 1000: centre crop 872 x 872, then resize to
  512) and ``retina`` (1411 x 1411: resize to 512), and matplotlib's
  ``grace_hopper.jpg`` sample (600 x 512: centre crop to 512 x 512). Downsampling uses
  :func:`skimage.transform.resize` (bilinear, Gaussian anti-aliasing); nothing is
  upsampled.
* text set: scikit-image's grayscale scans ``text`` (172 x 448) and ``page``
  (191 x 384), tiled periodically to fill 512 x 512 (no upsampling, which would smooth
  the strokes) and repeated on the three channels; plus images of random words in
  random DejaVu fonts, sizes and colours on white, rendered by matplotlib's Agg backend
  at 512 x 512 with a fixed seed (the paper's text set was of this kind).

PSNR follows the official code: :math:`-10\log_{10}\mathrm{MSE}` on data in [0, 1], the
MSE averaged over pixels and channels, predictions not clipped.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
"""

from __future__ import annotations

import math
import typing

import numpy as np

from ._validation import check_positive_int, check_real

__all__ = [
    "ImageTask",
    "power_law_signal",
    "signal_1d_task",
    "natural_images",
    "text_images",
    "rendered_text_image",
    "NATURAL_SET",
    "natural_set",
    "random_text_image",
    "text_set",
    "image_task",
    "natural_tasks",
    "text_tasks",
    "heldout_indices",
    "nontrain_indices",
    "train_indices",
    "psnr",
    "IMAGE_RES",
]

#: Side of the square images (pixels).
IMAGE_RES = 512


def power_law_signal(
    seed: int = 0,
    *,
    num_points: int = 256,
    data_power: float = 1.0,
    band_limit: int | None = 64,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The paper's random power-law 1D signal on the grid :math:`x_k = k/N`.

    .. math:: Y_k = z_k\,(1 + \min(k, N - k))^{-\alpha},\quad
        z_k \sim \mathcal{CN}(0, 1)
        \text{ (real and imaginary parts standard normal)},

    :math:`Y_k = 0` for :math:`k \ge` ``band_limit``, :math:`y = \mathrm{Re}\,
    \mathrm{IDFT}(Y)`, min-max scaled to [-0.5, 0.5].

    Args:
        seed: NumPy ``default_rng`` seed.
        num_points: N (the notebook: 32 x 8 = 256).
        data_power: :math:`\alpha` (the notebook: 1).
        band_limit: first zeroed DFT index (None: no band limit).

    Returns:
        ``(x, y)``: x of shape (N, 1) in [0, 1), y of shape (N,) in [-0.5, 0.5].
    """
    num_points = check_positive_int(num_points, "num_points", minimum=2)
    check_real(data_power, "data_power")
    rng = np.random.default_rng(seed)
    k = np.arange(num_points)
    z = rng.standard_normal(num_points) + 1j * rng.standard_normal(num_points)
    coef = z * (1.0 + np.minimum(k, num_points - k)) ** (-float(data_power))
    if band_limit is not None:
        band_limit = check_positive_int(band_limit, "band_limit")
        coef[band_limit:] = 0.0
    y = np.real(np.fft.ifft(coef))
    y = (y - y.min()) / (y.max() - y.min()) - 0.5
    return (k / num_points)[:, None], y


def signal_1d_task(
    seed: int = 0, *, num_points: int = 256, stride: int = 8, data_power: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 1D task: train on every ``stride``-th point, test on the others.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` with x of shape (n, 1), y of shape (n,).
    """
    stride = check_positive_int(stride, "stride", minimum=2)
    x, y = power_law_signal(seed, num_points=num_points, data_power=data_power)
    train = np.zeros(num_points, dtype=bool)
    train[::stride] = True
    return x[train], y[train], x[~train], y[~train]


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def _to_float_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    else:
        img = img.astype(np.float64)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


def _centre_crop_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[top : top + s, left : left + s]


def _square_512(img: np.ndarray, res: int) -> np.ndarray:
    img = _centre_crop_square(_to_float_rgb(img))
    if img.shape[0] != res:
        if img.shape[0] < res:
            raise ValueError(f"image of side {img.shape[0]} is smaller than {res}")
        from skimage.transform import resize

        img = resize(img, (res, res, 3), order=1, anti_aliasing=True, mode="reflect")
    return np.clip(img, 0.0, 1.0)


def natural_images(res: int = IMAGE_RES) -> dict[str, np.ndarray]:
    """The natural-image set: five colour photographs, (res, res, 3) float64 in [0, 1].

    Sources and preparation in the module docstring (no downloads).
    """
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg
    import skimage.data as skdata

    res = check_positive_int(res, "res")
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        hopper = mpimg.imread(fh, format="jpg")
    raw = {
        "astronaut": skdata.astronaut(),
        "immunohistochemistry": skdata.immunohistochemistry(),
        "hubble_deep_field": skdata.hubble_deep_field(),
        "retina": skdata.retina(),
        "grace_hopper": hopper,
    }
    return {name: _square_512(img, res) for name, img in raw.items()}


_WORDS = (
    "Fourier features let networks learn high frequency functions in low dimensional "
    "domains kernel spectrum tangent regression coordinate image pixel signal neural "
    "sigma gaussian encoding positional basic mapping stationary eigenvalue bandwidth "
    "alias Nyquist train test PSNR 2020 NeurIPS"
).split()


def rendered_text_image(
    seed: int, res: int = IMAGE_RES, num_words: int = 28
) -> np.ndarray:
    """Random words in random fonts, sizes and colours on white, rendered by matplotlib.

    Deterministic for a seed (Agg rasteriser, DejaVu fonts bundled with matplotlib).

    Returns:
        (res, res, 3) float64 in [0, 1].
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    res = check_positive_int(res, "res")
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(res / 100, res / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    families = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")
    styles = ("normal", "italic")
    weights = ("normal", "bold")
    for _ in range(num_words):
        fig.text(
            rng.uniform(-0.1, 0.9),
            rng.uniform(0.0, 0.97),
            " ".join(rng.choice(_WORDS, size=rng.integers(1, 4))),
            fontsize=float(rng.uniform(8, 40)),
            family=families[rng.integers(len(families))],
            style=styles[rng.integers(2)],
            weight=weights[rng.integers(2)],
            color=tuple(rng.uniform(0.0, 0.8, size=3)),
        )
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[:, :, :3].astype(np.float64) / 255.0
    return img[:res, :res]


def text_images(res: int = IMAGE_RES, num_rendered: int = 4) -> dict[str, np.ndarray]:
    """The text set: tiled ``text`` and ``page`` scans plus rendered text images.

    Returns:
        name -> (res, res, 3) float64 in [0, 1].
    """
    import skimage.data as skdata

    res = check_positive_int(res, "res")
    out = {}
    for name in ("text", "page"):
        scan = _to_float_rgb(getattr(skdata, name)())
        reps = (math.ceil(res / scan.shape[0]), math.ceil(res / scan.shape[1]), 1)
        out[name] = np.tile(scan, reps)[:res, :res]
    for i in range(num_rendered):
        out[f"rendered_{i}"] = rendered_text_image(seed=i, res=res)
    return out


# --------------------------------------------------------------------------------------
# Image sets for statistics (issue 13): more photos, a text set like the paper's
# --------------------------------------------------------------------------------------

#: The natural set's photos in the order the studies take them: name -> (source, side
#: of the square centre crop at native resolution). scikit-image's ``cat`` is the same
#: picture as ``chelsea`` and is left out.
NATURAL_SET = {
    "astronaut": ("skimage", 512),
    "coffee": ("skimage", 400),
    "immunohistochemistry": ("skimage", 512),
    "chelsea": ("skimage", 300),
    "rocket": ("skimage", 427),
    "grace_hopper": ("matplotlib", 512),
    "retina": ("skimage", 1411),
    "hubble_deep_field": ("skimage", 872),
}


def _natural_raw(name: str) -> np.ndarray:
    source, _ = NATURAL_SET[name]
    if source == "matplotlib":
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        with cbook.get_sample_data(f"{name}.jpg") as fh:
            return mpimg.imread(fh, format="jpg")
    import skimage.data as skdata

    return getattr(skdata, name)()


def natural_set(
    res: int = IMAGE_RES, *, crop: int | None = None, names=None
) -> dict[str, np.ndarray]:
    """Photos bundled with scikit-image and matplotlib, as (s, s, 3) float64 in [0, 1].

    Every photo of :data:`NATURAL_SET` (or of ``names``) is centre-cropped to a square
    and prepared without upsampling, which would remove high frequencies and inflate
    PSNR:

    * ``crop=None``: the square is resized to ``res`` (bilinear, anti-aliased); photos
      whose shorter side is below ``res`` are left out (at 512: astronaut,
      immunohistochemistry, grace_hopper, retina, hubble_deep_field).
    * ``crop=c``: the centre ``c`` x ``c`` pixels of the photo at pixel pitch 1/``res``:
      photos larger than ``res`` are first resized to ``res`` (as with ``crop=None``),
      smaller ones are cropped at their native resolution (a pixel stays a pixel).
      Photos smaller than ``c`` are left out.

    Args:
        res: side of the prepared square (``crop=None``) or of the nominal image the
            crop is taken from.
        crop: side of the centre crop, or None.
        names: photos to load (default: all of :data:`NATURAL_SET`, in its order).

    Returns:
        name -> image, in :data:`NATURAL_SET` order.

    Raises:
        ValueError: ``res``/``crop`` not a positive integer, ``crop`` > ``res``, an
            unknown name.
    """
    res = check_positive_int(res, "res")
    if crop is not None:
        crop = check_positive_int(crop, "crop")
        if crop > res:
            raise ValueError(f"crop must be <= res = {res}; got {crop}")
    names = list(NATURAL_SET) if names is None else list(names)
    unknown = [n for n in names if n not in NATURAL_SET]
    if unknown:
        raise ValueError(
            f"names must be photos of NATURAL_SET {sorted(NATURAL_SET)}; got {unknown}"
        )
    out = {}
    for name in names:
        side = NATURAL_SET[name][1]
        if side < (res if crop is None else crop):
            continue
        img = _natural_raw(name)
        if crop is None or side >= res:
            img = _square_512(img, res)
        else:
            img = np.clip(_centre_crop_square(_to_float_rgb(img)), 0.0, 1.0)
        if crop is not None:
            lo = (img.shape[0] - crop) // 2
            img = img[lo : lo + crop, lo : lo + crop]
        out[name] = np.ascontiguousarray(img)
    return out


_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
)
_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_text_image(seed, res: int = IMAGE_RES) -> np.ndarray:
    """Lines of random strings in random fonts, sizes and colours, like the paper's set.

    On a white background, lines of text fill the page from top to bottom: each line
    has a random height of 3 % to 12 % of the side and holds strings of 3 to 12 random
    letters and digits (from a random start, running off the right edge), each string
    in one of fourteen faces bundled with matplotlib (DejaVu sans, serif, mono and
    STIX; regular, bold, italic) and in a random saturated colour. Drawn on a
    ``matplotlib.figure.Figure`` with its own Agg canvas (no pyplot, no backend
    switch), so the pixels depend only on ``seed``, ``res`` and the matplotlib version.

    Args:
        seed: an int or a sequence of ints, NumPy ``default_rng`` seed.
        res: side in pixels.

    Returns:
        (res, res, 3) float64 in [0, 1].
    """
    import colorsys
    from pathlib import Path

    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    res = check_positive_int(res, "res")
    rng = np.random.default_rng(seed)
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    dpi = 100.0
    fig = Figure(figsize=(res / dpi, res / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    top = float(rng.uniform(0.0, 0.04))  # from the top of the page, in units of res
    while top < 1.0:
        height = float(rng.uniform(0.03, 0.12))
        left = float(rng.uniform(-0.3, 0.1))
        while left < 1.0:  # strings along the line until it is full
            length = int(rng.integers(3, 13))
            string = "".join(rng.choice(list(_CHARACTERS), size=length))
            hue, light = float(rng.uniform()), float(rng.uniform(0.2, 0.6))
            colour = colorsys.hls_to_rgb(hue, light, float(rng.uniform(0.6, 1.0)))
            font = _FONT_FILES[int(rng.integers(len(_FONT_FILES)))]
            fig.text(
                left,
                1.0 - top - height,
                string,
                fontproperties=FontProperties(
                    fname=str(ttf / font), size=height * res * 72.0 / dpi
                ),
                color=colour,
            )
            left += (0.55 * length + float(rng.uniform(0.5, 2.0))) * height
        top += height * float(rng.uniform(1.0, 1.5))
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[:res, :res, :3].astype(np.float64) / 255.0
    return np.ascontiguousarray(img)


def text_set(
    res: int = IMAGE_RES, *, count: int = 8, seed: int = 0, crop: int | None = None
) -> dict[str, np.ndarray]:
    """The text set: ``count`` images of :func:`random_text_image`.

    Image i uses the seed ``(seed, i)``, so the set is deterministic given ``seed`` and
    a larger ``count`` extends it without changing the first images.

    Args:
        res: side of the rendered images.
        count: number of images (>= 1; the paper-like set has 8).
        seed: seed of the set.
        crop: side of the centre crop kept (pixel pitch 1/``res``), or None.

    Returns:
        ``"text_<i>"`` -> (s, s, 3) float64 in [0, 1], s = ``crop`` or ``res``.

    Raises:
        ValueError: ``res``, ``count`` or ``crop`` not a positive integer, or
            ``crop`` > ``res``.
    """
    res = check_positive_int(res, "res")
    count = check_positive_int(count, "count")
    check_positive_int(seed, "seed", minimum=0)
    if crop is not None:
        crop = check_positive_int(crop, "crop")
        if crop > res:
            raise ValueError(f"crop must be <= res = {res}; got {crop}")
    out = {}
    for i in range(count):
        img = random_text_image((int(seed), i), res)
        if crop is not None:
            lo = (res - crop) // 2
            img = np.ascontiguousarray(img[lo : lo + crop, lo : lo + crop])
        out[f"text_{i}"] = img
    return out


class ImageTask(typing.NamedTuple):
    """An image task; unpacks as ``(train_grid, y_train, test_grid, y_test)``.

    Attributes:
        train_grid: ``Grid((res/2, res/2))`` (points k/(res/2), the pixels [::2, ::2]).
        y_train: shape (res^2/4, c), C-order over the train grid.
        test_grid: ``Grid((res, res))`` (points k/res, every pixel).
        y_test: shape (res^2, c), the full image, C-order.
    """

    train_grid: typing.Any
    y_train: np.ndarray
    test_grid: typing.Any
    y_test: np.ndarray


def image_task(image: np.ndarray) -> ImageTask:
    """Split an (r, r, c) image into the paper's every-other-pixel task.

    Raises:
        ValueError: the image is not square with an even side.
    """
    from .grid import Grid

    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[0] % 2:
        raise ValueError(
            f"image must have shape (r, r, c) with r even; got {image.shape}"
        )
    r, c = image.shape[0], image.shape[2]
    train = image[::2, ::2].reshape(-1, c)
    return ImageTask(Grid((r // 2, r // 2)), train, Grid((r, r)), image.reshape(-1, c))


def natural_tasks(res: int = IMAGE_RES) -> dict[str, ImageTask]:
    """The natural set as :class:`ImageTask` values."""
    return {k: image_task(v) for k, v in natural_images(res).items()}


def text_tasks(res: int = IMAGE_RES, num_rendered: int = 4) -> dict[str, ImageTask]:
    """The text set as :class:`ImageTask` values."""
    return {k: image_task(v) for k, v in text_images(res, num_rendered).items()}


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or any(s < 2 or s % 2 for s in shape):
        raise ValueError(f"shape must be two even sides >= 2; got {shape}")
    return shape


def heldout_indices(shape=(IMAGE_RES, IMAGE_RES)) -> np.ndarray:
    """Flat C-order indices of the official held-out pixels ``[1::2, 1::2]``."""
    shape = _check_shape(shape)
    return np.arange(shape[0] * shape[1]).reshape(shape)[1::2, 1::2].ravel()


def train_indices(shape=(IMAGE_RES, IMAGE_RES)) -> np.ndarray:
    """Flat C-order indices of the training pixels ``[::2, ::2]``."""
    shape = _check_shape(shape)
    return np.arange(shape[0] * shape[1]).reshape(shape)[::2, ::2].ravel()


def nontrain_indices(shape=(IMAGE_RES, IMAGE_RES)) -> np.ndarray:
    """Flat C-order indices of every pixel that is not a training pixel (3/4)."""
    shape = _check_shape(shape)
    mask = np.ones(shape, dtype=bool)
    mask[::2, ::2] = False
    return np.flatnonzero(mask)


def psnr(prediction, target) -> float:
    r"""Peak signal-to-noise ratio :math:`-10\log_{10}\mathrm{MSE}` for data in [0, 1].

    The official code's convention: the MSE over all entries (pixels and channels), no
    clipping of the prediction.

    Raises:
        ValueError: shapes that differ, empty arrays, or NaN/inf in either (a
            diverged prediction has no PSNR; it is refused rather than returned as
            NaN).

    Example:
        >>> import numpy as np
        >>> round(psnr(np.full(4, 0.1), np.zeros(4)), 9)
        20.0
    """
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(
            "prediction and target must have the same shape; got "
            f"{p.shape} and {t.shape}"
        )
    if p.size == 0:
        raise ValueError(
            f"prediction and target must not be empty; got shape {p.shape} (no "
            "entries: the MSE is undefined)"
        )
    for name, arr in (("prediction", p), ("target", t)):
        if not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise ValueError(
                f"{name} must be finite; it contains {bad} NaN or inf entries of "
                f"{arr.size} (a diverged fit has no PSNR)"
            )
    mse = float(np.mean((p - t) ** 2))
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)
