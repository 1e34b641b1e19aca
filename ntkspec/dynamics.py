r"""Training dynamics of the infinitely wide network: gradient flow and descent.

In the NTK regime (Jacot et al. 2018; Lee et al. 2019) the network's outputs evolve
linearly with the fixed NTK :math:`\Theta`. The loss normalisation is exactly that of
neural-tangents' ``predict.gradient_descent_mse``:

.. math::

    \mathcal L(f) = \frac{1}{2\,N_y}\sum_{i, j} (f_j(x_i) - y_{ij})^2,
    \qquad N_y = \texttt{y.size} = n \cdot c,

so gradient flow reads :math:`\dot f = -\frac{\eta}{N_y}\Theta (f - y)` on the training
points: time is scaled by the number of target *values*, not of points (3n for RGB).
With :math:`\Theta = V \Lambda V^\top` (of the train Gram plus ``ridge``):

.. math::

    f_{\rm train}(t) = y + V e^{-\eta t \Lambda / N_y} V^\top (f_{\rm train}(0) - y),

    f_{\rm test}(t) = f_{\rm test}(0) + \Theta_{*X} V
        \frac{1 - e^{-\eta t\Lambda/N_y}}{\Lambda} V^\top (y - f_{\rm train}(0)).

Discrete gradient descent (``discrete=True``, t = number of steps) replaces
:math:`e^{-\eta t\lambda/N_y}` by :math:`(1 - \eta\lambda/N_y)^t` (stable iff
:math:`\eta < 2 N_y/\lambda_{\max}`). At :math:`t = \infty` the test prediction is
:func:`ntkspec.kernel_regression` with the same ridge.

**Other loss conventions.** The official notebooks' loss :math:`\frac12\sum (f - y)^2`
(no mean) has :math:`\dot f = -\eta_{\rm sum}\Theta(f - y)`: pass
``learning_rate = eta_sum * y.size``. A plain mean :math:`\frac1{N_y}\sum (f-y)^2` (no
1/2) doubles the rate: ``learning_rate = 2 * eta_mean``.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington, "Wide Neural
    Networks of Any Depth Evolve as Linear Models Under Gradient Descent", NeurIPS 2019,
    arXiv:1902.06720.
    Arora, Du, Hu, Li & Wang, "Fine-Grained Analysis of Optimization and Generalization
    for Overparameterized Two-Layer Neural Networks", ICML 2019, arXiv:1901.08584.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._numerics import check_dense_request, check_gd_stability, check_work_request
from ._validation import check_real, check_symmetric
from .kernels import ReluMLP
from .regression import (
    _check_arch_mapping,
    _check_kernel,
    _check_x,
    _check_y,
    _dense_solve,
    _features,
    _gram,
    _offsets,
    grid_ratio,
)

__all__ = [
    "ModeResiduals",
    "gradient_flow",
    "gd_dynamics",
    "eigenmode_residuals",
]


def _check_times(times, discrete: bool) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or t.size < 1:
        raise ValueError(f"times must be a scalar or a 1-D array; got shape {t.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError("times must be >= 0 (np.inf allowed); got negative or NaN")
    if discrete:
        finite = t[np.isfinite(t)]
        if np.any(finite != np.round(finite)):
            raise ValueError("with discrete=True, times must be whole numbers of steps")
    return t


def _check_lr(learning_rate) -> float:
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    return float(learning_rate)


def _decay(lam: np.ndarray, t: np.ndarray, rate: float, discrete: bool) -> np.ndarray:
    """Per-mode decay of the train residual, shape (T, n): exp or (1 - rate lam)^t."""
    lam = np.maximum(lam, 0.0)
    out = np.empty((t.size, lam.size))
    for i, ti in enumerate(t):
        if math.isinf(ti):
            out[i] = np.where(lam > 0, 0.0, 1.0)
        elif discrete:
            out[i] = (1.0 - rate * lam) ** ti
        else:
            out[i] = np.exp(-rate * ti * lam)
    return out


def _learned_over_lambda(lam, t, rate, discrete):
    """(1 - decay) / lam, with its finite limit rate * t at lam = 0."""
    lam = np.maximum(lam, 0.0)
    out = np.empty((t.size, lam.size))
    pos = lam > 0
    safe = np.where(pos, lam, 1.0)
    for i, ti in enumerate(t):
        if math.isinf(ti):
            out[i] = np.where(pos, 1.0 / safe, 0.0)
        elif discrete:
            out[i] = np.where(pos, (1.0 - (1.0 - rate * lam) ** ti) / safe, rate * ti)
        else:
            out[i] = np.where(pos, -np.expm1(-rate * ti * lam) / safe, rate * ti)
    return out


def gradient_flow(
    k_train_train,
    y_train,
    k_test_train,
    times,
    learning_rate: float,
    *,
    ridge: float = 0.0,
    f_train_0=None,
    f_test_0=None,
    discrete: bool = False,
    check_finite: bool = True,
):
    r"""Linearised dynamics on precomputed kernels (neural-tangents' conventions).

    The formulas of the module docstring with :math:`\Theta` = ``k_train_train`` +
    ``ridge`` I, evaluated by one ``eigh`` of the (n, n) train kernel; ``t = inf``
    entries use a Cholesky solve instead (like ``predict.gradient_descent_mse``).

    Args:
        k_train_train: shape (n, n), symmetric PSD.
        y_train: shape (n,) or (n, c).
        k_test_train: shape (n_test, n), or None (then ``f_test`` is None).
        times: scalar or shape (T,), >= 0 (``np.inf`` allowed); steps if ``discrete``.
        learning_rate: :math:`\eta > 0`.
        ridge: absolute ridge added to the train kernel's diagonal.
        f_train_0: initial train outputs (shape of ``y_train``); default 0.
        f_test_0: initial test outputs, shape (n_test,) or (n_test, c); default 0.
        discrete: gradient descent steps instead of gradient flow.
        check_finite: refuse kernels holding NaN or inf (as scipy's ``check_finite``);
            False skips that scan.

    Returns:
        ``(f_train, f_test)``: shapes (T,) + y_train.shape and (T, n_test[, c]).

    Raises:
        ValueError: ``k_train_train`` not square, not finite, or not symmetric within
            1e-5 max|K|; bad shapes, times or rates; ``discrete`` GD at
            ``times = inf`` with a learning rate not below 2 N_y / lambda_max.

    Warns:
        RuntimeWarning: discrete GD above the stability limit 2 N_y / lambda_max at
            finite times (the values are returned as computed).
    """
    K = check_symmetric(k_train_train, "k_train_train", check_finite=check_finite)
    n = K.shape[0]
    y = _check_y(y_train, n)
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    c = Y.shape[1]
    t = _check_times(times, discrete)
    lr = _check_lr(learning_rate)
    check_real(ridge, "ridge", low=0.0)
    Kt = None
    if k_test_train is not None:
        Kt = np.asarray(k_test_train, dtype=np.float64)
        if Kt.ndim != 2 or Kt.shape[1] != n:
            raise ValueError(
                f"k_test_train must have shape (n_test, {n}); got {Kt.shape}"
            )
        if check_finite and not np.all(np.isfinite(Kt)):
            raise ValueError("k_test_train must be finite; it contains NaN or inf")
    F0 = _initial(f_train_0, (n, c), squeeze, "f_train_0")
    Ft0 = None
    if Kt is not None:
        Ft0 = _initial(f_test_0, (Kt.shape[0], c), squeeze, "f_test_0")
    A = K + float(ridge) * np.eye(n)
    rate = lr / Y.size
    lam, V = np.linalg.eigh(A)
    check_gd_stability(float(lam[-1]), lr, Y.size, t, discrete=discrete)
    proj = V.T @ (Y - F0)  # (n, c)
    decay = _decay(lam, t, rate, discrete)  # (T, n)
    f_train = Y[None] - np.einsum("ij,tj,jc->tic", V, decay, proj)
    f_test = None
    if Kt is not None:
        KV = Kt @ V
        learned = _learned_over_lambda(lam, t, rate, discrete)
        f_test = Ft0[None] + np.einsum("ij,tj,jc->tic", KV, learned, proj)
        inf = np.isinf(t)
        if np.any(inf):
            alpha, *_ = _dense_solve(A, Y - F0, "k_train_train + ridge I")
            f_test[inf] = Ft0 + Kt @ alpha
    if np.any(np.isinf(t)):
        f_train[np.isinf(t)] = Y
    if squeeze:
        f_train = f_train[..., 0]
        f_test = None if f_test is None else f_test[..., 0]
    return f_train, f_test


def _initial(f0, shape, squeeze, name):
    if f0 is None:
        return np.zeros(shape)
    f0 = np.asarray(f0, dtype=np.float64)
    if squeeze and f0.shape == shape[:1]:
        f0 = f0[:, None]
    if f0.shape != shape:
        want = shape[:1] if squeeze else shape
        raise ValueError(f"{name} must have shape {want}; got {f0.shape}")
    if not np.all(np.isfinite(f0)):
        raise ValueError(f"{name} must be finite")
    return f0


def gd_dynamics(
    arch: ReluMLP,
    mapping,
    x_train,
    y_train,
    x_test,
    times,
    learning_rate: float,
    *,
    kernel: str = "ntk",
    ridge: float = 0.0,
    f_train_0=None,
    f_test_0=None,
    discrete: bool = False,
    max_bytes: float | None = None,
):
    r"""Mean outputs of the infinitely wide network trained by GD on the MSE.

    Loss :math:`\frac{1}{2 N_y}\sum (f - y)^2` with :math:`N_y` = ``y.size``, exactly as
    neural-tangents' ``predict.gradient_descent_mse``: :math:`\dot f =
    -\frac{\eta}{N_y}\Theta(f - y)`; formulas in the module docstring. For the official
    notebooks' :math:`\frac12\sum (f-y)^2` with step size ``lr``, pass
    ``learning_rate = lr * y.size`` (and ``times`` = step counts).

    Args:
        arch: the architecture.
        mapping: input mapping (applied inside).
        x_train: raw coordinates (n, d) or a Grid.
        y_train: shape (n,) or (n, c).
        x_test: raw coordinates (n_test, d) or a Grid (with a Grid ``x_train``, test
            shape = r x train shape per axis).
        times: scalar or (T,) times >= 0 (``np.inf`` allowed); step counts if
            ``discrete``.
        learning_rate: :math:`\eta > 0`.
        kernel: "ntk" (gradient descent) or "nngp" (only the last layer trained).
        ridge: absolute ridge added to the train kernel (neural-tangents ``diag_reg``
            times the mean diagonal).
        f_train_0: outputs on the train points at t = 0 (default 0: the mean over
            initialisations); shape of ``y_train``.
        f_test_0: outputs on the test points at t = 0 (default 0).
        discrete: discrete GD steps instead of gradient flow.
        max_bytes: memory cap for dense arrays.

    Returns:
        ``(f_train, f_test)`` of shapes (T, n, c) and (T, n_test, c) ((T, n) and
        (T, n_test) for a 1-D ``y_train``), float64 NumPy arrays.

    Paths: dense (one ``eigh`` of the train Gram) for point arrays and for Grids with a
    non-periodic mapping (within the memory cap); for two Grids and a periodic mapping
    (integer frequencies) the train Gram is circulant and everything is exact FFT
    filtering, at any size.

    Raises:
        ValueError: bad shapes, non-finite y, negative ridge, times or learning rate,
            incompatible grids, or a dense request over the memory cap.

    Example:
        >>> import numpy as np, ntkspec
        >>> x = np.linspace(0, 1, 8, endpoint=False)[:, None]
        >>> y = np.cos(2 * np.pi * x[:, 0])
        >>> f_tr, f_te = ntkspec.gd_dynamics(ntkspec.ReluMLP(3),
        ...     ntkspec.mappings.basic(1), x, y, x, [0.0, np.inf], 1.0)
        >>> f_tr.shape, bool(np.allclose(f_te[-1], y))
        ((2, 8), True)
    """
    _check_arch_mapping(arch, mapping)
    kernel = _check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    lr = _check_lr(learning_rate)
    t = _check_times(times, discrete)
    tr_pts, tr_grid = _check_x(x_train, "x_train", mapping)
    te_pts, te_grid = _check_x(x_test, "x_test", mapping)
    n = tr_grid.size if tr_grid is not None else tr_pts.shape[0]
    y = _check_y(y_train, n)
    if tr_grid is not None and te_grid is not None:
        grid_ratio(tr_grid, te_grid)
        if bool(getattr(mapping, "is_periodic", False)):
            return _periodic_grid_dynamics(
                arch,
                mapping,
                tr_grid,
                y,
                te_grid,
                t,
                lr,
                kernel,
                float(ridge),
                f_train_0,
                f_test_0,
                discrete,
            )
    x_tr = tr_grid.points() if tr_grid is not None else tr_pts
    x_te = te_grid.points() if te_grid is not None else te_pts
    for shape, what in (
        ((n, n), "train Gram"),
        ((x_te.shape[0], n), "test-train kernel"),
    ):
        check_dense_request(
            shape,
            8,
            max_bytes,
            what=f"The dense {what}",
            alternative="Periodic mappings on Grids use the exact FFT path.",
        )
    f_tr = _features(mapping, x_tr)
    f_te = _features(mapping, x_te)
    K = _gram(arch, f_tr, None, kernel, max_bytes)
    Kt = _gram(arch, f_te, f_tr, kernel, max_bytes)
    return gradient_flow(
        K,
        y,
        Kt,
        t,
        lr,
        ridge=float(ridge),
        f_train_0=f_train_0,
        f_test_0=f_test_0,
        discrete=discrete,
    )


def _periodic_grid_dynamics(
    arch, mapping, g_tr, y, g_te, t, lr, kernel, ridge, f_train_0, f_test_0, discrete
):
    ratio = grid_ratio(g_tr, g_te)
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    c = Y.shape[1]
    shape, fine = g_tr.shape, g_te.shape
    check_work_request(
        8.0 * t.size * (2 * g_tr.size + (g_tr.size + g_te.size) * c),
        what=f"gd_dynamics at {t.size} times on {g_te!r}",
        alternative="Ask for fewer times or use smaller grids.",
    )
    axes = tuple(range(len(shape)))
    F0 = _initial(f_train_0, (g_tr.size, c), squeeze, "f_train_0")
    Ft0 = _initial(f_test_0, (g_te.size, c), squeeze, "f_test_0")
    k_fine = _offsets(arch, mapping, g_te, kernel, embed=False)
    k_train = k_fine[tuple(slice(None, None, r) for r in ratio)]
    lam = np.real(np.fft.fftn(k_train)) + ridge  # circulant eigenvalues by frequency
    check_gd_stability(float(np.max(lam)), lr, Y.size, t, discrete=discrete)
    kf_hat = np.fft.fftn(k_fine)
    rate = lr / Y.size
    R0 = np.fft.fftn((Y - F0).reshape(shape + (c,)), axes=axes)  # residual spectrum
    decay = _decay(lam.ravel(), t, rate, discrete).reshape((t.size,) + shape)
    learned = _learned_over_lambda(lam.ravel(), t, rate, discrete).reshape(
        (t.size,) + shape
    )
    f_train = np.empty((t.size, g_tr.size, c))
    f_test = np.empty((t.size, g_te.size, c))
    sl = tuple(slice(None, None, r) for r in ratio)
    for i in range(t.size):
        resid = np.real(np.fft.ifftn(decay[i][..., None] * R0, axes=axes))
        f_train[i] = Y - resid.reshape(-1, c)
        alpha = np.real(np.fft.ifftn(learned[i][..., None] * R0, axes=axes))
        up = np.zeros(fine + (c,))
        up[sl] = alpha
        pred = np.real(
            np.fft.ifftn(np.fft.fftn(up, axes=axes) * kf_hat[..., None], axes=axes)
        )
        f_test[i] = Ft0 + pred.reshape(-1, c)
    f_train[np.isinf(t)] = Y  # as the dense path (and neural-tangents) at t = inf
    if squeeze:
        return f_train[..., 0], f_test[..., 0]
    return f_train, f_test


@dataclasses.dataclass(frozen=True)
class ModeResiduals:
    r"""The train residual :math:`f(t) - y` in the eigenbasis of the train Gram.

    Attributes:
        eigenvalues: :math:`\lambda_i` of the train Gram plus ridge, ascending, (n,).
        eigenvectors: orthonormal columns, (n, n).
        initial: projections :math:`V^\top (f(0) - y)`, shape (n, c).
        decay: :math:`e^{-\eta\lambda_i t/N_y}` (or :math:`(1-\eta\lambda_i/N_y)^t`),
            shape (T, n).
        residual: projections at each time, ``decay[:, :, None] * initial``, (T, n, c).
        rate: :math:`\eta/N_y`.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    initial: np.ndarray
    decay: np.ndarray
    residual: np.ndarray
    rate: float


def eigenmode_residuals(
    arch: ReluMLP,
    mapping,
    x_train,
    y_train,
    times,
    learning_rate: float,
    *,
    kernel: str = "ntk",
    ridge: float = 0.0,
    f_train_0=None,
    discrete: bool = False,
) -> ModeResiduals:
    r"""Per-eigenmode residual of y under gradient flow (or GD).

    Mode i of the residual decays as :math:`e^{-\eta\lambda_i t / N_y}` with
    :math:`N_y` = ``y.size`` (neural-tangents' normalisation, see the module docstring):
    modes with small eigenvalues (high frequencies for Fourier-feature NTKs) are learned
    last (Arora et al. 2019; Tancik et al. 2020, Fig. 3).

    Args:
        arch: the architecture.
        mapping: input mapping.
        x_train: raw coordinates (n, d) or a Grid (dense path).
        y_train: shape (n,) or (n, c).
        times: scalar or (T,) times >= 0; step counts if ``discrete``.
        learning_rate: :math:`\eta > 0`.
        kernel: "ntk" or "nngp".
        ridge: absolute ridge added to the train kernel.
        f_train_0: train outputs at t = 0 (default 0).
        discrete: discrete GD steps instead of gradient flow.

    Returns:
        A :class:`ModeResiduals`.
    """
    _check_arch_mapping(arch, mapping)
    kernel = _check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    lr = _check_lr(learning_rate)
    t = _check_times(times, discrete)
    pts, grid = _check_x(x_train, "x_train", mapping)
    x = grid.points() if grid is not None else pts
    y = _check_y(y_train, x.shape[0])
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    F0 = _initial(f_train_0, Y.shape, squeeze, "f_train_0")
    K = _gram(arch, _features(mapping, x), None, kernel, None)
    lam, V = np.linalg.eigh(K + float(ridge) * np.eye(K.shape[0]))
    check_gd_stability(float(lam[-1]), lr, Y.size, t, discrete=discrete)
    rate = lr / Y.size
    initial = V.T @ (F0 - Y)
    decay = _decay(lam, t, rate, discrete)
    return ModeResiduals(
        lam, V, initial, decay, decay[:, :, None] * initial[None], rate
    )
