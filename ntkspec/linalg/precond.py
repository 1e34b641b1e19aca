r"""Preconditioners as values: each has ``apply(r)`` approximating :math:`A^{-1} r`.

* :class:`JacobiPreconditioner`: :math:`D^{-1}`, the inverse diagonal.
* :class:`CirculantPreconditioner`: a multilevel circulant :math:`C^{-1}` applied by
  FFT; :func:`t_chan_preconditioner` builds T. Chan's optimal circulant of a
  Toeplitz grid Gram.

The measurement-specific preconditioners stay beside their measurements: the
k-space one in :func:`ntkspec.measurements.kspace_preconditioner`, the CT block
family in :mod:`ntkspec.inverse` (they are built from those modules' operators,
which import this package).

References:
    T. Chan, "An optimal circulant preconditioner for Toeplitz systems", SIAM J. Sci.
    Stat. Comput. 9(4), 1988.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope

__all__ = [
    "JacobiPreconditioner",
    "CirculantPreconditioner",
    "t_chan_preconditioner",
]


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inverse_diagonal"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class JacobiPreconditioner:
    r"""Diagonal preconditioner :math:`M^{-1} r = D^{-1} r`.

    Attributes:
        inverse_diagonal: :math:`1/A_{ii}`, shape (N,).
    """

    inverse_diagonal: jax.Array

    def apply(self, r):
        """:math:`D^{-1} r` for r of shape (N,) or (N, c)."""
        inv = self.inverse_diagonal
        return inv * r if r.ndim == 1 else inv[:, None] * r


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inverse_symbol"],
    meta_fields=["grid_shape"],
)
@dataclasses.dataclass(frozen=True)
class CirculantPreconditioner:
    r"""A multilevel circulant :math:`C^{-1}` applied by FFT.

    :math:`C^{-1} r` = ``irfftn(rfftn(r) * inverse_symbol)`` over the grid axes.

    Attributes:
        inverse_symbol: :math:`1/\lambda(m)` on the real half-spectrum, shape
            ``grid_shape[:-1] + (grid_shape[-1] // 2 + 1,)``.
        grid_shape: the grid shape (static).
    """

    inverse_symbol: jax.Array
    grid_shape: tuple[int, ...]

    def apply(self, r):
        """:math:`C^{-1} r` for r of shape (N,) or (N, c) in the grid's C order."""
        shape = self.grid_shape
        axes = tuple(range(len(shape)))
        x = r.reshape(shape + r.shape[1:])
        sym = self.inverse_symbol.reshape(
            self.inverse_symbol.shape + (1,) * (r.ndim - 1)
        )
        y = jnp.fft.irfftn(jnp.fft.rfftn(x, axes=axes) * sym, s=shape, axes=axes)
        return y.reshape(r.shape).astype(r.dtype)


def t_chan_preconditioner(operator, shift: float = 0.0) -> CirculantPreconditioner:
    r"""T. Chan's optimal circulant preconditioner of ``operator`` + ``shift`` I.

    :math:`C` minimises :math:`\|C - K\|_F` over circulants (T. Chan 1988), its
    eigenvalues are ``operator.t_chan_preconditioner()``; eigenvalues of
    :math:`C + \delta I` below :math:`10^{-12}` of the largest are raised to that floor.

    Args:
        operator: a :class:`~ntkspec.operators.GridKernelOperator`.
        shift: :math:`\delta \ge 0` (the ridge).
    """
    lam = np.asarray(operator.t_chan_preconditioner(), dtype=np.float64) + shift
    lam = np.maximum(lam, 1e-12 * float(np.max(np.abs(lam))))
    shape = operator.grid.shape
    with x64_scope(np.float64):
        inv = jax.device_put(np.ascontiguousarray(1.0 / lam[..., : shape[-1] // 2 + 1]))
    return CirculantPreconditioner(inv, shape)
