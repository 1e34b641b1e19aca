r"""Spectral functions of training, written once: the time filter, the decay, λ_max.

The linearised training of :mod:`ntkspec.dynamics` (and :mod:`ntkspec.design`,
:mod:`ntkspec.inverse`, the CT/MRI studies) acts on each eigenvalue :math:`\lambda \ge
0` of a PSD operator through two scalar functions of a time :math:`t` and a rate
:math:`r` (the step size per unit time, :math:`\eta/N_y` in the conventions of
:func:`ntkspec.gd_dynamics`, :math:`\eta` in those of
:func:`ntkspec.inverse_regression`):

.. math::

    d_t(\lambda) = e^{-r t \lambda}, \qquad
    \varphi_t(\lambda) = \frac{1 - d_t(\lambda)}{\lambda}
    = r t\, \frac{1 - e^{-x}}{x}, \quad x = r t \lambda
    \qquad \text{(gradient flow)},

    d_k(\lambda) = (1 - x)^k, \qquad
    \varphi_k(\lambda) = \frac{1 - (1 - x)^k}{\lambda}, \quad x = r\lambda
    \qquad \text{(k steps of gradient descent)},

with the limits :math:`\varphi_t(0) = r t`, :math:`\varphi_k(0) = r k` and, at
:math:`t = \infty`, :math:`d = [\lambda = 0]`, :math:`\varphi = 1/\lambda` on
:math:`\lambda > 0` and 0 on the null space (the minimum-norm interpolant).
:math:`\varphi` is the filter of the test prediction, :math:`d` that of the train
residual.

**Evaluation without cancellation.** For :math:`0 < x \le 1` the flow filter is
:math:`r t\,(-\mathrm{expm1}(-x))/x`, relative error a few ulp for every such x
(``expm1`` is correctly rounded to an ulp, and nothing cancels); for :math:`x > 1`
it is :math:`-\mathrm{expm1}(-x)/\lambda`; the one guard is :math:`x` below the
dtype's smallest normal number, where the limit :math:`r t` is returned (this is
the same device as neural-tangents' ``_make_inv_expm1_fn``). The gradient-descent
filter writes :math:`(1 - x)^k = \exp(k \log(1 - x))` for :math:`x < 1`, so that
:math:`1 - (1-x)^k = -\mathrm{expm1}(k\,\mathrm{log1p}(-x))` keeps its relative
accuracy as :math:`x \to 0`, and :math:`(1 - x)^k = (-1)^k \exp(k\,
\mathrm{log1p}(x - 2))` for :math:`x > 1`: near the stability limit :math:`x \to 2`
:math:`x - 2` is exact (Sterbenz), so :math:`1 - (1-x)^k` is again an ``expm1``
(even k) or a sum of positive terms (odd k). All branches are selected with
``where`` on safe arguments, so the functions are traceable and their gradients
finite (:func:`jax.grad` through :mod:`ntkspec.design`).

**Stability.** Gradient descent multiplies mode :math:`\lambda` of the residual by
:math:`1 - r\lambda`; every mode decays iff :math:`r\lambda_{\max} < 2`
(:func:`check_gd_stability`, shared by every gradient-descent path). Gradient flow
is stable for every rate.

**The largest eigenvalue** (:func:`largest_eigenvalue`) is the Rayleigh quotient
of power iteration (Golub & Van Loan 2013, §7.3.1), a lower bound of
:math:`\lambda_{\max}` for a PSD operator, converging at the rate
:math:`(\lambda_2/\lambda_1)^{2i}`.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002
    (§1.14.1, expm1 and log1p; Sterbenz's lemma, §2.5).
    Golub & Van Loan, "Matrix Computations", 4th ed., Johns Hopkins 2013 (§7.3.1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope

__all__ = [
    "DivergenceWarning",
    "gd_filter",
    "gd_decay",
    "check_gd_stability",
    "largest_eigenvalue",
]


def _xp(*arrays):
    """jax.numpy when any argument is a JAX array (or tracer), else NumPy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _check_time(time, discrete: bool) -> float:
    if isinstance(time, jax.core.Tracer) or np.ndim(time) != 0:
        raise TypeError(
            f"time must be a concrete scalar (it selects the branch); got {time!r}"
        )
    t = float(time)
    if not t >= 0.0:
        raise ValueError(f"time must be >= 0 (inf allowed); got {time!r}")
    if discrete and math.isfinite(t) and t != round(t):
        raise ValueError(f"with discrete=True, time must be a whole number; got {t}")
    return t


def gd_filter(lam, time, rate, *, discrete: bool = False):
    r""":math:`\varphi_t(\lambda) = (1 - d_t(\lambda))/\lambda`, finite at 0.

    See the module docstring for the formulas and their evaluation. Negative
    ``lam`` (round-off of a PSD spectrum, Ritz values) is clipped to 0.

    Args:
        lam: eigenvalues, any shape; a NumPy array (NumPy evaluation) or a JAX array
            or tracer (JAX evaluation, differentiable in ``lam`` and ``rate``).
        time: t >= 0, a concrete scalar (``inf`` allowed); the number of steps k
            when ``discrete``.
        rate: :math:`r > 0` per unit time (or per step); may be traced.
        discrete: gradient descent (k steps) instead of gradient flow.

    Returns:
        :math:`\varphi_t(\lambda)`, the shape and dtype of ``lam``.
    """
    t = _check_time(time, discrete)
    xp = _xp(lam, rate)
    lam = xp.maximum(xp.asarray(lam), 0.0)
    pos = lam > 0
    safe_lam = xp.where(pos, lam, 1.0)
    if math.isinf(t):
        return xp.where(pos, 1.0 / safe_lam, 0.0)
    if t == 0.0:
        return xp.zeros_like(lam)
    tiny = np.finfo(lam.dtype).tiny
    if not discrete:
        s = rate * t
        x = s * lam
        small = x <= 1.0
        normal = x >= tiny
        safe_x = xp.where(normal & small, x, 1.0)
        ratio = xp.where(normal, -xp.expm1(-safe_x) / safe_x, 1.0)  # (1 - e^-x)/x
        big = -xp.expm1(-xp.where(small, 1.0, x)) / xp.where(small, 1.0, safe_lam)
        return xp.where(small, s * ratio, big)
    x = rate * lam
    one_minus_d = _one_minus_power(xp, x, t)
    small = x <= 1.0
    normal = x >= tiny
    safe_x = xp.where(normal & small, x, 1.0)
    lo = xp.where(normal, one_minus_d / safe_x, t) * rate  # r (1 - (1-x)^k) / x
    hi = one_minus_d / xp.where(small, 1.0, safe_lam)
    return xp.where(small, lo, hi)


def _log_abs_power(xp, x, k: float):
    r""":math:`k \log|1 - x|` (x >= 0, x != 1) by ``k * log1p(u)``, u exact near 0, 2.

    At x = 1 (where :math:`(1 - x)^k = 0`) it returns 0 on a safe argument; the
    callers select that point themselves.
    """
    u = xp.where(x < 1.0, -x, x - 2.0)  # 1 + u = |1 - x|
    return k * xp.log1p(xp.where(x == 1.0, 0.0, u))


def _one_minus_power(xp, x, k: float):
    r""":math:`1 - (1 - x)^k` for x >= 0 and a whole k >= 1, without cancellation."""
    log_abs = _log_abs_power(xp, x, k)
    if int(k) % 2 == 0:
        out = -xp.expm1(log_abs)
    else:
        out = xp.where(x > 1.0, 1.0 + xp.exp(log_abs), -xp.expm1(log_abs))
    return xp.where(x == 1.0, 1.0, out)


def _power(xp, x, k: float):
    r""":math:`(1 - x)^k = (-1)^{k [x > 1]}\, e^{k \log|1 - x|}` for a whole k >= 1."""
    mag = xp.where(x == 1.0, 0.0, xp.exp(_log_abs_power(xp, x, k)))
    if int(k) % 2 == 0:
        return mag
    return xp.where(x > 1.0, -mag, mag)


def gd_decay(lam, time, rate, *, discrete: bool = False):
    r""":math:`d_t(\lambda)`: :math:`e^{-rt\lambda}` or :math:`(1 - r\lambda)^k`.

    At :math:`t = \infty`: 0 on :math:`\lambda > 0`, 1 on the null space. Negative
    ``lam`` is clipped to 0. Arguments as :func:`gd_filter`.
    """
    t = _check_time(time, discrete)
    xp = _xp(lam, rate)
    lam = xp.maximum(xp.asarray(lam), 0.0)
    if math.isinf(t):
        return xp.where(lam > 0, 0.0, 1.0).astype(lam.dtype)
    if t == 0.0:
        return xp.ones_like(lam)
    if not discrete:
        return xp.exp(-(rate * t) * lam)
    return _power(xp, rate * lam, t)


class DivergenceWarning(RuntimeWarning):
    """Gradient descent run above its stability limit: the values grow without bound."""


def check_gd_stability(
    lam_max: float,
    learning_rate: float,
    n_y: int,
    times,
    *,
    discrete: bool,
    stacklevel: int = 3,
) -> None:
    r"""Warn (finite times) or raise (t = inf) when gradient descent diverges.

    A step :math:`f \leftarrow f - (\eta/N_y)\Theta(f - y)` multiplies mode i of the
    residual by :math:`1 - \eta\lambda_i/N_y`; every mode decays only when
    :math:`\eta < 2 N_y/\lambda_{\max}`. Gradient flow is always stable. Pass
    ``n_y=1`` where the rate multiplies the operator directly (``inverse_regression``).

    Args:
        lam_max: the largest eigenvalue (ridge included), or an estimate of it.
        learning_rate: :math:`\eta`.
        n_y: :math:`N_y`, the loss normalisation.
        times: the times or step counts asked for (scalar or sequence).
        discrete: gradient descent (checked) or gradient flow (nothing to check).
        stacklevel: of the warning.

    Raises:
        ValueError: unstable at ``times = inf`` (there is no limit to return).

    Warns:
        DivergenceWarning: (a RuntimeWarning) unstable at a finite time > 0.
    """
    if not discrete or not lam_max > 0:
        return
    if learning_rate / n_y * lam_max < 2.0:
        return
    limit = 2.0 * n_y / lam_max
    if n_y == 1:
        rule = f"2 / lambda_max = {limit:.6g} (lambda_max = {lam_max:.6g})"
    else:
        rule = (
            f"2 N_y / lambda_max = {limit:.6g} (N_y = {n_y}, "
            f"lambda_max = {lam_max:.6g})"
        )
    message = (
        f"discrete gradient descent diverges: learning_rate = {learning_rate:.6g} is "
        f"not below the stability limit {rule}"
    )
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if np.any(np.isinf(t)):
        raise ValueError(
            message + "; times = inf has no limit (the converged fit would be a false "
            "claim): lower learning_rate or drop inf"
        )
    if np.any(t > 0):
        warnings.warn(
            message + "; the values are returned as computed",
            DivergenceWarning,
            stacklevel=stacklevel,
        )


def largest_eigenvalue(
    operator: Callable | object,
    size: int | None = None,
    *,
    iters: int = 30,
    v0=None,
    seed: int = 0,
):
    r"""The largest eigenvalue of a symmetric PSD operator by power iteration.

    From :math:`v_0` (default: a standard normal draw of ``numpy``'s generator with
    ``seed``), ``iters`` steps :math:`v \leftarrow A v/\|A v\|`; returns the Rayleigh
    quotient :math:`v^\top A v` of the last normalised iterate (a lower bound of
    :math:`\lambda_{\max}`). A batch of independent operators is handled when
    ``operator`` is a function acting on the last axis of ``v0`` (shape
    (batch, n)): one quotient per row.

    Args:
        operator: a value with ``matvec`` on (n,) vectors (applied jitted, in
            float64), or a function ``v -> A v`` on NumPy arrays.
        size: n; needed when ``v0`` is None.
        iters: power steps (>= 1).
        v0: the start vector(s), shape (n,) or (batch, n).
        seed: seed of the default start vector.

    Returns:
        A Python float, or a NumPy array (batch,) for a batched ``v0``; clipped at 0.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1; got {iters!r}")
    if v0 is None:
        if size is None:
            raise ValueError("size must be given when v0 is None")
        v0 = np.random.default_rng(seed).standard_normal(int(size))
    v = np.asarray(v0, dtype=np.float64)
    if callable(getattr(operator, "matvec", None)):
        apply = jax.jit(lambda op, u: op.matvec(u))

        def matvec(u):
            with x64_scope(np.float64):
                return np.asarray(apply(operator, jnp.asarray(u)), np.float64)

    elif callable(operator):

        def matvec(u):
            return np.asarray(operator(u), np.float64)

    else:
        raise TypeError(
            "operator must have a matvec or be a function; got "
            f"{type(operator).__name__}"
        )
    lam = np.zeros(v.shape[:-1])
    for _ in range(iters):
        v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-300)
        w = matvec(v)
        lam = np.sum(v * w, axis=-1)
        v = w
    lam = np.maximum(lam, 0.0)
    return float(lam) if lam.ndim == 0 else lam
