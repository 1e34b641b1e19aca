r"""The result of an iterative algorithm, and the warning of one that stopped early.

:class:`Solution` holds an answer together with its iterations, residual and a
converged flag (in the style of lineax's ``Solution``); :func:`ntkspec.linalg.cg.cg`
and the Krylov matrix functions of :mod:`ntkspec.linalg.funm` return it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax

__all__ = ["ConvergenceWarning", "Solution"]


class ConvergenceWarning(RuntimeWarning):
    """An iterative solver stopped before reaching its tolerance."""


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["value", "iterations", "residual", "converged"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Solution:
    r"""An algorithm's answer with its convergence statistics.

    Attributes:
        value: the answer, e.g. :math:`X` with :math:`AX = B`, same shape as B.
        iterations: iterations (matvecs of the operator per column).
        residual: the worst column's relative residual
            :math:`\max_j \|b_j - A x_j\|/\|b_j\|` recomputed from the answer (CG), or
            the a-posteriori relative error estimate
            (:func:`~ntkspec.linalg.funm.lanczos_matfun`).
        converged: whether ``residual`` met the tolerance.
    """

    value: jax.Array
    iterations: jax.Array
    residual: jax.Array
    converged: jax.Array

    @property
    def stats(self) -> dict:
        """``{"iterations", "residual", "converged"}`` as Python numbers."""
        return {
            "iterations": int(self.iterations),
            "residual": float(self.residual),
            "converged": bool(self.converged),
        }
