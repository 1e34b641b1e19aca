r"""Generalisation of kernel regression predicted from the spectrum (eigenlearning).

Setting: eigenpairs :math:`(\lambda_i, \phi_i)` of the kernel's integral operator with
respect to the input distribution :math:`\mu`, with :math:`\phi_i` orthonormal in
:math:`L^2(\mu)`; a target :math:`f^* = \sum_i v_i \phi_i` observed with noise of
variance :math:`\epsilon^2` at n i.i.d. points; kernel ridge regression
:math:`\hat f = K(x, X)(K(X, X) + \delta I)^{-1} y` with the absolute ridge
:math:`\delta`. For :math:`\mu` uniform on an N-point grid, :math:`\lambda_i` are the
eigenvalues of the grid Gram divided by N, and :math:`v_i` the coefficients of
:math:`f^*` in the grid's orthonormal (Fourier) basis: :math:`v_m = \frac1N \sum_x
f^*(x) e^{-2\pi i m\cdot x}`. Degenerate eigenvalues are listed with their multiplicity.

The eigenlearning equations (Simon et al. 2023):

1. the effective regularisation :math:`\kappa > 0` solves
   :math:`\sum_i \frac{\lambda_i}{\lambda_i + \kappa} + \frac{\delta}{\kappa} = n`;
2. the learnability of mode i is :math:`\mathcal L_i = \lambda_i/(\lambda_i + \kappa)`
   (the expected learned coefficient is :math:`\mathcal L_i v_i`);
3. the overfitting coefficient is
   :math:`\mathcal E_0 = n / (n - \sum_i \mathcal L_i^2)`;
4. test MSE :math:`= \mathcal E_0\,(\sum_i (1 - \mathcal L_i)^2 v_i^2 + \epsilon^2)` and
   train MSE :math:`= (\delta / (n\kappa))^2` times the test MSE.

The same result in Bordelon, Canatar & Pehlevan's variables is
:math:`\kappa_B = n\kappa`. The theory assumes i.i.d. training points and is exact as n
grows; for a regular sub-grid use the exact aliasing formula instead (the structured
path of :func:`ntkspec.kernel_regression`).

References:
    Simon, Dickens, Karkada & DeWeese, "The Eigenlearning Framework: A Conservation Law
    Perspective on Kernel Regression and Wide Neural Networks", TMLR 2023,
    https://arxiv.org/abs/2110.03922.
    Bordelon, Canatar & Pehlevan, "Spectrum Dependent Learning Curves in Kernel
    Regression and Wide Neural Networks", ICML 2020, https://arxiv.org/abs/2002.02561.
    Canatar, Bordelon & Pehlevan, "Spectral bias and task-model alignment explain
    generalization in kernel regression and infinitely wide neural networks", Nature
    Communications 12:2914 (2021), https://arxiv.org/abs/2006.13198.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ._validation import check_real

__all__ = [
    "EigenlearningPrediction",
    "find_kappa",
    "kappa_equation_residual",
    "learnabilities",
    "overfitting_coefficient",
    "eigenlearning",
    "eigenlearning_curve",
]


def _as_eigenvalues(eigenvalues) -> np.ndarray:
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size < 1:
        raise ValueError(
            f"eigenvalues must be a non-empty 1-D array; got shape {lam.shape}"
        )
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be finite; they contain NaN or inf")
    scale = float(np.max(np.abs(lam)))
    if np.min(lam) < -1e-10 * scale:
        raise ValueError(
            "eigenvalues must be >= 0 (a PSD kernel); the smallest is "
            f"{np.min(lam):.3e}"
        )
    return np.maximum(lam, 0.0)


def _check_n(n) -> float:
    if isinstance(n, bool) or not isinstance(n, numbers.Real):
        raise TypeError(f"n must be a positive number of training points; got {n!r}")
    if not (math.isfinite(n) and n > 0):
        raise ValueError(f"n must be a positive number of training points; got {n}")
    return float(n)


def kappa_equation_residual(eigenvalues, kappa: float, n: float, ridge: float = 0.0):
    r"""The left side minus the right of the kappa equation.

    .. math:: g(\kappa) = \sum_i \frac{\lambda_i}{\lambda_i + \kappa}
        + \frac{\delta}{\kappa} - n.

    Returns:
        A float; 0 at the solution, decreasing in :math:`\kappa`.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return float(np.sum(lam / (lam + kappa)) + ridge / kappa - n)


def find_kappa(
    eigenvalues,
    n: float,
    ridge: float = 0.0,
    *,
    rtol: float = 1e-15,
    max_iter: int = 500,
) -> float:
    r"""The effective regularisation :math:`\kappa` of eigenlearning.

    Solves :math:`\sum_i \lambda_i/(\lambda_i + \kappa) + \delta/\kappa = n` by a
    safeguarded Newton iteration in :math:`u = \log\kappa` (the left side is strictly
    decreasing in :math:`\kappa`; a bisection bracket keeps every step inside).

    Args:
        eigenvalues: operator eigenvalues :math:`\lambda_i \ge 0`, shape (M,).
        n: number of training points (> 0; need not be an integer).
        ridge: the absolute ridge :math:`\delta \ge 0` of
            :math:`K(x, X)(K(X, X) + \delta I)^{-1} y`.
        rtol: stop when the bracket in :math:`\log\kappa` is narrower than this or the
            equation holds to ``rtol * n``.
        max_iter: iteration cap.

    Returns:
        :math:`\kappa > 0` as a float.

    Raises:
        ValueError: with ``ridge = 0``, n must be below the number of positive
            eigenvalues (otherwise the interpolant has no :math:`\kappa > 0`).
    """
    lam = _as_eigenvalues(eigenvalues)
    n = _check_n(n)
    check_real(ridge, "ridge", low=0.0)
    ridge = float(ridge)
    positive = int(np.sum(lam > 0))
    if ridge == 0.0 and n >= positive:
        raise ValueError(
            "with ridge = 0, n must be smaller than the number of positive "
            f"eigenvalues "
            f"({positive}); got n = {n}. Give ridge > 0 or more eigenvalues."
        )
    total = float(np.sum(lam))

    def g(u: float) -> tuple[float, float]:
        kappa = math.exp(u)
        frac = lam / (lam + kappa)
        value = float(np.sum(frac)) + ridge / kappa - n
        # d/du of the left side: -sum lam kappa/(lam+kappa)^2 - ridge/kappa
        slope = -float(np.sum(frac * (1.0 - frac))) - ridge / kappa
        return value, slope

    # Bracket: g(hi) <= 0 since sum lam/(lam+k) <= sum lam / k.
    hi = math.log((total + ridge) / n)
    lo = hi - 1.0
    for _ in range(2000):
        if g(lo)[0] > 0:
            break
        lo -= 2.0
    else:  # pragma: no cover - impossible for valid input
        raise RuntimeError("could not bracket kappa")
    u = 0.5 * (lo + hi)
    for _ in range(max_iter):
        value, slope = g(u)
        if abs(value) <= rtol * n:
            break
        if value > 0:
            lo = u
        else:
            hi = u
        step = u - value / slope if slope < 0 else 0.5 * (lo + hi)
        u = step if lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < rtol:
            break
    return math.exp(u)


def learnabilities(eigenvalues, kappa: float) -> np.ndarray:
    r"""Per-mode learnability :math:`\mathcal L_i = \lambda_i/(\lambda_i + \kappa)`.

    Returns:
        Shape (M,), values in [0, 1).
    """
    lam = _as_eigenvalues(eigenvalues)
    check_real(kappa, "kappa", low=0.0, low_inclusive=False)
    return lam / (lam + float(kappa))


def overfitting_coefficient(eigenvalues, kappa: float, n: float) -> float:
    r"""Overfitting coefficient :math:`\mathcal E_0 = n/(n - \sum_i \mathcal L_i^2)`."""
    n = _check_n(n)
    L = learnabilities(eigenvalues, kappa)
    return n / (n - float(np.sum(L * L)))


@dataclasses.dataclass(frozen=True)
class EigenlearningPrediction:
    r"""Eigenlearning's predictions for one training-set size.

    Attributes:
        n: number of training points.
        ridge: absolute ridge :math:`\\delta`.
        kappa: effective regularisation.
        learnabilities: per-mode learnability, shape (M,).
        e0: overfitting coefficient :math:`\\mathcal E_0`.
        test_mse: predicted test MSE (noise-free target error plus noise), per output
            column (shape (c,)) or a float for a 1-D target.
        train_mse: predicted train MSE, same shape as ``test_mse``.
    """

    n: float
    ridge: float
    kappa: float
    learnabilities: np.ndarray
    e0: float
    test_mse: float | np.ndarray
    train_mse: float | np.ndarray


def eigenlearning(
    eigenvalues, target_coefficients, n: float, ridge: float = 0.0, *, noise_var=0.0
) -> EigenlearningPrediction:
    r"""Predicted test and train MSE of kernel ridge regression with n random points.

    .. math::

        \text{test MSE} = \mathcal E_0 \Big(\sum_i (1 - \mathcal L_i)^2 |v_i|^2
            + \epsilon^2\Big), \qquad
        \text{train MSE} = \Big(\frac{\delta}{n\kappa}\Big)^2\,\text{test MSE}.

    Args:
        eigenvalues: operator eigenvalues, shape (M,) (multiplicities included).
        target_coefficients: the target's coefficients :math:`v_i` in the same
            eigenbasis, shape (M,) or (M, c); complex values (Fourier modes) are
            allowed, only :math:`|v_i|^2` enters.
        n: number of training points.
        ridge: absolute ridge :math:`\delta \ge 0`.
        noise_var: label-noise variance :math:`\epsilon^2 \ge 0`.

    Returns:
        An :class:`EigenlearningPrediction`.

    Example:
        >>> import numpy as np
        >>> pred = eigenlearning(np.array([1.0, 0.5, 0.25, 0.125]), np.ones(4), 2)
        >>> round(float(np.sum(pred.learnabilities)), 12)
        2.0
    """
    lam = _as_eigenvalues(eigenvalues)
    v = np.asarray(target_coefficients)
    if v.shape[:1] != lam.shape or v.ndim not in (1, 2):
        raise ValueError(
            f"target_coefficients must have shape (M,) or (M, c) with M = {lam.size} "
            f"(one per eigenvalue); got {v.shape}"
        )
    if not np.all(np.isfinite(v)):
        raise ValueError("target_coefficients must be finite")
    check_real(noise_var, "noise_var", low=0.0)
    kappa = find_kappa(lam, n, ridge)
    L = lam / (lam + kappa)
    e0 = overfitting_coefficient(lam, kappa, n)
    power = np.abs(v) ** 2
    weights = (1.0 - L) ** 2
    bias = weights @ power if power.ndim == 1 else weights @ power
    test = e0 * (bias + float(noise_var))
    train = (float(ridge) / (float(n) * kappa)) ** 2 * test
    if np.ndim(test) == 0:
        test, train = float(test), float(train)
    return EigenlearningPrediction(float(n), float(ridge), kappa, L, e0, test, train)


def eigenlearning_curve(
    eigenvalues, target_coefficients, ns, ridge: float = 0.0, *, noise_var=0.0
) -> dict:
    """Eigenlearning predictions for several training-set sizes.

    Returns:
        A dict of 1-D arrays over ``ns``: ``n``, ``kappa``, ``e0``, ``test_mse``,
        ``train_mse`` (test/train MSE summed over output columns for a 2-D target).
    """
    rows = [
        eigenlearning(eigenvalues, target_coefficients, n, ridge, noise_var=noise_var)
        for n in ns
    ]
    return {
        "n": np.array([r.n for r in rows]),
        "kappa": np.array([r.kappa for r in rows]),
        "e0": np.array([r.e0 for r in rows]),
        "test_mse": np.array([np.sum(r.test_mse) for r in rows]),
        "train_mse": np.array([np.sum(r.train_mse) for r in rows]),
    }
