r"""Perturbed Shepp–Logan phantoms: the CT (2D) and MRI (3D) data of the notebooks.

A Shepp–Logan phantom is a sum of E ellipses (ellipsoids in 3D) with grey values
:math:`g_e`,

.. math::

    f(x) = \mathrm{clip}\Big(\sum_{e=1}^{E} g_e\,
    \mathbf{1}\big[\lVert R_{\theta_e}^\top (x - c_e) \oslash s_e\rVert_2 \le 1\big],
    \ 0,\ 1\Big), \qquad x \in [-1, 1]^d,

with centres :math:`c_e`, semi-axes :math:`s_e` and an in-plane rotation
:math:`\theta_e`, evaluated on a regular grid by ``phantominator.ct_shepp_logan``
(the "modified" grey values of Toft 1996). As in the official ``2d_CT`` and ``3d_MRI``
notebooks of Tancik et al. (2020), every phantom perturbs all the parameters of the
modified table, :math:`P \to P + Z/20` with :math:`Z_{ij} \sim \mathcal{N}(0, 1)`
independent, and clips the image to [0, 1]. The 3D phantoms keep the middle of the
ellipsoid table along z (``zlims=(-0.25, 0.25)``, as the notebook).

Draws are fixed by ``seed`` and by the image's place (split, index), through
``numpy.random.default_rng([seed, split, index])``, so the test images do not change
when the number of scale-search images does. They are not the notebook's JAX draws.
``phantominator`` is imported inside the functions, so ``import ntkspec`` does not
need it.

References:
    Shepp & Logan, "The Fourier reconstruction of a head section", IEEE Trans. Nucl.
    Sci. 21(3), 1974.
    Toft, "The Radon Transform: Theory and Implementation", PhD thesis, DTU, 1996
    (modified grey values).
    Koay, Sarlls & Özarslan, "Three-dimensional analytical magnetic resonance imaging
    phantom in the Fourier domain", Magn. Reson. Med. 58(2), 2007 (3D table).
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ._validation import check_positive_int, check_real

__all__ = ["PhantomSet", "shepp_logan", "ct_phantoms", "mri_phantoms"]

_SPLITS = {"search": 0, "test": 1}


class PhantomSet(NamedTuple):
    """Phantoms for the scale search and the test, each ``(count, *shape)``, float64."""

    search: np.ndarray
    test: np.ndarray


def _check_shape(resolution, dim: int) -> tuple[int, ...]:
    if isinstance(resolution, numbers.Integral) and not isinstance(resolution, bool):
        resolution = (resolution,) * dim
    if not isinstance(resolution, tuple | list) or len(resolution) != dim:
        raise ValueError(
            f"resolution must be a positive integer or a tuple of {dim} positive "
            f"integers; got {resolution!r}"
        )
    return tuple(
        check_positive_int(n, f"resolution[{i}]", minimum=2)
        for i, n in enumerate(resolution)
    )


def _table(dim: int) -> np.ndarray:
    import phantominator

    if dim == 2:
        return np.asarray(phantominator.ct_modified_shepp_logan_params_2d(), float)
    return np.asarray(phantominator.ct_modified_shepp_logan_params_3d(), float)


def _render(shape: tuple[int, ...], params: np.ndarray) -> np.ndarray:
    import phantominator

    if len(shape) == 2:
        img = phantominator.ct_shepp_logan(shape, E=params)
    else:
        img = phantominator.ct_shepp_logan(shape, E=params, zlims=(-0.25, 0.25))
    return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)


def shepp_logan(
    resolution,
    *,
    dim: int = 2,
    seed: int = 0,
    split: str = "test",
    index: int = 0,
    noise_scale: float = 1.0 / 20.0,
) -> np.ndarray:
    r"""One perturbed, clipped modified Shepp–Logan phantom (2D or 3D).

    The parameter table :math:`P` (10 ellipses: grey value, semi-axes, centre, angle)
    becomes :math:`P + \sigma Z`, :math:`Z_{ij} \sim \mathcal{N}(0,1)`,
    :math:`\sigma` = ``noise_scale`` (the notebooks: 1/20); the image is clipped to
    [0, 1]. ``noise_scale=0`` gives the plain modified phantom.

    Args:
        resolution: pixels per axis, an int (square/cube) or a tuple of ``dim`` ints
            (>= 2 each), in phantominator's axis order (rows, columns[, depth]).
        dim: 2 (CT) or 3 (MRI).
        seed: integer >= 0.
        split: ``"search"`` or ``"test"``; with ``index`` it fixes the draw.
        index: the image's place in its split, >= 0.
        noise_scale: standard deviation of the parameter perturbation, >= 0.

    Returns:
        The phantom, shape ``resolution``, float64 in [0, 1].

    Raises:
        TypeError: a non-integer ``seed``, ``index`` or ``resolution`` entry.
        ValueError: an argument out of range or an unknown ``split`` or ``dim``.

    Example:
        >>> from ntkspec import phantoms
        >>> img = phantoms.shepp_logan(32, seed=0)
        >>> img.shape, float(img.min()) >= 0.0, float(img.max()) <= 1.0
        ((32, 32), True, True)
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3; got {dim!r}")
    shape = _check_shape(resolution, dim)
    seed = check_positive_int(seed, "seed", minimum=0)
    index = check_positive_int(index, "index", minimum=0)
    if split not in _SPLITS:
        raise ValueError(f"split must be 'search' or 'test'; got {split!r}")
    noise_scale = float(check_real(noise_scale, "noise_scale", low=0.0))
    table = _table(dim)
    rng = np.random.default_rng([seed, dim, _SPLITS[split], index])
    params = table + noise_scale * rng.standard_normal(table.shape)
    return _render(shape, params)


def _phantom_set(resolution, dim, num_search, num_test, seed) -> PhantomSet:
    num_search = check_positive_int(num_search, "num_search", minimum=0)
    num_test = check_positive_int(num_test, "num_test", minimum=0)
    shape = _check_shape(resolution, dim)
    out = {}
    for split, count in (("search", num_search), ("test", num_test)):
        imgs = [
            shepp_logan(shape, dim=dim, seed=seed, split=split, index=i)
            for i in range(count)
        ]
        out[split] = np.stack(imgs) if imgs else np.zeros((0, *shape))
    return PhantomSet(out["search"], out["test"])


def ct_phantoms(
    resolution=512, *, num_search: int = 8, num_test: int = 8, seed: int = 0
) -> PhantomSet:
    """The ``2d_CT`` notebook's data: perturbed 2D phantoms, 8 + 8 at 512^2.

    Args:
        resolution: pixels per axis (int, or (H, W)); the paper: 512.
        num_search: phantoms for the scale search (>= 0); the paper: 8.
        num_test: test phantoms (>= 0); the paper: 8.
        seed: integer >= 0 (see :func:`shepp_logan`).

    Returns:
        A :class:`PhantomSet` of arrays (num, H, W), float64 in [0, 1].

    Raises:
        TypeError: a non-integer argument.
        ValueError: an argument out of range.
    """
    return _phantom_set(resolution, 2, num_search, num_test, seed)


def mri_phantoms(
    resolution=96, *, num_search: int = 6, num_test: int = 6, seed: int = 0
) -> PhantomSet:
    """The ``3d_MRI`` notebook's Shepp–Logan option: perturbed 3D phantoms, 6 + 6.

    The paper's size is 96^3; 64^3 is the reduced size for CPU runs.

    Args:
        resolution: voxels per axis (int, or a 3-tuple); the paper: 96.
        num_search: phantoms for the scale search (>= 0); the notebook: 6.
        num_test: test phantoms (>= 0); the notebook: 6.
        seed: integer >= 0 (see :func:`shepp_logan`).

    Returns:
        A :class:`PhantomSet` of arrays (num, L, M, N), float64 in [0, 1].

    Raises:
        TypeError: a non-integer argument.
        ValueError: an argument out of range.
    """
    return _phantom_set(resolution, 3, num_search, num_test, seed)
