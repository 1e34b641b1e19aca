r"""Preconditioned conjugate gradients over any operator, and its solver value.

:func:`cg` solves :math:`A X = B` for symmetric positive (semi-)definite :math:`A`
given only its ``matvec``, all columns of :math:`B` at once, each stopped at its own
residual; :class:`CG` names it as a solver value for
:func:`ntkspec.kernel_regression`. Preconditioners are values with ``apply(r)``
(:mod:`ntkspec.linalg.precond`).

Hand-written rather than ``lineax.CG`` (not a dependency): lineax's CG takes one
right-hand side, this one stops each column at its own residual and reports the
worst; ``analysis/compare_lineax.py`` compares the two on the paper's PCG solve.

References:
    Hestenes & Stiefel, "Methods of conjugate gradients for solving linear systems",
    J. Res. NBS 49, 1952.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope
from .._validation import check_positive_int, check_real, is_traced
from ._operand import as_columns, check_operator
from .solution import Solution

__all__ = ["CG", "cg"]


@dataclasses.dataclass(frozen=True)
class CG:
    """Conjugate gradients as a solver value (lineax style), for ``kernel_regression``.

    Attributes:
        rtol: relative residual per column at which it stops (> 0).
        atol: absolute residual floor (>= 0).
        max_iter: iteration cap (>= 1).
    """

    rtol: float = 1e-10
    atol: float = 0.0
    max_iter: int = 2000

    def __post_init__(self):
        if isinstance(self.rtol, numbers.Real):
            check_real(self.rtol, "rtol", low=0.0, low_inclusive=False)
            if not self.rtol < 1.0:
                raise ValueError(
                    "rtol must be in (0, 1): a relative residual of 1 or more is met "
                    f"by the zero solution; got {self.rtol}"
                )
        if isinstance(self.atol, numbers.Real):
            check_real(self.atol, "atol", low=0.0)
        check_positive_int(self.max_iter, "max_iter")


def _coldot(a, b):
    return jnp.sum(a * b, axis=0)


@jax.jit
def _cg_run(operator, preconditioner, b, x0, rtol, atol, max_iter):
    """PCG on all columns of b (N, c); returns (x, iterations, true residual)."""
    precond = (lambda r: r) if preconditioner is None else preconditioner.apply
    bnorm = jnp.sqrt(_coldot(b, b))
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    tol = jnp.maximum(rtol * bnorm, atol)
    r = b - operator.matvec(x0)
    z = precond(r)
    rz = _coldot(r, z)
    rnorm = jnp.sqrt(_coldot(r, r))

    def cond(state):
        k, _, _, _, _, rnorm = state
        return (k < max_iter) & jnp.any(rnorm > tol)

    def body(state):
        k, x, r, p, rz, rnorm = state
        ap = operator.matvec(p)
        pap = _coldot(p, ap)
        active = (rnorm > tol) & (pap > 0)
        alpha = jnp.where(active, rz / jnp.where(active, pap, 1.0), 0.0)
        x = x + alpha[None, :] * p
        r = r - alpha[None, :] * ap
        z = precond(r)
        rz_new = _coldot(r, z)
        beta = jnp.where(active & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[None, :] * p
        return k + 1, x, r, p, rz_new, jnp.sqrt(_coldot(r, r))

    k, x, _, _, _, _ = jax.lax.while_loop(
        cond, body, (jnp.asarray(0), x0, r, z, rz, rnorm)
    )
    true_r = b - operator.matvec(x)
    res = jnp.sqrt(_coldot(true_r, true_r))
    return x, k, jnp.max(jnp.where(res <= atol, 0.0, res / bnorm))


def cg(
    operator,
    b,
    *,
    preconditioner=None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int = 2000,
    x0=None,
    restarts: int = 2,
) -> Solution:
    r"""Preconditioned conjugate gradients for :math:`A X = B`, all columns at once.

    The recurrence of Hestenes & Stiefel (1952) with :math:`M^{-1}` =
    ``preconditioner.apply``; column j stops once
    :math:`\|r_j\| \le \max(\mathrm{rtol}\,\|b_j\|, \mathrm{atol})`. The loop is one
    jitted ``lax.while_loop`` (the operator is an argument, so it is compiled once per
    operator type and shape). After it, the residual is recomputed from :math:`X`; when
    round-off made the recursive residual drift below the true one, CG restarts from
    :math:`X` (at most ``restarts`` times, within ``max_iter`` in all).

    Args:
        operator: symmetric positive (semi-)definite, with ``shape`` and ``matvec``.
        b: right-hand sides, shape (N,) or (N, c).
        preconditioner: a value with ``apply(r)`` approximating :math:`A^{-1} r`
            (:class:`~ntkspec.linalg.precond.JacobiPreconditioner`,
            :class:`~ntkspec.linalg.precond.CirculantPreconditioner`), or None.
        rtol: relative residual target per column (> 0).
        atol: absolute residual floor (>= 0).
        max_iter: iteration cap, all restarts together.
        x0: starting guess (default 0), shape of ``b``.
        restarts: restarts allowed when the true residual misses the target.

    Returns:
        A :class:`~ntkspec.linalg.solution.Solution` (value of the shape of ``b``;
        ``iterations`` the total).
    """
    n = check_operator(operator)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    if not is_traced(rtol) and not float(rtol) < 1.0:
        raise ValueError(
            f"rtol must be in (0, 1): a relative residual of 1 or more is met by the "
            f"zero solution; got {rtol}"
        )
    check_real(atol, "atol", low=0.0)
    max_iter = check_positive_int(max_iter, "max_iter")
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        bb, squeeze = as_columns(b, n, dtype, "b")
        x = (
            jax.device_put(np.zeros(bb.shape, bb.dtype))
            if x0 is None
            else jnp.asarray(x0, dtype).reshape(bb.shape)
        )
        total, res = 0, math.inf
        for _ in range(1 + restarts):
            x, its, res = _cg_run(
                operator, preconditioner, bb, x, rtol, atol, max_iter - total
            )
            total += int(its)
            res = float(res)
            if res <= rtol or total >= max_iter:
                break
        value = x[:, 0] if squeeze else x
        return Solution(  # transfers of host numbers (no eager op to compile)
            value,
            jax.device_put(np.int64(total)),
            jax.device_put(np.float64(res)),
            jax.device_put(np.bool_(res <= rtol)),
        )
