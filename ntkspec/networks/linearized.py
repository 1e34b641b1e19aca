r"""The network linearised at its own initial empirical NTK: exact train-set dynamics.

Around its initial parameters :math:`p_0` a network is, to first order,

.. math::

    f^{\rm lin}(v; p) = f(v; p_0) + J(v)\,(p - p_0),\qquad
    J(v) = \partial f(v; p_0)/\partial p,

and full-batch training of :math:`f^{\rm lin}` on
:math:`\mathcal L = \sum_i (f(v_i) - y_i)^2 / (2 N_y)` (the loss of
:func:`~ntkspec.networks.train`, :math:`N_y` = ``y.size``) is linear in function space.
With :math:`\hat\Theta = J(X) J(X)^\top = U\,\mathrm{diag}(\hat\lambda)\,U^\top` the
empirical NTK of the initial network on the n training points, the train residual
:math:`r = f^{\rm lin}(X) - y` follows

.. math::

    r(t) = U\,e^{-\eta\hat\lambda t/N_y}\,U^\top r(0)\quad\text{(gradient flow)},\qquad
    r_k = U\,(1 - \eta\hat\lambda/N_y)^k\,U^\top r_0\quad\text{(GD, k steps)}.

This is the dynamics of :func:`ntkspec.gd_dynamics` with the analytic NTK replaced by
the finite network's own kernel at initialisation and the prior mean 0 replaced by its
own outputs :math:`f(X; p_0)`: comparing the three (analytic theory, linearised
network, trained network) separates the finite-width kernel from the kernel's drift
during training (Lee et al. 2019). No training is run.

References:
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, https://arxiv.org/abs/1902.06720.
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope
from .._validation import check_real
from ..linalg.funm import check_gd_stability, gd_decay
from ._spec import check_train_sets, compute_dtype, spec_of
from .empirical import empirical_ntk
from .network import Network

__all__ = ["LinearizedDynamics", "linearized_dynamics"]


@dataclasses.dataclass(frozen=True)
class LinearizedDynamics:
    r"""The linearised network's train residual, and the kernel that sets it.

    Attributes:
        kernel: :math:`\hat\Theta`, the empirical NTK at initialisation on the train
            points, float64 (n, n).
        eigenvalues: :math:`\hat\lambda`, ascending, (n,).
        eigenvectors: U, orthonormal columns, (n, n).
        times: (T,) the times (step counts when ``discrete``).
        initial: :math:`r(0) = f(X; p_0) - y`, (n, 1).
        residual: :math:`r(t) = f^{\rm lin}(X; p(t)) - y` at each time, (T, n, 1).
        rate: :math:`\eta / N_y`.
        discrete: whether ``times`` are gradient-descent steps.
    """

    kernel: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    times: np.ndarray
    initial: np.ndarray
    residual: np.ndarray
    rate: float
    discrete: bool


def _check_times(times, discrete: bool) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a scalar or a 1-D array; got shape {t.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError(f"times must be >= 0 (np.inf allowed); got {times!r}")
    if discrete and np.any(np.isfinite(t) & (t != np.round(t))):
        raise ValueError(
            f"times must be whole step counts when discrete; got {times!r}"
        )
    return t


def linearized_dynamics(
    net: Network,
    params,
    v_train,
    y_train,
    times,
    learning_rate: float,
    *,
    discrete: bool = False,
    implementation: str = "jacobian",
) -> LinearizedDynamics:
    r"""Train residual of ``net`` linearised at ``params``, under GD or gradient flow.

    Exact linear dynamics (module docstring): the empirical NTK of the initial network
    on the training points, one symmetric eigendecomposition, and the per-mode decay
    :math:`e^{-\eta\hat\lambda_i t/N_y}` (or :math:`(1-\eta\hat\lambda_i/N_y)^t`).
    ``times`` are those of :func:`ntkspec.gd_dynamics`: the flow time t in
    :math:`e^{-\eta\hat\lambda t/N_y}` (t = k approximates k small steps) or, with
    ``discrete``, step counts, so that ``times=steps, discrete=True`` is what
    :func:`~ntkspec.networks.train` with ``optimizer="gd"`` and the same
    ``learning_rate`` would do to the linearised network.

    Args:
        net: a single-output network (``out_dim = 1``); the cross-output terms of a
            finite network's NTK are not formed.
        params: its initial parameters :math:`p_0`.
        v_train: training coordinates, shape (n, d).
        y_train: targets, shape (n,) or (n, 1).
        times: scalar or (T,) times >= 0 (``np.inf``: the limit); whole step counts
            if ``discrete``.
        learning_rate: :math:`\eta > 0`.
        discrete: gradient-descent steps instead of gradient flow.
        implementation: how :func:`~ntkspec.networks.empirical_ntk` forms
            :math:`\hat\Theta` (``"jacobian"`` or ``"structured"``).

    Returns:
        A :class:`LinearizedDynamics`. The kernel is computed in the network's dtype
        (float64 for ``mlp(..., dtype=np.float64)``); the eigendecomposition and the
        decay in float64.

    Raises:
        ValueError: more than one output, bad shapes, ``learning_rate`` <= 0, times
            < 0 or not whole when ``discrete``, ``times`` containing inf with a
            learning rate above the GD stability limit.

    Warns:
        RuntimeWarning: discrete GD above its stability limit
            :math:`\eta < 2N_y/\hat\lambda_{\max}` (values returned as computed).
    """
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    t = _check_times(times, bool(discrete))
    spec = spec_of(net)
    v, y = check_train_sets(spec, v_train, y_train, None)["train"]
    if y.shape[1] != 1:
        raise ValueError(
            "linearized_dynamics needs a single-output network and y_train of shape "
            f"(n,) or (n, 1); got y_train of shape {tuple(y.shape)}"
        )
    theta = np.asarray(
        empirical_ntk(net, params, v, implementation=implementation), np.float64
    )
    theta = 0.5 * (theta + theta.T)
    dtype = compute_dtype(spec.resolve(v) if spec is not None else None, params)
    with x64_scope(dtype):
        f0 = np.asarray(net.apply(params, jnp.asarray(v, dtype)), np.float64)
    if f0.shape != (v.shape[0], 1):
        raise ValueError(
            f"linearized_dynamics needs a single-output network; net.apply gives shape "
            f"{f0.shape} on {v.shape[0]} points"
        )
    lam, U = np.linalg.eigh(theta)
    n_y = y.shape[0]
    check_gd_stability(
        float(lam[-1]), float(learning_rate), n_y, t, discrete=bool(discrete)
    )
    rate = float(learning_rate) / n_y
    r0 = f0 - np.asarray(y, np.float64)
    decay = np.stack([gd_decay(lam, ti, rate, discrete=bool(discrete)) for ti in t])
    residual = np.einsum("ij,tj,jc->tic", U, decay, U.T @ r0)
    return LinearizedDynamics(theta, lam, U, t, r0, residual, rate, bool(discrete))
