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
import warnings

import jax.numpy as jnp
import numpy as np

from ._deprecation import renamed_arguments
from ._numerics import check_dense_request, check_work_request, x64_scope
from ._validation import (
    check_inputs,
    check_kernel,
    check_positive_int,
    check_real,
    check_symmetric,
    check_targets,
)
from .grid import Grid
from .kernels import ReluMLP, check_arch
from .linalg.cg import cg
from .linalg.dense import eigh_mrrr, psd_solve
from .linalg.funm import (
    check_gd_stability,
    gd_decay,
    gd_filter,
    lanczos_matfuns,
    largest_eigenvalue,
)
from .linalg.precond import t_chan_preconditioner
from .linalg.solution import ConvergenceWarning
from .mappings import check_mapping
from .operators import (
    Eigendecomposition,
    Shifted,
    dense_gram,
    grid_ratio,
    kernel_operator,
    structure,
)
from .sharding import check_mesh, shard_operator
from .spectra import spectrum

__all__ = [
    "ModeResiduals",
    "gradient_flow",
    "gd_dynamics",
    "eigenmode_residuals",
    "DynamicsInfo",
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
    """Per-mode decay of the train residual, shape (T, n): :func:`gd_decay` per time."""
    lam = np.asarray(lam, np.float64)
    return np.stack([gd_decay(lam, ti, rate, discrete=discrete) for ti in t])


def _learned_over_lambda(lam, t, rate, discrete):
    """(1 - decay) / lam per time, shape (T, n): :func:`gd_filter` per time."""
    lam = np.asarray(lam, np.float64)
    return np.stack([gd_filter(lam, ti, rate, discrete=discrete) for ti in t])


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
    ``ridge`` I, evaluated by one eigendecomposition of the (n, n) train kernel
    (LAPACK's MRRR driver, :func:`ntkspec.linalg.dense.eigh_mrrr`); ``t = inf``
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
    y = check_targets(y_train, n)
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
    lam, V = eigh_mrrr(A)
    check_gd_stability(float(lam[-1]), lr, Y.size, t, discrete=discrete)
    out = _evolve(
        Eigendecomposition(lam, V),
        None if Kt is None else Kt.__matmul__,
        Y,
        F0,
        Ft0,
        t,
        lr / Y.size,
        discrete,
        solve=lambda R: psd_solve(A, R, "k_train_train + ridge I").value,
        batch_bytes=_BATCH_BYTES,
    )
    return _squeeze(out, squeeze)


#: Dense path: bytes of one block of times in :func:`_evolve` (many times per matrix
#: product, few enough to add little memory).
_BATCH_BYTES = float(1 << 25)


def _squeeze(out, squeeze):
    if not squeeze:
        return out
    return tuple(None if f is None else f[..., 0] for f in out)


def _evolve(
    eig, test_train, Y, F0, Ft0, t, rate, discrete, solve=None, batch_bytes=0.0
):
    r"""Linear GD / gradient flow in an exact eigenbasis (the one implementation).

    With :math:`K + \delta I = U\Lambda U^*` (``eig``, ridge included) and
    :math:`R_0 = U^*(Y - F_0)`: :math:`f_{\rm train}(t) = Y - U\,d_t(\Lambda) R_0`
    and :math:`f_{\rm test}(t) = F_{*,0} + K_{*X} U \,\ell_t(\Lambda) R_0`, with the
    filters :func:`_decay` and :func:`_learned_over_lambda`. At :math:`t = \infty`
    the train outputs are Y, the test outputs use ``solve`` (a direct solve of
    :math:`(K + \delta I)\alpha = Y - F_0`) when given.

    ``test_train`` maps (N, c) coefficients to test outputs, or is None. Times go
    through ``eig.from_modes`` and ``test_train`` several at a time, as the columns of
    one (N, k c) block, with k the most that keeps a block of the larger of the
    train and test sizes within ``batch_bytes`` (at least one time): on dense
    matrices one matrix product instead of k matrix-vector products.
    """
    lam = np.asarray(eig.eigenvalues, dtype=np.float64)
    n, c = Y.shape
    nt = 0 if Ft0 is None else Ft0.shape[0]
    k = max(1, int(batch_bytes // (8 * c * max(n, nt))))

    def apply(op, filt, i0, i1):  # op(U filt[i] R0) for i0 <= i < i1, (i1-i0, N', c)
        if i1 - i0 == 1:  # as one time: R0 stays where it is (a device for FFTs)
            return np.asarray(op(filt[i0][..., None] * R0))[None]
        coef = np.moveaxis(np.asarray(filt[i0:i1][..., None] * R0[None]), 0, -2)
        out = np.asarray(op(coef.reshape(coef.shape[:-2] + (-1,))))
        return np.moveaxis(out.reshape(out.shape[0], i1 - i0, c), 1, 0)

    with x64_scope(np.float64):
        R0 = eig.to_modes(Y - F0)
        decay = _decay(lam.ravel(), t, rate, discrete).reshape((t.size,) + lam.shape)
        f_train = np.empty((t.size, n, c))
        for i in range(0, t.size, k):
            j = min(i + k, t.size)
            f_train[i:j] = Y - apply(eig.from_modes, decay, i, j)
        f_train[np.isinf(t)] = Y  # as neural-tangents at t = inf
        if test_train is None:
            return f_train, None
        learned = _learned_over_lambda(lam.ravel(), t, rate, discrete)
        learned = learned.reshape((t.size,) + lam.shape)
        if solve is not None:
            learned[np.isinf(t)] = 0.0  # replaced by the direct solve below
        f_test = np.empty((t.size, nt, c))
        for i in range(0, t.size, k):
            j = min(i + k, t.size)
            f_test[i:j] = Ft0 + apply(
                lambda v: test_train(eig.from_modes(v)), learned, i, j
            )
        if solve is not None and np.any(np.isinf(t)):
            f_test[np.isinf(t)] = Ft0 + np.asarray(test_train(solve(Y - F0)))
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
    return_info: bool = False,
    rtol: float = 1e-10,
    max_krylov_dim: int = 1000,
    max_iter: int = 2000,
    mesh=None,
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
        max_bytes: memory cap for dense kernel matrices only (the Krylov basis and
            FFT workspaces of the Krylov path are not counted).
        return_info: also return a :class:`DynamicsInfo` (third element).
        rtol: Krylov path: relative tolerance on the a-posteriori error estimate of
            every finite time and on the PCG residual at ``t = inf``.
        max_krylov_dim: Krylov path: largest Lanczos dimension per channel.
        max_iter: Krylov path: PCG iteration cap for ``t = inf``.
        mesh: None or a 1-D ``jax.sharding.Mesh``: the Krylov path's FFT matvecs
            and the test-train convolutions run over its devices, the dense path's
            Grams are computed row-sharded (:mod:`ntkspec.sharding`); the exact FFT
            path (periodic mappings) ignores it.

    Returns:
        ``(f_train, f_test)`` of shapes (T, n, c) and (T, n_test, c) ((T, n) and
        (T, n_test) for a 1-D ``y_train``), float64 NumPy arrays; with
        ``return_info``, ``(f_train, f_test, info)``.

    Paths (``info.method``):

    * ``"fft"``: two Grids and a periodic mapping (integer frequencies): the train Gram
      is circulant and everything is exact FFT filtering, at any size.
    * ``"krylov"``: two Grids and any other stationary (Fourier) mapping, e.g.
      Gaussian or positional: the train Gram is multilevel Toeplitz, applied by FFT
      (:class:`~ntkspec.operators.GridKernelOperator`), never formed, at any size and
      whatever ``max_bytes``. With :math:`r = y - f_{\rm train}(0)`,

      .. math::

          f_{\rm test}(t) = f_{\rm test}(0) + \Theta_{*X}\,\varphi_t(\Theta)\, r,
          \qquad \varphi_t(\lambda) = \frac{1 - e^{-\eta\lambda t/N_y}}{\lambda}
          \quad\Big(\text{discrete: } \frac{1 - (1 - \eta\lambda/N_y)^t}{\lambda}\Big),

      and :math:`f_{\rm train}(t) = y - e^{-\eta t\Theta/N_y} r`. Both functions of
      every finite time come from one Lanczos run per channel (the channels share
      each FFT matvec; :func:`ntkspec.solvers.lanczos_matfuns`) whose dimension is set
      by the a-posteriori error estimate (``rtol``); :math:`\Theta_{*X}` is one FFT
      convolution on the test grid; ``t = inf`` is the PCG solve
      (:func:`ntkspec.solvers.cg`, T. Chan preconditioner) of
      :func:`ntkspec.kernel_regression`. The Krylov dimension grows like
      :math:`\sqrt{\eta t\lambda_{\max}/N_y}`: large finite times cost more. On grids
      with at most ``max_krylov_dim`` train points the basis is fully
      reorthogonalised, so a Krylov space that fills the train space is detected as
      invariant (exact). Missing
      ``rtol`` warns (:class:`~ntkspec.solvers.ConvergenceWarning`) and returns the
      last iterate, with the estimate in ``info``.
    * ``"dense"``: point arrays, or Grids with a non-stationary mapping: one symmetric
      eigendecomposition of the train Gram (MRRR; within ``max_bytes``).

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
    t, lr, ridge, x_tr, x_te, y = _check_dynamics(
        arch, mapping, x_train, y_train, x_test, times, learning_rate, kernel, ridge,
        discrete,
    )  # fmt: skip
    mesh = check_mesh(mesh)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_krylov_dim = check_positive_int(max_krylov_dim, "max_krylov_dim", minimum=2)
    max_iter = check_positive_int(max_iter, "max_iter")
    kind = structure(mapping, x_tr, x_te)  # the one path choice (operators)
    if kind == "circulant":
        out = _fft_dynamics(
            arch, mapping, x_tr, y, x_te, t, lr, kernel, ridge, f_train_0, f_test_0,
            discrete, max_bytes,
        )  # fmt: skip
        info = DynamicsInfo("fft")
    elif kind == "toeplitz":
        *out, info = _krylov_dynamics(
            arch, mapping, x_tr, y, x_te, t, lr, kernel, ridge, f_train_0, f_test_0,
            discrete, rtol, max_krylov_dim, max_iter, mesh,
        )  # fmt: skip
    else:
        out = _dense_dynamics(
            arch, mapping, x_tr, y, x_te, t, lr, kernel, ridge, f_train_0, f_test_0,
            discrete, max_bytes, mesh,
        )  # fmt: skip
        info = DynamicsInfo("dense")
    out = tuple(out)
    return (*out, info) if return_info else out


def _krylov_functions(t: float, rate: float, discrete: bool):
    r"""(:math:`\varphi_t`, decay) as NumPy functions of Ritz values, finite at 0."""

    def phi(lam):
        return gd_filter(np.asarray(lam, np.float64), t, rate, discrete=discrete)

    def decay(lam):
        return gd_decay(np.asarray(lam, np.float64), t, rate, discrete=discrete)

    return phi, decay


def _krylov_dynamics(
    arch, mapping, g_tr, y, g_te, t, lr, kernel, ridge, f_train_0, f_test_0, discrete,
    rtol, max_dim, max_iter, mesh=None,
):  # fmt: skip
    r"""Toeplitz train Gram by FFT: Lanczos :math:`\varphi_t(K) r`, PCG at t = inf."""
    train, test_train = kernel_operator(arch, mapping, g_tr, g_te, kernel=kernel)
    train, test_train = shard_operator(train, mesh), shard_operator(test_train, mesh)
    system = Shifted(train, ridge)
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    c = Y.shape[1]
    F0 = _initial(f_train_0, (g_tr.size, c), squeeze, "f_train_0")
    Ft0 = _initial(f_test_0, (g_te.size, c), squeeze, "f_test_0")
    R = Y - F0
    rate = lr / Y.size
    if discrete:  # gradient descent: refuse or warn above the stability limit
        lam_max = largest_eigenvalue(system, g_tr.size)
        check_gd_stability(lam_max, lr, Y.size, t, discrete=True, stacklevel=4)
    finite = [i for i, ti in enumerate(t) if math.isfinite(ti) and ti > 0]
    f_train = np.empty((t.size, g_tr.size, c))
    f_test = np.empty((t.size, g_te.size, c))
    estimate, dim, its, cg_res, ok = 0.0, 0, 0, 0.0, True
    with x64_scope(np.float64):
        for i, ti in enumerate(t):
            if ti == 0:
                f_train[i], f_test[i] = F0, Ft0
        if finite:
            fs = []
            for i in finite:
                fs.extend(_krylov_functions(float(t[i]), rate, discrete))
            # Plain recurrence (O(c N) a step) when the Krylov space cannot fill
            # the train space; when it can (small grids), full reorthogonalisation
            # keeps the basis orthogonal, so that reaching an invariant space is
            # detected (then the result is exact) instead of reported as missed.
            sols = lanczos_matfuns(
                system, fs, R, rtol=rtol, max_dim=max_dim,
                reorthogonalize=g_tr.size <= max_dim,
            )  # fmt: skip
            for k, i in enumerate(finite):
                phi, dec = sols[2 * k], sols[2 * k + 1]
                f_train[i] = Y - np.asarray(dec.value)
                f_test[i] = Ft0 + np.asarray(test_train.matvec(phi.value))
            estimate = max(float(s.residual) for s in sols)
            dim = max(int(s.iterations) for s in sols)
            ok = all(bool(s.converged) for s in sols)
            if not ok:
                warnings.warn(
                    f"gd_dynamics (Krylov path): the Lanczos error estimate "
                    f"{estimate:.2e} missed rtol={rtol:.1e} at Krylov dimension "
                    f"{dim} (max_krylov_dim={max_dim}); returning that iterate. "
                    "Raise max_krylov_dim or loosen rtol (large times need more).",
                    ConvergenceWarning,
                    stacklevel=4,
                )
        if np.any(np.isinf(t)):
            sol = cg(
                system,
                jnp.asarray(R),
                preconditioner=t_chan_preconditioner(train, ridge),
                rtol=rtol,
                max_iter=max_iter,
            )
            st = sol.stats
            its, cg_res = st["iterations"], st["residual"]
            if not st["converged"]:
                ok = False
                warnings.warn(
                    f"gd_dynamics (t = inf): PCG did not reach rtol={rtol:.1e} in "
                    f"{its} iterations (reached {cg_res:.2e}); returning that iterate. "
                    "Raise max_iter, loosen rtol or add a ridge.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
            pred = Ft0 + np.asarray(test_train.matvec(sol.value))
            for i in np.flatnonzero(np.isinf(t)):
                f_train[i], f_test[i] = Y, pred
    info = DynamicsInfo("krylov", estimate, dim, ok, its, cg_res)
    return (*_squeeze((f_train, f_test), squeeze), info)


def _fft_dynamics(
    arch, mapping, g_tr, y, g_te, t, lr, kernel, ridge, f_train_0, f_test_0, discrete,
    max_bytes,
):  # fmt: skip
    """Circulant train Gram: the eigenbasis is the DFT, exact at any size."""
    del max_bytes  # nothing dense
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    check_work_request(
        8.0 * t.size * (2 * g_tr.size + (g_tr.size + g_te.size) * Y.shape[1]),
        what=f"gd_dynamics at {t.size} times on {g_te!r}",
        alternative="Ask for fewer times or use smaller grids.",
    )
    train, test_train = kernel_operator(arch, mapping, g_tr, g_te, kernel=kernel)
    F0 = _initial(f_train_0, (g_tr.size, Y.shape[1]), squeeze, "f_train_0")
    Ft0 = _initial(f_test_0, (g_te.size, Y.shape[1]), squeeze, "f_test_0")
    eig = train.eigendecomposition()
    eig = dataclasses.replace(eig, eigenvalues=np.asarray(eig.eigenvalues) + ridge)
    lam_max = float(np.max(eig.eigenvalues))
    check_gd_stability(lam_max, lr, Y.size, t, discrete=discrete)
    out = _evolve(eig, test_train.matvec, Y, F0, Ft0, t, lr / Y.size, discrete)
    return _squeeze(out, squeeze)


def _dense_dynamics(
    arch, mapping, x_tr, y, x_te, t, lr, kernel, ridge, f_train_0, f_test_0, discrete,
    max_bytes, mesh=None,
):  # fmt: skip
    """Dense Grams (points, or Grids with a non-periodic mapping): one ``eigh``."""
    x_tr = x_tr.points() if isinstance(x_tr, Grid) else x_tr
    x_te = x_te.points() if isinstance(x_te, Grid) else x_te
    n = x_tr.shape[0]
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
    kw = {"kernel": kernel, "max_bytes": max_bytes, "mesh": mesh}
    K = dense_gram(arch, mapping, x_tr, **kw).matrix
    Kt = dense_gram(arch, mapping, x_te, x_tr, **kw)
    return gradient_flow(
        np.asarray(K), y, np.asarray(Kt.matrix), t, lr, ridge=ridge,
        f_train_0=f_train_0, f_test_0=f_test_0, discrete=discrete,
    )  # fmt: skip


def _check_dynamics(
    arch,
    mapping,
    x_train,
    y_train,
    x_test,
    times,
    learning_rate,
    kernel,
    ridge,
    discrete,
):
    """Validated (times, rate, ridge, x_train, x_test, y) of :func:`gd_dynamics`.

    Points come back as float64 arrays, Grids as Grids (both Grids or neither).
    """
    check_arch(arch)
    check_mapping(mapping)
    check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    lr = _check_lr(learning_rate)
    t = _check_times(times, discrete)
    tr_pts, tr_grid = check_inputs(x_train, "x_train", mapping)
    te_pts, te_grid = check_inputs(x_test, "x_test", mapping)
    n = tr_grid.size if tr_grid is not None else tr_pts.shape[0]
    y = check_targets(y_train, n)
    if tr_grid is not None and te_grid is not None:
        grid_ratio(tr_grid, te_grid)
        return t, lr, float(ridge), tr_grid, te_grid, y
    x_tr = tr_grid.points() if tr_grid is not None else tr_pts
    x_te = te_grid.points() if te_grid is not None else te_pts
    return t, lr, float(ridge), x_tr, x_te, y


@dataclasses.dataclass(frozen=True)
class DynamicsInfo:
    """How :func:`gd_dynamics` computed (``return_info=True``).

    Attributes:
        method: "dense" (one ``eigh`` of the train Gram), "fft" (circulant, exact) or
            "krylov" (Toeplitz Gram by FFT; Lanczos, and PCG at ``t = inf``).
        error_estimate: Krylov path: the worst a-posteriori relative error estimate
            over the finite times (:func:`ntkspec.solvers.lanczos_matfuns`); else 0.
        krylov_dim: Krylov path: the Lanczos dimension reached (one run serves all
            finite times); else 0.
        converged: whether every estimate and the PCG residual met ``rtol``.
        cg_iterations: PCG iterations for ``t = inf`` (0 if none).
        cg_residual: PCG relative residual for ``t = inf`` (0 if none).
    """

    method: str
    error_estimate: float = 0.0
    krylov_dim: int = 0
    converged: bool = True
    cg_iterations: int = 0
    cg_residual: float = 0.0


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


@renamed_arguments(tol="rtol")
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
    k: int | None = None,
    rtol: float = 1e-10,
    max_bytes: float | None = None,
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
        k: None (default): every mode, one dense ``eigh`` of the train Gram. An int
            in [1, n]: only the k modes of largest eigenvalue, from
            :func:`ntkspec.spectrum` with ``vectors=True``: block Lanczos on the
            FFT matvec of a Grid with a non-periodic stationary mapping (no dense
            Gram, at any size the (n, k) eigenvectors fit), the exact Fourier modes
            on a periodic one, the top of a dense ``eigh`` on points.
        rtol: ``k`` path on a Grid: relative Ritz residual tolerance of the Lanczos
            eigenpairs (a ``RuntimeWarning`` reports a miss).
        max_bytes: memory cap for dense matrices and, on the ``k`` path, for the
            Lanczos basis and the (n, k) eigenvectors (default 4 GiB or
            ``NTKSPEC_MAX_DENSE_BYTES``).

    Returns:
        A :class:`ModeResiduals`; with ``k``, its arrays hold the top k modes only
        (``eigenvalues`` (k,) ascending, ``eigenvectors`` (n, k), ``initial`` (k, c),
        ``decay`` (T, k), ``residual`` (T, k, c)).

    With ``k=None`` the result holds the full orthonormal eigenbasis (n, n), a dense
    n x n object (34 GB at 256^2): on large grids ask for the top k modes, or use
    :func:`gd_dynamics` (Krylov path) for the whole residual in pixel space.
    Degenerate eigenvalues (the :math:`\pm m` Fourier pairs of periodic grids) have an
    arbitrary basis of their eigenspace, so per-mode projections there are defined
    only up to a rotation within it.

    Deprecated: ``tol=`` (now ``rtol=``) still works, with a ``DeprecationWarning``,
    until the next minor release.
    """
    t, lr, ridge, x, _, y = _check_dynamics(
        arch,
        mapping,
        x_train,
        y_train,
        x_train,
        times,
        learning_rate,
        kernel,
        ridge,
        discrete,
    )
    squeeze = y.ndim == 1
    Y = y[:, None] if squeeze else y
    F0 = _initial(f_train_0, Y.shape, squeeze, "f_train_0")
    if k is None:
        x = x.points() if isinstance(x, Grid) else x
        K = np.asarray(
            dense_gram(arch, mapping, x, kernel=kernel, max_bytes=max_bytes).matrix
        )
        lam, V = np.linalg.eigh(K + ridge * np.eye(K.shape[0]))
    else:
        check_real(rtol, "rtol", low=0.0, low_inclusive=False)
        top, vecs = spectrum(
            arch, mapping, x, k, kernel, True, rtol=rtol, max_bytes=max_bytes
        )
        lam = np.asarray(top, np.float64)[::-1] + ridge  # ascending, as eigh
        V = np.ascontiguousarray(np.asarray(vecs, np.float64)[:, ::-1])
    check_gd_stability(float(lam[-1]), lr, Y.size, t, discrete=discrete)
    rate = lr / Y.size
    initial = V.T @ (F0 - Y)
    decay = _decay(lam, t, rate, discrete)
    return ModeResiduals(
        lam, V, initial, decay, decay[:, :, None] * initial[None], rate
    )
