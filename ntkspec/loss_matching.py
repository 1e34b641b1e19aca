r"""The loss-matched time: where on the NTK's time axis a trained network sits.

Adam has no gradient-flow time. What an Adam run and the infinitely wide network both
observe is the fit to the training data, so a run is placed on the theory's time axis
by its final train error: :math:`t^*` is the gradient-flow time at which the NTK's
train MSE equals the run's,

.. math::

    L(t) = \frac{1}{N_y}\sum_i e^{-2\eta\lambda_i t/N_y}\,\|r_i\|^2 = L_{\rm run},
    \qquad r = V^\top (f_0 - y),

with :math:`\lambda_i, V` the eigenpairs of the train Gram (plus ridge),
:math:`N_y` = ``y.size`` and the loss :math:`\frac{1}{2N_y}\sum (f-y)^2` of
:func:`ntkspec.gd_dynamics`. :math:`L(t)` decreases strictly in t (every term does),
so :math:`t^*` is unique and found by a 1-D root search in :math:`\log t`. The NTK's
held-out prediction at :math:`t^*` (:func:`ntkspec.gd_dynamics`) is then compared with
the network's held-out PSNR.

**Time convention** (issue 24): times are gradient-flow times at learning rate
:math:`\eta` = 1 in :func:`ntkspec.gd_dynamics`'s units, i.e. mode i decays as
:math:`e^{-\lambda_i t / N_y}`. A run of T discrete GD steps at step size
:math:`\eta` sits near :math:`t = \eta T` while :math:`\eta\lambda_i/N_y \ll 1`.

References:
    Jacot et al., "Neural Tangent Kernel: Convergence and Generalization in Neural
    Networks", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .linalg.funm import gd_decay

__all__ = ["LossMatch", "train_mse", "loss_matched_time", "loss_matched_prediction"]


@dataclasses.dataclass(frozen=True)
class LossMatch:
    """The gradient-flow time at which the NTK's train MSE equals a target.

    Attributes:
        time: :math:`t^*` (0 when the target is at or above the initial MSE,
            ``inf`` when it is below every reachable MSE).
        train_mse: the NTK's train MSE at ``time``.
        target_mse: the target (the network's final train MSE).
        status: "matched", "above_initial" (the target is not below L(0)) or
            "below_reachable" (the target is below L at the largest searched time,
            where only the ridge-free null modes remain).
    """

    time: float
    train_mse: float
    target_mse: float
    status: str


def train_mse(eigenvalues, initial, t, *, rate: float = 1.0) -> float:
    r"""The gradient-flow train MSE :math:`L(t)` from the eigen-expansion.

    Args:
        eigenvalues: :math:`\lambda_i` of the train Gram (plus ridge), shape (n,).
        initial: :math:`V^\top(f_0 - y)`, shape (n,) or (n, c).
        t: time >= 0 (``inf`` allowed).
        rate: :math:`\eta / N_y`.

    Returns:
        The mean squared train error over the n x c entries.
    """
    lam = np.asarray(eigenvalues, np.float64)
    r2 = np.asarray(initial, np.float64).reshape(len(lam), -1) ** 2
    decay = gd_decay(lam, float(t), rate) ** 2  # the squared residual decays twice
    return float(decay @ r2.sum(axis=1)) / r2.size


def loss_matched_time(
    eigenvalues, initial, target_mse: float, *, rate: float = 1.0, rtol: float = 1e-10
) -> LossMatch:
    r"""The time :math:`t^*` with :math:`L(t^*)` = ``target_mse`` (module docstring).

    Args:
        eigenvalues: :math:`\lambda_i \ge 0` of the train Gram (plus ridge), (n,), e.g.
            ``ModeResiduals.eigenvalues`` of :func:`ntkspec.eigenmode_residuals`.
        initial: :math:`V^\top(f_0 - y)`, (n,) or (n, c) (``ModeResiduals.initial``).
        target_mse: the train MSE to match (> 0), e.g. :math:`10^{-\rm PSNR/10}`.
        rate: :math:`\eta / N_y` (``ModeResiduals.rate``).
        rtol: relative tolerance on :math:`\log t^*`.

    Returns:
        A :class:`LossMatch`.

    Raises:
        ValueError: on a non-positive target or rate, a negative eigenvalue, or
            mismatched shapes.

    Example:
        >>> m = loss_matched_time([2.0], [1.0], target_mse=float(np.exp(-4.0)))
        >>> round(m.time, 10)  # e^{-2 * 2 t} = e^{-4}
        1.0
    """
    from scipy.optimize import brentq

    lam = np.asarray(eigenvalues, np.float64)
    r = np.asarray(initial, np.float64)
    if lam.ndim != 1 or r.shape[0] != lam.shape[0]:
        raise ValueError(
            f"eigenvalues must be (n,) and initial (n,) or (n, c); got {lam.shape} "
            f"and {r.shape}"
        )
    if not (target_mse > 0 and math.isfinite(target_mse)):
        raise ValueError(f"target_mse must be finite and > 0; got {target_mse}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0; got {rate}")
    if np.any(lam < 0):
        raise ValueError(f"eigenvalues must be >= 0; got min {lam.min()}")
    l0 = train_mse(lam, r, 0.0, rate=rate)
    if target_mse >= l0:
        return LossMatch(0.0, l0, float(target_mse), "above_initial")
    pos = lam[lam > 0]
    if pos.size == 0:
        return LossMatch(math.inf, l0, float(target_mse), "below_reachable")
    # every mode is at e^{-2 * 1e-8} at t_lo and below e^{-2 * 50} at t_hi
    t_lo = 1e-8 / (rate * pos.max())
    t_hi = 50.0 / (rate * pos.min())
    l_hi = train_mse(lam, r, t_hi, rate=rate)
    if target_mse <= l_hi:
        return LossMatch(math.inf, l_hi, float(target_mse), "below_reachable")
    log_target = math.log(target_mse)

    def gap(s):
        return math.log(train_mse(lam, r, math.exp(s), rate=rate)) - log_target

    s = brentq(gap, math.log(t_lo), math.log(t_hi), xtol=1e-300, rtol=max(rtol, 4e-16))
    t = math.exp(s)
    return LossMatch(t, train_mse(lam, r, t, rate=rate), float(target_mse), "matched")


def loss_matched_prediction(
    arch,
    mapping,
    x_train,
    y_train,
    x_test,
    target_mse: float,
    *,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    max_bytes: float | None = None,
):
    r"""The NTK's test prediction at the loss-matched time :math:`t^*`.

    One dense ``eigh`` of the train Gram (:func:`ntkspec.eigenmode_residuals`), the
    root search of :func:`loss_matched_time`, then :func:`ntkspec.gd_dynamics` at
    :math:`t^*` (gradient flow, mean output from :math:`f_0 = 0`).

    Args:
        arch: the architecture.
        mapping: input mapping (applied inside).
        x_train: train coordinates (n, d) (a Grid takes the dense path).
        y_train: targets (n,) or (n, c).
        x_test: test coordinates (n_test, d).
        target_mse: the train MSE to match (the network's final train MSE).
        learning_rate: :math:`\eta` of the time axis (1: the convention above).
        ridge: absolute ridge on the train Gram.
        max_bytes: memory cap for the dense matrices.

    Returns:
        ``(f_test, match)``: the test prediction at :math:`t^*`, shape of
        ``(len(x_test),) + y_train.shape[1:]``, and the :class:`LossMatch`.
    """
    from .dynamics import eigenmode_residuals, gd_dynamics

    modes = eigenmode_residuals(
        arch, mapping, x_train, y_train, [0.0], learning_rate, ridge=ridge,
        max_bytes=max_bytes,
    )  # fmt: skip
    match = loss_matched_time(
        modes.eigenvalues, modes.initial, target_mse, rate=modes.rate
    )
    _, f_test = gd_dynamics(
        arch, mapping, x_train, y_train, x_test, [match.time], learning_rate,
        ridge=ridge, max_bytes=max_bytes,
    )  # fmt: skip
    return f_test[0], match
