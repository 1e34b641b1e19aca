r"""Training on fresh samples: gradient flow on the population loss, and its clock.

A network that draws fresh uniform points of the box :math:`[0, 1)^d` at every step
never sees a fixed training set. In the infinite-width limit (Jacot et al. 2018; Lee
et al. 2019) its mean output follows gradient flow on the *population* loss
:math:`\mathcal L(f) = \frac12\,\mathbb E_{x \sim U}\,\lVert f(x) - y(x)\rVert^2`,

.. math::

    \partial_t f = -\eta\, T_K (f - y), \qquad
    (T_K g)(x) = \int_{[0,1)^d} \Theta(x, x')\, g(x')\, dx',

with :math:`T_K` the integral operator of the NTK :math:`\Theta` over the sampling
distribution (the uniform measure of the box), so that
:math:`f(t) = y - e^{-\eta t T_K}(y - f(0))` (Bach 2017; Bordelon, Canatar &
Pehlevan 2020). :func:`population_flow` discretises :math:`T_K` by the grid's
rectangle rule, :math:`T_K \approx K / N` with :math:`K` the Gram on the :math:`N`
nodes of a :class:`~ntkspec.Grid`: that is :func:`ntkspec.gd_dynamics` with the grid
as its training and test set (one implementation of the time filter,
:mod:`ntkspec.linalg.funm`), with the rate rescaled so that time is counted per
*point* (``gd_dynamics`` divides by ``y.size`` = N c; here each of the c channels
evolves on its own by the equation above).

**Two clocks.** :func:`sgd_flow_time` places stochastic gradient descent on this time
axis: on fresh batches of B points and the loss :math:`\frac{1}{2B}\sum_b (f(x_b) -
y(x_b))^2`, the linearised step is :math:`\Delta f = -\eta\,\frac1B\sum_b
\Theta(\cdot, x_b)(f(x_b) - y(x_b))`, whose expectation over the batch is exactly
:math:`-\eta\,T_K (f - y)`. The mean iterate therefore follows gradient descent on
:math:`T_K` (``population_flow(..., discrete=True)`` at ``times`` = steps), and the
flow at :math:`t = k\eta` while :math:`\eta\lambda_{\max}(T_K) \ll 1`. The batch size
does not enter the drift, only the fluctuation about it: each step adds a zero-mean
term of covariance :math:`\frac{\eta^2}{B}\Sigma(f)`, with :math:`\Sigma` the
covariance over one point of :math:`\Theta(\cdot, x)(f(x) - y(x))`, so the variance
accumulated per unit of flow time is :math:`\frac{\eta}{B}\Sigma` (the SGD
"temperature" :math:`\eta/B`; Mandt, Hoffman & Blei 2017; Smith & Le 2018).

**Sigmoid-BCE, linearised** (:func:`linearized_bce`). For logits z and 0/1 targets
the per-point gradient of the binary cross-entropy of :math:`\sigma(z)` is
:math:`\sigma(z) - y = \frac14 z + \frac12 - y + O(z^3)
= \frac14\bigl(z - 4(y - \tfrac12)\bigr) + O(z^3)`: at small logits it is the MSE
gradient towards targets :math:`\tilde y = 4(y - \frac12) = \pm 2` at a quarter of
the rate. As the flow is linear in the targets, the linearised logits are
:math:`z(t) = 4\, f_c(\eta t/4)`, with :math:`f_c` the flow (rate 1) on the centred
occupancy :math:`y - \frac12`: thresholding the logit at 0 (probability 0.5) is
thresholding the centred flow at 0, and the probability residual
:math:`\sigma(z) - y \approx f_c - (y - \frac12)` is the centred flow's residual.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Bach, "On the Equivalence between Kernel Quadrature Rules and Random Feature
    Expansions", JMLR 18(21), 2017, arXiv:1502.06800 (the integral operator).
    Bordelon, Canatar & Pehlevan, "Spectrum Dependent Learning Curves in Kernel
    Regression and Wide Neural Networks", ICML 2020, arXiv:2002.02561.
    Mandt, Hoffman & Blei, "Stochastic Gradient Descent as Approximate Bayesian
    Inference", JMLR 18(134), 2017, arXiv:1704.04289.
    Smith & Le, "A Bayesian Perspective on Generalization and Stochastic Gradient
    Descent", ICLR 2018, arXiv:1710.06451.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in
    Low Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (occupancy task).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._numerics import dense_cap_bytes
from ._validation import check_positive_int, check_real, check_targets
from .dynamics import gd_dynamics
from .grid import Grid
from .kernels import ReluMLP
from .operators import structure

__all__ = ["FlowTime", "population_flow", "linearized_bce", "sgd_flow_time"]

#: Loss conventions of :func:`sgd_flow_time`: the factor on steps x learning rate.
_LOSS_FACTORS = {"half_mean": 1.0, "mean": 2.0}


def _check_rate(learning_rate) -> float:
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    return float(learning_rate)


def population_flow(
    arch: ReluMLP,
    mapping,
    grid: Grid,
    y,
    times,
    learning_rate: float = 1.0,
    *,
    kernel: str = "ntk",
    f_0=None,
    discrete: bool = False,
    max_bytes: float | None = None,
    return_info: bool = False,
    rtol: float = 1e-10,
    max_krylov_dim: int = 1000,
    mesh=None,
):
    r"""The infinitely wide network trained on fresh uniform samples, on a grid.

    Gradient flow on the population loss (module docstring),

    .. math::

        f(t) = y - e^{-\eta t K/N}\,(y - f(0)), \qquad
        \text{discrete: } f(k) = y - (I - \eta K/N)^k\,(y - f(0)),

    per channel, with :math:`K` the Gram of ``mapping``'s kernel on the N nodes of
    ``grid`` (:math:`T_K \approx K/N`, the rectangle rule of the uniform measure on
    :math:`[0, 1)^d`). Computed by :func:`ntkspec.gd_dynamics` with ``grid`` as train
    and test set and learning rate :math:`\eta c` (it divides by ``y.size`` = N c).

    **Time.** ``times`` are flow times in units where ``learning_rate`` is
    :math:`\eta`: mode :math:`\lambda` of :math:`K/N` decays as
    :math:`e^{-\eta\lambda t}`. SGD with step size :math:`\eta_{\rm SGD}` on the loss
    :math:`\frac1{2B}\sum_b (f - y)^2` sits at ``times`` = steps with
    ``learning_rate`` = :math:`\eta_{\rm SGD}` (or at flow time steps x
    :math:`\eta_{\rm SGD}` with ``learning_rate`` = 1; :func:`sgd_flow_time`).

    **Boundary.** The box is not periodic and is not treated as periodic: the Gram
    is that of the grid's own nodes, so a node near a face sees kernel mass only
    inside the box, as the fresh samples do. For periodic mappings (integer
    frequencies) that Gram is exactly circulant and the path is exact FFT filtering;
    for other stationary Fourier mappings it is exactly multilevel Toeplitz, applied by
    FFT on the :math:`2^d`-times embedding (no wrap-around), with the flow by Lanczos
    (``rtol``, ``max_krylov_dim``); for non-stationary mappings ("none": raw
    coordinates) it is dense, one ``eigh``, refused above ``max_bytes``. The only
    approximation of :math:`T_K` is the quadrature (error of the order of the grid
    spacing times the kernel's slope).

    **Memory.** On the Krylov path the Lanczos basis holds m vectors of N values per
    channel, :math:`8\,m N c` bytes. ``max_bytes`` caps it too: the dimension is at
    most ``min(max_krylov_dim, max_bytes // (8 N c))``, and a cap that leaves fewer
    than 2 vectors is refused. A basis too small for ``rtol`` is reported
    (:class:`~ntkspec.solvers.ConvergenceWarning` and ``info.converged``), never
    silently used; large times need more steps,
    :math:`O(\sqrt{\eta t \lambda_{\max}(K/N)})`.

    Args:
        arch: the architecture.
        mapping: input mapping (applied inside).
        grid: a :class:`~ntkspec.Grid` on :math:`[0, 1)^d` (the quadrature nodes and
            where the prediction is returned).
        y: targets on the grid's nodes (C order), shape (N,) or (N, c).
        times: scalar or (T,) flow times >= 0 (``np.inf`` allowed); step counts if
            ``discrete``.
        learning_rate: :math:`\eta > 0`.
        kernel: "ntk" (every layer trained) or "nngp" (only the readout).
        f_0: outputs at t = 0 on the grid, shape of ``y`` (default 0: the mean over
            initialisations).
        discrete: gradient descent on :math:`T_K` (the mean iterate of SGD) instead of
            the flow; stable iff :math:`\eta\lambda_{\max}(K/N) < 2`.
        max_bytes: memory cap for the dense path's matrices and for the Krylov
            path's Lanczos basis (default: 4 GiB or the environment's, as
            :func:`ntkspec.gd_dynamics`).
        return_info: also return :func:`ntkspec.gd_dynamics`'s
            :class:`~ntkspec.dynamics.DynamicsInfo` (second element).
        rtol: Krylov path: relative tolerance of the Lanczos error estimate.
        max_krylov_dim: Krylov path: the largest Lanczos dimension (lowered to fit
            ``max_bytes``).
        mesh: None or a 1-D device mesh (see :func:`ntkspec.gd_dynamics`).

    Returns:
        f of shape (T, N) or (T, N, c) (float64 NumPy); with ``return_info``,
        ``(f, info)``.

    Raises:
        TypeError: ``grid`` is not a Grid.
        ValueError: bad shapes, times or rate; a dense request, or a Krylov basis of
            two vectors, over the memory cap.

    Example:
        >>> import numpy as np, ntkspec
        >>> from ntkspec.population import population_flow
        >>> g = ntkspec.Grid((8,))
        >>> y = np.cos(2 * np.pi * g.points()[:, 0])
        >>> f = population_flow(ntkspec.ReluMLP(3), ntkspec.mappings.basic(1), g, y,
        ...     [0.0, np.inf])
        >>> f.shape, bool(np.allclose(f[-1], y))
        ((2, 8), True)
    """
    if not isinstance(grid, Grid):
        raise TypeError(
            f"grid must be an ntkspec.Grid (the quadrature nodes of the box); got "
            f"{type(grid).__name__}"
        )
    Y = check_targets(y, grid.size, "y", "grid")
    eta = _check_rate(learning_rate)
    c = 1 if Y.ndim == 1 else Y.shape[1]
    max_krylov_dim = check_positive_int(max_krylov_dim, "max_krylov_dim", minimum=2)
    if structure(mapping, grid, grid) == "toeplitz":
        fit = int(dense_cap_bytes(max_bytes) // (8.0 * grid.size * c))
        if fit < 2:
            raise ValueError(
                f"max_bytes: a Lanczos basis of 2 vectors of {grid.size} x {c} float64 "
                f"values needs {16.0 * grid.size * c:.3g} bytes, over the cap "
                f"{dense_cap_bytes(max_bytes):.3g}; raise max_bytes or pass fewer "
                "channels at once"
            )
        max_krylov_dim = min(max_krylov_dim, fit)
    out = gd_dynamics(
        arch, mapping, grid, Y, grid, times, eta * c, kernel=kernel,
        f_train_0=f_0, f_test_0=f_0, discrete=discrete, max_bytes=max_bytes,
        return_info=True, rtol=rtol, max_krylov_dim=max_krylov_dim, mesh=mesh,
    )  # fmt: skip
    f, info = out[0], out[2]
    return (f, info) if return_info else f


def linearized_bce(y, learning_rate: float = 1.0) -> tuple[np.ndarray, float]:
    r"""MSE targets and rate of sigmoid-BCE training linearised at small logits.

    .. math::

        \sigma(z) - y = \tfrac14\bigl(z - 4(y - \tfrac12)\bigr) + O(z^3)
        \quad\Longrightarrow\quad \tilde y = 4y - 2, \qquad \tilde\eta = \eta/4:

    gradient flow (or descent) on :math:`\frac12 (z - \tilde y)^2` at rate
    :math:`\tilde\eta` has, to first order in z, the BCE run's gradient. 0/1 occupancy
    becomes :math:`\pm 2`; the decision threshold is z = 0.

    Args:
        y: targets in [0, 1] (occupancy or probabilities), any shape.
        learning_rate: the BCE run's :math:`\eta > 0`.

    Returns:
        ``(4 y - 2, learning_rate / 4)``: float64 targets of ``y``'s shape and the
        rate.

    Raises:
        ValueError: targets outside [0, 1] or not finite; a non-positive rate.

    Example:
        >>> t, r = linearized_bce([0.0, 1.0, 0.5], 0.1)
        >>> t.tolist(), r
        ([-2.0, 2.0, 0.0], 0.025)
    """
    eta = _check_rate(learning_rate)
    t = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t > 1):
        raise ValueError("y must hold finite targets in [0, 1]")
    return 4.0 * t - 2.0, eta / 4.0


@dataclasses.dataclass(frozen=True)
class FlowTime:
    r"""Where an SGD run on fresh batches sits on the population flow's time axis.

    Attributes:
        time: the flow time :math:`t` (in :func:`population_flow`'s units with
            ``learning_rate`` = 1).
        noise_scale: :math:`\eta/B`, the covariance of the iterate's fluctuation about
            the flow accumulated per unit of flow time, in units of the one-point
            covariance :math:`\Sigma` (module docstring).
    """

    time: float
    noise_scale: float


def sgd_flow_time(
    steps: int, learning_rate: float, batch_size: int, *, loss: str = "half_mean"
) -> FlowTime:
    r"""The population-flow time of k SGD steps on fresh batches (module docstring).

    With ``loss="half_mean"``, :math:`\frac{1}{2B}\sum_b (f(x_b) - y_b)^2`, the expected
    step is :math:`-\eta\,T_K(f - y)`, so :math:`t = k\eta`; with ``loss="mean"``,
    :math:`\frac1B\sum_b (f(x_b) - y_b)^2`, the gradient doubles, :math:`t = 2k\eta`.
    The batch size B leaves the time unchanged and sets ``noise_scale`` =
    :math:`\eta_{\rm eff}/B` (:math:`\eta_{\rm eff}` = :math:`\eta` or :math:`2\eta`).
    For sigmoid-BCE runs first pass :math:`\eta` through :func:`linearized_bce`
    (rate :math:`\eta/4`, targets :math:`\pm 2`). The flow describes the mean iterate
    while :math:`\eta_{\rm eff}\lambda_{\max}(T_K) \ll 1` (else use
    ``population_flow(..., discrete=True)`` at ``times`` = k).

    Args:
        steps: k >= 0.
        learning_rate: :math:`\eta > 0`.
        batch_size: B >= 1 fresh points per step.
        loss: "half_mean" or "mean".

    Returns:
        A :class:`FlowTime`.

    Raises:
        TypeError: non-integer steps or batch size.
        ValueError: an argument out of range, or an unknown ``loss``.

    Example:
        >>> sgd_flow_time(2000, 0.05, 4096)
        FlowTime(time=100.0, noise_scale=1.220703125e-05)
    """
    k = check_positive_int(steps, "steps", minimum=0)
    eta = _check_rate(learning_rate)
    b = check_positive_int(batch_size, "batch_size")
    if loss not in _LOSS_FACTORS:
        raise ValueError(f"loss must be one of {tuple(_LOSS_FACTORS)}; got {loss!r}")
    eff = _LOSS_FACTORS[loss] * eta
    return FlowTime(time=k * eff, noise_scale=eff / b)
