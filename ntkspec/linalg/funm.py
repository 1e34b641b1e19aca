r"""Matrix functions: the training filters, λ_max, and Krylov :math:`f(A) V`.

Written once here: the spectral functions of training (the time filter, the decay,
their stability check), the largest-eigenvalue estimate, and the Krylov matrix
functions :func:`lanczos_matfun` / :func:`lanczos_matfuns` that apply any of them to
an operator given only its ``matvec``.

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

**Krylov matrix functions.** :func:`lanczos_matfun` approximates :math:`f(A) V` by
m steps of Lanczos per column, :math:`f(A) v \approx \|v\|\, Q_m f(T_m) e_1` (Saad
1992), with the a-posteriori error estimate :math:`\|v\|\,\|f(T_m) e_1 - [f(T_{m-1})
e_1; 0]\|`; :func:`lanczos_matfuns` serves several functions from one Lanczos run,
its Krylov dimension chosen by the estimate.

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
    Saad, "Analysis of some Krylov subspace approximations to the matrix exponential
    operator", SIAM J. Numer. Anal. 29(1), 1992.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._linalg import scipy  # scipy.linalg imported on first use
from .._numerics import x64_scope
from .._validation import check_positive_int, check_real
from ._operand import as_columns, check_operator
from .solution import Solution

__all__ = [
    "DivergenceWarning",
    "gd_filter",
    "gd_decay",
    "check_gd_stability",
    "largest_eigenvalue",
    "lanczos_matfun",
    "lanczos_matfuns",
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


# --------------------------------------------------------------------------------------
# Krylov matrix function times vectors.
# --------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("steps",))
def _lanczos_tridiag(operator, V, steps):
    """M = ``steps`` Lanczos steps per column of V (N, c), full reorthogonalisation.

    Returns (Q (c, m, N), alpha (c, m), beta (c, m - 1), norms (c,)). A column whose
    Krylov space is invariant (beta ~ 0) continues with zero vectors: T decouples and
    the extra block does not touch :math:`f(T) e_1`.
    """
    n, c = V.shape
    norms = jnp.sqrt(jnp.sum(V * V, axis=0))
    q0 = (V / jnp.where(norms > 0, norms, 1.0)[None, :]).T  # (c, N)
    Q = jnp.zeros((c, steps, n), V.dtype).at[:, 0].set(q0)
    alpha = jnp.zeros((c, steps), V.dtype)
    beta = jnp.zeros((c, steps), V.dtype)
    scale = jnp.zeros((c,), V.dtype)

    def body(j, state):
        Q, alpha, beta, scale = state
        q = Q[:, j]  # (c, N)
        w = operator.matvec(q.T).T
        a = jnp.sum(w * q, axis=1)
        # Full reorthogonalisation, twice (rows of Q past j are still zero).
        for _ in range(2):
            w = w - jnp.einsum("cm,cmn->cn", jnp.einsum("cmn,cn->cm", Q, w), Q)
        bnorm = jnp.sqrt(jnp.sum(w * w, axis=1))
        scale = jnp.maximum(scale, jnp.abs(a))
        ok = bnorm > 1e-13 * jnp.maximum(scale, jnp.finfo(V.dtype).tiny)
        q_next = jnp.where(ok[:, None], w / jnp.where(ok, bnorm, 1.0)[:, None], 0.0)
        nxt = jnp.minimum(j + 1, steps - 1)
        keep = j + 1 < steps
        Q = Q.at[:, nxt].set(jnp.where(keep, q_next, Q[:, nxt]))
        alpha = alpha.at[:, j].set(a)
        beta = beta.at[:, j].set(jnp.where(ok, bnorm, 0.0))
        return Q, alpha, beta, scale

    Q, alpha, beta, _ = jax.lax.fori_loop(0, steps, body, (Q, alpha, beta, scale))
    return Q, alpha, beta[:, : steps - 1], norms


def _f_tridiag_e1(f, alpha, beta):
    r""":math:`f(T) e_1` for each column's tridiagonal T (eigh of a (c, m, m) stack)."""
    m = alpha.shape[1]
    T = (
        jax.vmap(jnp.diag)(alpha)
        + jax.vmap(lambda b: jnp.diag(b, 1))(beta)
        + jax.vmap(lambda b: jnp.diag(b, -1))(beta)
    )
    theta, S = jnp.linalg.eigh(T)
    del m
    return jnp.einsum("cij,cj,cj->ci", S, f(theta), S[:, 0, :])


def lanczos_matfun(
    operator,
    f: Callable,
    V,
    *,
    krylov_dim: int = 64,
    rtol: float = 1e-10,
) -> Solution:
    r"""Krylov approximation of :math:`f(A) V` for symmetric :math:`A`, per column.

    With :math:`m` = ``krylov_dim`` Lanczos steps from :math:`q_1 = v/\|v\|`,
    :math:`A Q_m = Q_m T_m + \beta_m q_{m+1} e_m^\top`, and

    .. math::

        f(A) v \approx \|v\|\, Q_m f(T_m) e_1,

    exact when :math:`f` is a polynomial of degree < m or the Krylov space is invariant
    (Saad 1992). The a-posteriori error estimate is the change from :math:`m - 1`
    steps, :math:`\|v\|\,\|f(T_m)e_1 - [f(T_{m-1})e_1; 0]\|` relative to the result's
    norm (worst column). :math:`f` is applied to eigenvalues of :math:`T_m` only, so
    e.g. :math:`\varphi_t(\lambda) = (1 - e^{-\eta\lambda t/N})/\lambda` must be
    written to be finite at :math:`\lambda \to 0`.

    Args:
        operator: symmetric, with ``shape`` and ``matvec``.
        f: elementwise function on a JAX array of eigenvalues, returning the same shape.
        V: vectors, shape (N,) or (N, c); all columns run at once.
        krylov_dim: m, the Lanczos steps (2 <= m, at most N).
        rtol: tolerance on the error estimate for ``converged``.

    Returns:
        A :class:`~ntkspec.linalg.solution.Solution`: ``value`` of V's shape,
        ``iterations`` = m, ``residual`` the relative error estimate.
    """
    n = check_operator(operator)
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    m = check_positive_int(krylov_dim, "krylov_dim", minimum=2)
    m = min(m, n)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        W, squeeze = as_columns(V, n, dtype, "V")
        Q, alpha, beta, norms = _lanczos_tridiag(operator, W, max(m, 2))
        y = _f_tridiag_e1(f, alpha, beta)  # (c, m)
        out = jnp.einsum("cm,cmn->nc", y * norms[:, None], Q)
        if m > 1:
            y_prev = _f_tridiag_e1(f, alpha[:, :-1], beta[:, :-1])
            diff = jnp.sqrt(jnp.sum((y[:, :-1] - y_prev) ** 2, axis=1) + y[:, -1] ** 2)
            ynorm = jnp.sqrt(jnp.sum(y * y, axis=1))
            est = jnp.max(diff / jnp.where(ynorm > 0, ynorm, 1.0))
        else:
            est = jnp.asarray(0.0, dtype)
        value = out[:, 0] if squeeze else out
        return Solution(value, jnp.asarray(m), est, est <= rtol)


@jax.jit
def _columns_matvec(operator, rows):
    """The operator applied to all columns at once: rows (c, N) -> (c, N)."""
    return operator.matvec(rows.T).T


def _tridiag_e1(fs, alpha, beta):
    r""":math:`f(T) e_1` for each f in ``fs``, one ``eigh`` of the tridiagonal T."""
    theta, s = scipy.linalg.eigh_tridiagonal(alpha, beta, check_finite=False)
    w = s[0, :]
    return [s @ (np.asarray(f(theta), dtype=np.float64) * w) for f in fs]


def _estimate_column(fs, alpha, beta, invariant, col, prev, ys, est):
    r"""Column ``col``'s :math:`f_i(T_m) e_1` and their estimates, stored in place.

    The estimate of each function is the change since the previous check (at the
    first check, since m - 1 steps), relative to the new value; 0 for an invariant
    Krylov space (the result is exact); ``prev``, ``ys`` and ``est`` are updated.
    """
    m = alpha.shape[0]
    out = _tridiag_e1(fs, alpha, beta)
    first = None
    if prev[0][col] is None and m > 1 and not invariant:
        # no earlier check yet: compare with m - 1 steps
        first = _tridiag_e1(fs, alpha[: m - 1], beta[: m - 2])
    for i, y in enumerate(out):
        ynorm = np.linalg.norm(y)
        if invariant:
            e = 0.0
        elif prev[i][col] is None and first is None:
            e = np.inf
        else:
            older = first[i] if prev[i][col] is None else prev[i][col]
            old = np.zeros(m)
            old[: older.size] = older
            e = np.linalg.norm(y - old) / (ynorm if ynorm > 0 else 1.0)
        est[i, col], ys[i][col], prev[i][col] = e, y, y


def lanczos_matfuns(
    operator,
    fs,
    V,
    *,
    rtol: float = 1e-10,
    max_dim: int = 1000,
    check_every: int = 8,
    reorthogonalize: bool = True,
) -> list[Solution]:
    r"""Several :math:`f_i(A) V` from one Lanczos run per column, stopped adaptively.

    The Krylov basis :math:`Q_m` and tridiagonal :math:`T_m` of each column
    :math:`v` (one Lanczos run, full reorthogonalisation, all columns sharing each
    matvec) serve every function:

    .. math::

        f_i(A) v \approx \|v\|\, Q_m f_i(T_m) e_1 \qquad (i = 1, \dots, F).

    Every ``check_every`` steps the a-posteriori estimate of each function and column,

    .. math::

        \epsilon_i = \frac{\|f_i(T_m) e_1 - [f_i(T_{m'}) e_1; 0]\|}{\|f_i(T_m) e_1\|},
        \qquad m' = m - \texttt{check\_every}
        \;(m - 1 \text{ at the first check}),

    is computed (the change since the previous check, which bounds the error of the
    older iterate and, under the superlinear convergence of entire functions, that of
    the current one); the run stops when every :math:`\epsilon_i \le` ``rtol``, when the
    Krylov space is invariant (then the result is exact), or at ``max_dim``. For an
    entire :math:`f` the error after m steps is bounded by the best uniform polynomial
    approximation of degree m - 1 on the spectrum (Saad 1992; Druskin & Knizhnerman
    1989), so the steps needed grow with the spread of :math:`f` over the spectrum:
    :math:`e^{-s\lambda}` needs :math:`O(\sqrt{s\lambda_{\max}})` steps (Hochbruck &
    Lubich 1997).

    Unlike :func:`lanczos_matfun` (a fixed m, jitted), the loop runs in NumPy around a
    jitted matvec, so the basis grows only as far as needed; it takes
    ``m * c * N * 8`` bytes (a Krylov workspace, not a dense kernel matrix).

    Args:
        operator: symmetric, with ``shape`` and ``matvec`` over (N, c).
        fs: a sequence of functions, each elementwise on a NumPy array of Ritz
            values (finite at 0: write :math:`(1 - e^{-s\lambda})/\lambda` with its
            limit s).
        V: vectors, shape (N,) or (N, c).
        rtol: tolerance on every estimate (> 0).
        max_dim: largest Krylov dimension per column (>= 2, at most N).
        check_every: steps between estimates (>= 1).
        reorthogonalize: full reorthogonalisation (two classical Gram-Schmidt passes
            per step, O(m c N) each, which dominates past m ~ 50 at image size);
            False runs the plain three-term recurrence, O(c N) per step. Without it
            the basis loses orthogonality as Ritz values converge, which delays but
            does not spoil :math:`f(A)v` (its error stays bounded by the best
            polynomial approximation on a slightly wider interval: Druskin &
            Knizhnerman 1991; Musco, Musco & Sidford 2018), and the estimate still
            tracks it.

    Returns:
        One :class:`~ntkspec.linalg.solution.Solution` per function, ``value`` of
        V's shape; ``iterations`` the Krylov dimension reached, ``residual`` the
        worst column's estimate,
        ``converged`` whether it met ``rtol``. Non-convergence is reported there, not
        warned: the caller decides.

    References:
        Saad, "Analysis of some Krylov subspace approximations to the matrix
        exponential operator", SIAM J. Numer. Anal. 29(1), 1992.
        Hochbruck & Lubich, "On Krylov subspace approximations to the matrix
        exponential operator", SIAM J. Numer. Anal. 34(5), 1997.
        Druskin & Knizhnerman, "Error bounds in the simple Lanczos procedure for
        computing functions of symmetric matrices and eigenvalues", Comput. Math.
        Math. Phys. 31(7), 1991.
        Musco, Musco & Sidford, "Stability of the Lanczos method for matrix function
        approximation", SODA 2018, arXiv:1708.07788.
    """
    n = check_operator(operator)
    fs = tuple(fs)
    if not fs or not all(callable(f) for f in fs):
        raise TypeError("fs must be a non-empty sequence of callables")
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_dim = min(check_positive_int(max_dim, "max_dim", minimum=2), n)
    check_every = check_positive_int(check_every, "check_every")
    dtype = getattr(operator, "dtype", jnp.float64)
    with x64_scope(dtype):
        W, squeeze = as_columns(V, n, dtype, "V")
        W = np.asarray(W, dtype=np.float64).T.copy()  # (c, N)
        c = W.shape[0]
        norms = np.linalg.norm(W, axis=1)
        # np.empty reserves address space; pages are touched only as the basis grows.
        Q = np.empty((c, max_dim, n))
        Q[:, 0] = W / np.where(norms > 0, norms, 1.0)[:, None]
        alpha = np.zeros((c, max_dim))
        beta = np.zeros((c, max_dim))
        active = norms > 0
        dims = np.where(active, 0, 1)  # per column: steps done (1 for a zero column)
        scale = np.zeros(c)
        prev = [[None] * c for _ in fs]
        est = np.full((len(fs), c), np.inf)
        est[:, ~active] = 0.0
        ys = [[np.zeros(1) for _ in range(c)] for _ in fs]
        j = 0
        while j < max_dim and np.any(active):
            q = Q[:, j]
            w = np.asarray(_columns_matvec(operator, jnp.asarray(q)))
            a = np.sum(w * q, axis=1)
            if reorthogonalize:
                # Against the basis so far, twice (batched BLAS).
                for _ in range(2):
                    h = np.matmul(Q[:, : j + 1], w[:, :, None])
                    w = w - np.matmul(h.transpose(0, 2, 1), Q[:, : j + 1])[:, 0]
            else:
                # The three-term recurrence, with one local pass against q_j.
                w = w - a[:, None] * q
                if j > 0:
                    w = w - beta[:, j - 1, None] * Q[:, j - 1]
                w = w - np.sum(w * q, axis=1)[:, None] * q
            b = np.linalg.norm(w, axis=1)
            scale = np.maximum(scale, np.abs(a))
            alpha[active, j] = a[active]
            dims[active] = j + 1
            invariant = active & (b <= 1e-13 * np.maximum(scale, 1e-300))
            more = active & ~invariant & (j + 1 < max_dim)
            if j + 1 < max_dim:
                Q[:, j + 1] = np.where(
                    more[:, None], w / np.where(more, b, 1.0)[:, None], 0.0
                )
                beta[more, j] = b[more]
            j += 1
            check = (j % check_every == 0) | invariant | (j == max_dim)
            for col in np.flatnonzero(active & check):
                m = dims[col]
                _estimate_column(
                    fs, alpha[col, :m], beta[col, : m - 1], bool(invariant[col]),
                    col, prev, ys, est,
                )  # fmt: skip
                if invariant[col] or np.all(est[:, col] <= rtol):
                    active[col] = False
            if j == max_dim:
                break
        sols = []
        for i in range(len(fs)):
            out = np.zeros((n, c))
            for col in range(c):
                y = ys[i][col]
                if norms[col] > 0:
                    out[:, col] = norms[col] * (y @ Q[col, : y.size])
            worst = float(np.max(est[i]))
            value = jnp.asarray(out[:, 0] if squeeze else out)
            sols.append(
                Solution(
                    value,
                    jnp.asarray(int(np.max(dims))),
                    jnp.asarray(worst),
                    jnp.asarray(worst <= rtol),
                )
            )
        return sols
