r"""Plotting helpers for spectra, kernel profiles, curves and images.

Each helper takes plain arrays (NumPy or JAX), draws on the given matplotlib ``ax`` (a
new figure when ``ax`` is None) and returns that ``ax`` (``image_grid`` returns its
figure).
The drawn data are the input values unchanged: log scales are axis scales or colour
norms, never transformed copies, so what a plot shows can be read back from its
``Line2D``/``AxesImage`` objects. matplotlib is imported inside the functions, so
``import ntkspec`` does not need it.

Conventions: eigenvalues :math:`\lambda_1 \ge \lambda_2 \ge \dots` are plotted against
their 1-based rank :math:`i`; a spectrum that decays like :math:`\lambda_i \propto
i^{-\alpha}` is a straight line of slope :math:`-\alpha` on the log-log axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "eigenvalue_spectrum",
    "radial_spectrum",
    "kernel_profile",
    "frequency_image",
    "curves",
    "image_grid",
]


def _new_ax(ax, figsize=(5.0, 3.6)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {arr.shape}")
    return arr


def eigenvalue_spectrum(
    eigenvalues,
    ax=None,
    *,
    label: str | None = None,
    normalize: bool = False,
    **plot_kwargs,
):
    r"""Plot eigenvalues against their rank on log-log axes.

    Args:
        eigenvalues: shape (n,), in descending order (as ``ntkspec.spectrum`` returns).
        ax: matplotlib axes to draw on; a new figure when None.
        label: legend label.
        normalize: divide by the largest eigenvalue, :math:`\lambda_i/\lambda_1`.
        **plot_kwargs: passed to ``ax.plot``.

    Returns:
        The axes. Its new line has x = 1..n and y = the eigenvalues (normalised if
        asked).
        Non-positive values are dropped from view by the log scale (not from the data).

    Example:
        >>> import numpy as np
        >>> from ntkspec import plotting
        >>> ax = plotting.eigenvalue_spectrum(np.array([4.0, 2.0, 1.0]), label="ntk")
        >>> ax.lines[0].get_xdata().tolist(), ax.lines[0].get_ydata().tolist()
        ([1, 2, 3], [4.0, 2.0, 1.0])
        >>> import matplotlib.pyplot as plt; plt.close(ax.figure)
    """
    lam = _vector(eigenvalues, "eigenvalues")
    if normalize:
        if not lam[0] > 0:
            raise ValueError("normalize=True needs a positive largest eigenvalue")
        lam = lam / lam[0]
    ax = _new_ax(ax)
    ax.plot(np.arange(1, lam.size + 1), lam, label=label, **plot_kwargs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank i")
    ax.set_ylabel("eigenvalue λ_i / λ_1" if normalize else "eigenvalue λ_i")
    ax.grid(alpha=0.3, which="both")
    return ax


def radial_spectrum(
    frequencies,
    eigenvalues,
    ax=None,
    *,
    label: str | None = None,
    logx: bool = True,
    **plot_kwargs,
):
    r"""Plot eigenvalues against the magnitude of their frequency, log-log.

    Args:
        frequencies: shape (n,), :math:`|k|` of each eigenvalue (cycles per unit);
            points with :math:`|k| = 0` are kept in the data and hidden by the log axis.
        eigenvalues: shape (n,).
        ax: matplotlib axes; a new figure when None.
        label: legend label.
        logx: logarithmic frequency axis (False keeps :math:`|k| = 0` in view).
        **plot_kwargs: passed to ``ax.plot`` (default: dots, no line).

    Returns:
        The axes; its new line has x = frequencies and y = eigenvalues, sorted by
        frequency (ties in input order).
    """
    freq = _vector(frequencies, "frequencies")
    lam = _vector(eigenvalues, "eigenvalues")
    if freq.shape != lam.shape:
        raise ValueError(
            f"frequencies and eigenvalues must have the same shape; got {freq.shape} "
            f"and {lam.shape}"
        )
    order = np.argsort(freq, kind="stable")
    kwargs = {"marker": ".", "linestyle": "none"} | plot_kwargs
    ax = _new_ax(ax)
    ax.plot(freq[order], lam[order], label=label, **kwargs)
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("frequency |k|")
    ax.set_ylabel("eigenvalue")
    ax.grid(alpha=0.3, which="both")
    return ax


def kernel_profile(
    offsets,
    values,
    ax=None,
    *,
    label: str | None = None,
    **plot_kwargs,
):
    r"""Plot a stationary kernel :math:`k(\Delta)` against the offset :math:`\Delta`.

    Args:
        offsets: shape (n,), the offsets along one axis.
        values: shape (n,), the kernel at those offsets.
        ax: matplotlib axes; a new figure when None.
        label: legend label.
        **plot_kwargs: passed to ``ax.plot``.

    Returns:
        The axes; its new line has x = offsets, y = values.
    """
    x = _vector(offsets, "offsets")
    y = _vector(values, "values")
    if x.shape != y.shape:
        raise ValueError(
            f"offsets and values must have the same shape; got {x.shape} and {y.shape}"
        )
    ax = _new_ax(ax)
    ax.plot(x, y, label=label, **plot_kwargs)
    ax.set_xlabel("offset Δ")
    ax.set_ylabel("k(Δ)")
    ax.grid(alpha=0.3)
    return ax


def frequency_image(
    values,
    ax=None,
    *,
    frequencies: tuple | None = None,
    log: bool = True,
    title: str | None = None,
    colorbar: bool = True,
    cmap: str = "magma",
):
    r"""Show a 2D array indexed by frequency (eigenvalues, a kernel's DFT) as an image.

    Args:
        values: shape (n1, n2), non-negative when ``log`` is True, with the zero
            frequency in the centre (apply ``numpy.fft.fftshift`` first if needed).
        ax: matplotlib axes; a new figure when None.
        frequencies: optional pair (k1, k2) of 1-D arrays, the frequencies along each
            axis, used for the axis extent; default the centred integers.
        log: colour on a logarithmic norm (the data are not transformed).
        title: axes title.
        colorbar: add a colour bar.
        cmap: matplotlib colour map name.

    Returns:
        The axes; its image's array equals ``values`` (axis 0 vertical, axis 1
        horizontal).
    """
    import matplotlib.colors as mcolors

    img = np.asarray(values, dtype=np.float64)
    if img.ndim != 2 or img.size < 1:
        raise ValueError(f"values must be a non-empty 2-D array; got shape {img.shape}")
    if frequencies is None:
        k1 = np.arange(img.shape[0]) - img.shape[0] // 2
        k2 = np.arange(img.shape[1]) - img.shape[1] // 2
    else:
        k1, k2 = (np.asarray(k, dtype=np.float64) for k in frequencies)
        if k1.shape != (img.shape[0],) or k2.shape != (img.shape[1],):
            raise ValueError(
                f"frequencies must be arrays of lengths {img.shape}; got "
                f"{k1.shape} and {k2.shape}"
            )
    norm = None
    if log:
        positive = img[img > 0]
        if positive.size == 0:
            raise ValueError("log=True needs at least one positive value")
        norm = mcolors.LogNorm(vmin=positive.min(), vmax=positive.max())
    ax = _new_ax(ax, figsize=(4.4, 3.8))
    extent = (k2[0] - 0.5, k2[-1] + 0.5, k1[-1] + 0.5, k1[0] - 0.5)
    im = ax.imshow(img, norm=norm, cmap=cmap, extent=extent, interpolation="nearest")
    ax.set_xlabel("frequency k₂")
    ax.set_ylabel("frequency k₁")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85)
    return ax


def curves(
    x,
    ys: Mapping[str, object] | Sequence,
    ax=None,
    *,
    logx: bool = False,
    logy: bool = True,
    xlabel: str = "step",
    ylabel: str = "loss",
    **plot_kwargs,
):
    r"""Plot several curves against a shared x: losses, residuals, errors against time.

    Args:
        x: shape (t,), the common abscissa (steps or times).
        ys: a mapping label -> values of shape (t,), or a sequence of such arrays (then
            unlabelled).
        ax: matplotlib axes; a new figure when None.
        logx: logarithmic x axis.
        logy: logarithmic y axis (the default: losses span decades).
        xlabel: x axis label.
        ylabel: y axis label.
        **plot_kwargs: passed to every ``ax.plot``.

    Returns:
        The axes; one new line per curve, in order, each with x = ``x``, y = the curve.
    """
    xs = _vector(x, "x")
    items = list(ys.items()) if isinstance(ys, Mapping) else [(None, y) for y in ys]
    if not items:
        raise ValueError("ys must hold at least one curve")
    ax = _new_ax(ax)
    for label, y in items:
        yv = _vector(y, f"curve {label!r}" if label is not None else "curve")
        if yv.shape != xs.shape:
            raise ValueError(
                f"curve {label!r} has shape {yv.shape}; it must match x's {xs.shape}"
            )
        ax.plot(xs, yv, label=label, **plot_kwargs)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    if any(label is not None for label, _ in items):
        ax.legend(fontsize=8)
    return ax


def image_grid(
    images: Sequence,
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 2.6,
    clip: bool = True,
):
    r"""Show images side by side (ground truth, predictions, ...) in a grid.

    Args:
        images: a sequence of arrays of shape (h, w) (grey) or (h, w, 3) (RGB), values
            in [0, 1].
        titles: one title per image.
        ncols: images per row (default: all in one row, at most 6).
        size: inches per panel.
        clip: clip values to [0, 1] before drawing (RGB needs it).

    Returns:
        The figure; ``fig.axes[i].images[0]`` shows ``images[i]``.
    """
    import matplotlib.pyplot as plt

    arrays = [np.asarray(im, dtype=np.float64) for im in images]
    if not arrays:
        raise ValueError("images must hold at least one image")
    for i, im in enumerate(arrays):
        if not (im.ndim == 2 or (im.ndim == 3 and im.shape[2] in (3, 4))):
            raise ValueError(
                f"images[{i}] must have shape (h, w) or (h, w, 3); got {im.shape}"
            )
    if titles is not None and len(titles) != len(arrays):
        raise ValueError(f"titles has {len(titles)} entries for {len(arrays)} images")
    ncols = min(len(arrays), 6) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}")
    nrows = -(-len(arrays) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        if i >= len(arrays):
            ax.remove()
            continue
        im = np.clip(arrays[i], 0.0, 1.0) if clip else arrays[i]
        ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig
