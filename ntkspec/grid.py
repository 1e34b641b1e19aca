r"""Regular grids on the unit cube :math:`[0, 1)^d`, the input of the structured paths.

A :class:`Grid` of shape :math:`(n_1, \dots, n_d)` holds the :math:`N = \prod_i n_i`
points :math:`(k_1/n_1, \dots, k_d/n_d)`, :math:`0 \le k_i < n_i`. Differences of grid
points are the offsets :math:`(o_1/n_1, \dots, o_d/n_d)` with integer :math:`o_i`, so a
stationary kernel's Gram on a grid is multilevel Toeplitz, and multilevel circulant when
the kernel is 1-periodic in every axis (Fourier mappings with integer frequencies).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import numpy as np

from ._numerics import check_work_request

__all__ = ["Grid"]

_MAX_DIM = 3
#: The most points along an axis, and in all, that an int64 index can address.
_MAX_INDEX = 2**63 - 1


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list):
        raise TypeError(
            f"shape must be a tuple of 1 to {_MAX_DIM} positive integers; got {shape!r}"
        )
    if not 1 <= len(shape) <= _MAX_DIM:
        raise ValueError(
            f"shape must have 1 to {_MAX_DIM} entries (grid dimension d); "
            f"got {len(shape)} entries: {tuple(shape)!r}"
        )
    out = []
    for i, n in enumerate(shape):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(
                f"shape[{i}] must be a positive integer (points along axis {i}); "
                f"got {n!r}"
            )
        if n < 1:
            raise ValueError(
                f"shape[{i}] must be a positive integer (points along axis {i}); got "
                f"{n}"
            )
        if n > _MAX_INDEX:
            raise ValueError(
                f"shape[{i}] must be at most 2**63 - 1 points (an int64 index); got "
                f"{_count(n)}"
            )
        out.append(int(n))
    if math.prod(out) > _MAX_INDEX:
        raise ValueError(
            f"shape {tuple(out)!r} has {_count(math.prod(out))} points; a grid "
            "holds at most 2**63 - 1 (an int64 index)"
        )
    return tuple(out)


def _count(n: int) -> str:
    """An int for a message: in full up to 30 digits, else its power of ten."""
    digits = str(int(n))
    return digits if len(digits) <= 30 else f"about 10**{len(digits) - 1}"


@dataclasses.dataclass(frozen=True, init=False)
class Grid:
    r"""A regular grid of :math:`N = \prod_i n_i` points in :math:`[0, 1)^d`, d <= 3.

    The point with multi-index :math:`(k_1, \dots, k_d)` is
    :math:`(k_1/n_1, \dots, k_d/n_d)`. Points are ordered row-major (C order) in the
    multi-index (``meshgrid(..., indexing="ij")``), so an image ``img`` of shape
    ``grid.shape + (c,)`` lines up with ``img.reshape(grid.size, c)``.

    An immutable value and a JAX pytree with no leaves (the shape is static).

    Attributes:
        shape: points per axis :math:`(n_1, \dots, n_d)`; an int means a 1D grid.

    Raises:
        TypeError: a shape entry is not an integer.
        ValueError: a shape entry is < 1, the shape has not 1 to 3 entries, or more
            than 2**63 - 1 points (along an axis or in all).

    Example:
        >>> import ntkspec
        >>> g = ntkspec.Grid((2, 3))
        >>> g.size, g.dim
        (6, 2)
        >>> g.points()[:4].tolist()
        [[0.0, 0.0], [0.0, 0.3333333333333333], [0.0, 0.6666666666666666], [0.5, 0.0]]
    """

    shape: tuple[int, ...]

    def __init__(self, shape):
        object.__setattr__(self, "shape", _check_shape(shape))

    @property
    def dim(self) -> int:
        """Dimension d of the grid (number of axes)."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of points N."""
        return math.prod(self.shape)

    def axes(self) -> tuple[np.ndarray, ...]:
        """The coordinates along each axis, :math:`k/n_i` for :math:`k < n_i`."""
        return tuple(np.arange(n, dtype=np.float64) / n for n in self.shape)

    def points(self) -> np.ndarray:
        """All points, shape (N, d), float64, in C order of the multi-index.

        Raises:
            ValueError: the points (and the mesh they are built from) would not fit in
                this machine's memory (see ``NTKSPEC_MAX_WORK_BYTES``).
        """
        check_work_request(
            2.0 * self.size * self.dim * 8,
            what=f"{self!r}.points() ({self.size:,} points)",
            alternative="Use the structured paths (pass the Grid itself) or fewer "
            "points.",
        )
        mesh = np.meshgrid(*self.axes(), indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)

    def frequencies(self) -> tuple[np.ndarray, ...]:
        r"""Integer DFT frequencies per axis, in FFT order (``fftfreq(n) * n``).

        Entry :math:`o` along axis i is the frequency :math:`m_i` of the Fourier mode
        :math:`\exp(2\pi i\, m_i x_i)` at index o of an ``fftn`` over the grid.
        """
        return tuple(
            np.rint(np.fft.fftfreq(n) * n).astype(np.int64) for n in self.shape
        )

    def __repr__(self) -> str:
        return f"Grid(shape={self.shape})"


jax.tree_util.register_pytree_node(
    Grid,
    lambda g: ((), g.shape),
    lambda shape, _: Grid(shape),
)
