r"""Choosing the input mapping from the NTK spectrum, without training a network.

The paper's task (Tancik et al. 2020): train on the pixels ``[::2, ::2]`` of an image,
test on the held-out pixels ``[1::2, 1::2]``. For the infinitely wide network trained by
gradient flow for a time :math:`t` (the conventions of :func:`ntkspec.gd_dynamics`:
loss :math:`\frac{1}{2N_y}\sum(f - y)^2`, :math:`N_y = n c`, mean output 0 at
:math:`t = 0`), the held-out prediction is

.. math::

    f_*(t) = \Theta_{*X}\,\varphi_t(\Theta + \delta I)\,y, \qquad
    \varphi_t(\lambda) = \frac{1 - e^{-\eta t \lambda / N_y}}{\lambda}
    \quad (\varphi_\infty(\lambda) = 1/\lambda,\ \text{0 at}\ \lambda = 0),

and :func:`predicted_error` returns its mean squared error against the held-out pixels,
averaged over pixels and channels.

**Periodic mappings: a Fourier multiplier, no solve.** On the train grid
:math:`x_k = k/n` (per axis, :math:`n` = half the image side) a periodic kernel
(integer frequencies) gives a multilevel circulant train Gram with first column
:math:`c_0(o) = k(o/n)`, diagonalised by the DFT: :math:`\lambda(\omega) =
\mathrm{DFT}[c_0](\omega)`. The held-out pixels sit at :math:`x_k + \delta`,
:math:`\delta = 1/(2n)` per axis (pixel :math:`2k + 1` of the :math:`2n` grid), so
:math:`(\Theta_{*X})_{ij} = k((i - j)/n + \delta)` is again circulant on the train grid,
with first column :math:`c_\delta(o) = k(o/n + \delta)` (not even: its DFT is complex).
Both share the DFT eigenbasis, hence

.. math::

    \hat f_*(\omega) = \hat c_\delta(\omega)\,
        \varphi_t(\lambda(\omega) + \delta_{\rm ridge})\,\hat y(\omega),

one FFT of each column and of the targets, a product and an inverse FFT: exact (to
round-off), O(N log N), and written in JAX so that ``jax.grad`` differentiates it in the
mapping's amplitudes ``a`` (and in the image). The offsets are reduced modulo the period
in integer arithmetic (:math:`b\,(2o + 1) \bmod 2n`), so periodicity is exact.

**Other mappings: the structured path.** Gaussian and positional mappings (non-integer
frequencies) give a multilevel Toeplitz Gram: :func:`predicted_error` calls
:func:`ntkspec.gd_dynamics` (its Krylov path: one Lanczos run per call, PCG at
:math:`t = \infty`) and keeps the held-out pixels. That path runs on the host (NumPy
Lanczos with data-dependent stopping) and is **not differentiable**: a traced mapping
raises ``TypeError`` instead of returning a wrong gradient.

**Scale suggestion.** :func:`suggest_scale` evaluates :func:`predicted_error` over a
family of mappings (Gaussian :math:`B = \sigma Z`, one fixed draw :math:`Z`; or the
official code's positional encoding with scale S) and returns the scale of the highest
predicted held-out PSNR, at a *finite* budget: at :math:`t = \infty` the kernel
interpolates and the curve is flat over a wide range of :math:`\sigma`. See
:data:`DEFAULT_TIME` for how the default budget was calibrated.

**FreSh, the baseline.** :func:`fresh_spectrum` and :func:`fresh_distance` implement
the criterion of Kania et al. (2025): the Wasserstein distance between the normalised
DFT-magnitude spectrum vectors of a target and of an untrained network's output, at a
spectrum size (32, 64 or 128); the scale whose networks minimise it is FreSh's choice.
They need network outputs, not the NTK; the validation studies call them.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Fig. 4-6, Table 1).
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Kania, Mihajlovic, Prokudin, Tabor & Spurek, "FreSh: Frequency Shifting for
    Accelerated Neural Representation Learning", ICLR 2025, arXiv:2410.05050.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ._deprecation import renamed_arguments
from ._numerics import x64_scope
from ._validation import (
    check_kernel,
    check_positive_int,
    check_real,
    is_traced,
)
from .dynamics import gd_dynamics
from .grid import Grid
from .kernels import ReluMLP, check_arch, check_profile_range, profile
from .linalg.funm import gd_filter
from .mappings import FourierMapping, gaussian, positional
from .operators import offset_sin2, structure

__all__ = [
    "DEFAULT_TIME",
    "DEFAULT_SCALES",
    "ScaleSuggestion",
    "family_mapping",
    "fresh_distance",
    "fresh_spectrum",
    "predicted_error",
    "predicted_psnr",
    "suggest_scale",
]

#: Default training budget of :func:`suggest_scale`, in :func:`ntkspec.gd_dynamics`'
#: time units at learning rate 1 (gradient flow on :math:`\frac{1}{2N_y}\sum(f-y)^2`).
#: Calibrated on astronaut (512^2, the paper's task) against the committed GPU sweep
#: of trained networks (``figures/validation/gpu_h100/table1_networks.json``: 4 x 256,
#: Adam, 2000 steps, best sigma 10 at 27.64 dB, sigma 4 2.6 dB lower): the NTK curve
#: of ``ReluMLP(4)`` at t = 1e4 puts its maximum at sigma = 10 (``analysis/
#: fig_scale_calibration.py``, ``figures/design/calibration.json``).
DEFAULT_TIME = 1.0e4

#: Default scale grids: the GPU sweep's sigmas, and the official code's positional S.
DEFAULT_SCALES = {
    "gaussian": (1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0, 32.0, 64.0),
    "positional": (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),
}


# --------------------------------------------------------------------------------------
# Argument checks.
# --------------------------------------------------------------------------------------


def _check_image(image, dim: int):
    """The signal as an array of shape grid + (c,) (JAX arrays kept for tracing)."""
    if isinstance(image, list | tuple):
        image = np.asarray(image)
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        raise TypeError(f"image must be an array; got {type(image).__name__}")
    want = "(H, W) or (H, W, c)" if dim == 2 else "(L,) or (L, c)"
    if image.ndim not in (dim, dim + 1):
        raise ValueError(
            f"image must have shape {want} for a {dim}-D mapping; got {image.shape}"
        )
    if not (
        np.issubdtype(image.dtype, np.floating)
        or np.issubdtype(image.dtype, np.integer)
    ):
        raise TypeError(f"image must hold real numbers; got dtype {image.dtype}")
    sides = image.shape[:dim]
    if any(s < 4 or s % 2 for s in sides) or (image.ndim > dim and image.shape[-1] < 1):
        raise ValueError(
            f"image sides must be even and >= 4 (train [::2], held out [1::2]); got "
            f"shape {image.shape}"
        )
    if not is_traced(image):
        arr = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("image must be finite; it contains NaN or inf")
        if dim == 2 and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError(
                f"image values must lie in [0, 1]; got [{arr.min()}, {arr.max()}]"
            )
        image = arr
    if image.ndim == dim:
        image = image[..., None]
    return image


def _check_time(times) -> float:
    check_real(times, "times", low=0.0, allow_inf=True)
    return float(times)


def _check_fourier(mapping) -> None:
    if not isinstance(mapping, FourierMapping):
        raise TypeError(
            "mapping must be a ntkspec FourierMapping (a stationary kernel, e.g. "
            f"ntkspec.mappings.gaussian(...)); got {type(mapping).__name__}"
        )
    if mapping.dim not in (1, 2):
        raise ValueError(
            f"mapping must take 1-D (signals) or 2-D (images) points; got "
            f"mapping.dim = {mapping.dim}"
        )
    if is_traced(mapping.B):
        raise TypeError(
            "mapping.B must be concrete (it decides the path: integer frequencies "
            "take the exact FFT path); differentiate in mapping.a with B fixed, e.g. "
            "jax.grad(lambda a: predicted_error(arch, FourierMapping(B, a), image))"
        )


# --------------------------------------------------------------------------------------
# The periodic path: a Fourier multiplier.
# --------------------------------------------------------------------------------------


def _fft_error(arch, mapping, image, time, lr, ridge, kernel, dtype):
    """Held-out MSE of the periodic path (JAX, differentiable in a and the image)."""
    dim = mapping.dim
    shape = tuple(s // 2 for s in image.shape[:dim])
    c = image.shape[-1]
    m = mapping.num_freqs
    axes = tuple(range(dim))
    with x64_scope(dtype):
        a2 = jnp.asarray(mapping.a, dtype=dtype) ** 2
        img = jnp.asarray(image, dtype=dtype)
        train = img[(slice(None, None, 2),) * dim]
        held = img[(slice(1, None, 2),) * dim]
        q = jnp.sum(a2) / (2 * m)
        k0, kd = (
            profile(
                arch,
                offset_sin2(mapping, shape, shift=shift, dtype=dtype),
                input_var=q,
                input_dim=2 * m,
                kernel=kernel,
                dtype=dtype,
            )
            for shift in (False, True)
        )
        lam = jnp.fft.fftn(k0).real + ridge
        rate = lr / (math.prod(shape) * c)
        mult = jnp.fft.fftn(kd) * gd_filter(lam, time, rate)
        pred = jnp.fft.ifftn(
            mult[..., None] * jnp.fft.fftn(train, axes=axes), axes=axes
        ).real
        return jnp.mean((pred - held) ** 2)


# --------------------------------------------------------------------------------------
# The structured path (non-periodic mappings).
# --------------------------------------------------------------------------------------


def _structured_error(arch, mapping, image, time, lr, ridge, kernel, rtol):
    dim = mapping.dim
    shape = image.shape[:dim]
    c = image.shape[-1]
    train_shape = tuple(s // 2 for s in shape)
    y_train = image[(slice(None, None, 2),) * dim].reshape(-1, c)
    _, f_test = gd_dynamics(
        arch,
        mapping,
        Grid(train_shape),
        y_train,
        Grid(tuple(shape)),
        [time],
        lr,
        kernel=kernel,
        ridge=ridge,
        rtol=rtol,
    )
    pred = f_test[0].reshape(tuple(shape) + (c,))[(slice(1, None, 2),) * dim]
    held = image[(slice(1, None, 2),) * dim]
    return float(np.mean((pred - held) ** 2))


# --------------------------------------------------------------------------------------
# Public entry points.
# --------------------------------------------------------------------------------------


@renamed_arguments(time="times")
def predicted_error(
    arch: ReluMLP,
    mapping: FourierMapping,
    image,
    *,
    times: float = np.inf,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    kernel: str = "ntk",
    rtol: float = 1e-10,
):
    r"""Held-out MSE of the infinitely wide network trained on ``image[::2, ::2]``.

    .. math::

        E(t) = \frac{1}{|H| c}\sum_{x \in H}\sum_{k=1}^{c}
            \big(f_*(t)(x)_k - y(x)_k\big)^2,\qquad
        f_*(t) = \Theta_{*X}\varphi_t(\Theta + \delta I)\,y_X,

    with :math:`X` = the pixels ``[::2, ::2]``, :math:`H` = the held-out pixels
    ``[1::2, 1::2]``, coordinates :math:`k/\text{side}` in :math:`[0, 1)`, and
    :math:`\varphi_t` of the module docstring: exactly the number that
    :func:`ntkspec.gd_dynamics` (gradient flow, outputs 0 at t = 0, ``times=[times]``)
    plus the held-out mask gives.

    Paths: a periodic mapping (integer ``B``) is the exact Fourier multiplier of the
    module docstring (no solve, no Krylov); any other Fourier mapping is
    :func:`ntkspec.gd_dynamics`' Krylov path (tolerance ``rtol``).

    Differentiation: on the periodic path the result is a JAX expression of
    ``mapping.a`` (tested against finite differences; ``image`` and ``arch``'s
    ``W_std``/``b_std`` are traced the same way but untested), so ``jax.grad`` works
    (keep ``B`` concrete: it selects the path). It is computed in
    float64 unless the traced arguments are float32 (x64 off in the caller: the
    gradient is then a float32 computation, accurate to about 1e-4 relative); for
    float64 gradients call it inside ``with jax.enable_x64(True):``. The Krylov path
    is a host-side Lanczos/PCG loop and is **not** differentiable: a traced argument
    there raises ``TypeError``.

    Args:
        arch: the architecture.
        mapping: a :class:`~ntkspec.FourierMapping` of dimension 2 (image) or 1
            (signal).
        image: shape (H, W) or (H, W, c) with values in [0, 1] for a 2-D mapping; a
            signal of shape (L,) or (L, c) (any finite values; c signals at once) for
            a 1-D one; every side even and >= 4.
        times: one training time t >= 0 (``np.inf``: kernel regression); the name
            of :func:`ntkspec.gd_dynamics`.
        learning_rate: :math:`\eta > 0` (:func:`ntkspec.gd_dynamics`' convention).
        ridge: absolute ridge :math:`\delta \ge 0` added to the train Gram.
        kernel: "ntk" (all layers trained) or "nngp" (last layer only).
        rtol: Krylov path only: tolerance passed to :func:`ntkspec.gd_dynamics`.

    Returns:
        The mean squared error: a Python float, or a 0-d float64 JAX array when called
        under a JAX transformation (``jax.grad``) on the periodic path.

    Raises:
        TypeError: not a ReluMLP / FourierMapping; a traced ``B``; a traced argument on
            the Krylov path.
        ValueError: bad image shape or values, negative time / ridge, non-positive
            learning rate, a mapping of dimension other than 1 or 2.

    Warns:
        ConvergenceWarning: Krylov path, tolerance missed (from ``gd_dynamics``).

    Deprecated: ``time=`` (now ``times=``) still works, with a ``DeprecationWarning``,
    until the next minor release.

    Example:
        >>> import numpy as np, ntkspec
        >>> img = np.linspace(0, 1, 64).reshape(8, 8)
        >>> e = ntkspec.design.predicted_error(ntkspec.ReluMLP(3),
        ...     ntkspec.mappings.basic(2), img, times=100.0)
        >>> bool(0 < e < np.mean((img - img.mean()) ** 2))
        True
    """
    check_arch(arch)
    _check_fourier(mapping)
    check_kernel(kernel)
    image = _check_image(image, mapping.dim)
    time = _check_time(times)
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    check_real(ridge, "ridge", low=0.0)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    leaves = [mapping.a, image, learning_rate, ridge, *jax.tree_util.tree_leaves(arch)]
    traced = any(is_traced(x) for x in leaves)
    train_grid = Grid(tuple(n // 2 for n in image.shape[: mapping.dim]))
    if structure(mapping, train_grid) == "circulant":
        # Under a transformation the caller's dtype rules: float32 tracers (x64 off in
        # the caller) are differentiated in float32, since the backward pass runs
        # outside any scoped x64 context.
        dtype = np.float64
        if any(is_traced(x) and x.dtype == np.float32 for x in leaves):
            dtype = np.float32
        m = mapping.num_freqs  # an overflowing kernel is refused before any work
        check_profile_range(
            arch, mapping.norm_sq / (2 * m), 2 * m, kernel, dtype, size=image.size
        )
        out = _fft_error(
            arch, mapping, image, time, learning_rate, ridge, kernel, dtype
        )
        return out if traced else float(out)
    if traced:
        raise TypeError(
            "predicted_error is not differentiable for non-periodic mappings: their "
            "structured (Krylov) path runs a host-side Lanczos/PCG loop. Use a "
            "periodic mapping (integer B: the exact FFT path), or finite differences"
        )
    return _structured_error(
        arch, mapping, image, time, float(learning_rate), float(ridge), kernel, rtol
    )


def predicted_psnr(arch: ReluMLP, mapping: FourierMapping, image, **kwargs) -> float:
    r"""Held-out PSNR :math:`-10\log_{10} E` of :func:`predicted_error` (same args)."""
    mse = predicted_error(arch, mapping, image, **kwargs)
    if is_traced(mse):
        return -10.0 * jnp.log10(mse)
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


@dataclasses.dataclass(frozen=True)
class ScaleSuggestion:
    """What :func:`suggest_scale` chose, and the curve it chose from.

    Attributes:
        scale: the chosen scale (Gaussian sigma or positional S), one of ``scales``.
        scales: the scales tried, shape (K,), ascending.
        predicted_psnr: predicted held-out PSNR (dB) at each scale, shape (K,).
        time: the training budget used (:func:`ntkspec.gd_dynamics` units).
        family: "gaussian" or "positional".
        num_freqs: frequencies of the mapping (Gaussian: m; positional: per axis m/2).
        learning_rate: the learning rate of the budget.
        seed: the Gaussian draw (unused for positional).
    """

    scale: float
    scales: np.ndarray
    predicted_psnr: np.ndarray
    time: float
    family: str
    num_freqs: int
    learning_rate: float
    seed: int

    def to_dict(self) -> dict:
        """A strict-JSON dict ("scale", "scales", "predicted_psnr", ...).

        A PSNR that is not finite (a predicted error of exactly 0, as for a constant
        image, gives +inf) is written as null, and the key ``"predicted_psnr_null"``
        says why: strict JSON has no Infinity.
        """
        psnr = [float(p) if math.isfinite(p) else None for p in self.predicted_psnr]
        out = dict(
            scale=float(self.scale),
            scales=[float(s) for s in self.scales],
            predicted_psnr=psnr,
            time=float(self.time),
            family=self.family,
            num_freqs=int(self.num_freqs),
            learning_rate=float(self.learning_rate),
            seed=int(self.seed),
        )
        if None in psnr:
            out["predicted_psnr_null"] = (
                "null marks a predicted held-out error of exactly 0 (an infinite "
                "PSNR, e.g. a constant image predicted exactly); strict JSON has no "
                "Infinity"
            )
        return out


def family_mapping(
    family: str, scale: float, *, num_freqs: int = 256, seed: int = 0, dim: int = 2
) -> FourierMapping:
    r"""The mapping of ``family`` at ``scale``, as :func:`suggest_scale` builds it.

    * "gaussian": :math:`B = \sigma Z`, :math:`Z_{ij} \sim N(0, 1)` drawn once from
      ``seed`` (:func:`ntkspec.mappings.gaussian`), ``num_freqs`` rows, a = 1;
    * "positional": the official code's encoding
      (:func:`ntkspec.mappings.positional` with ``scale=S``), ``num_freqs // dim``
      frequencies per axis (the paper's 128 per axis for 256).
    """
    if family == "gaussian":
        return gaussian(seed, dim, num_freqs, scale)
    if family == "positional":
        return positional(dim, max(num_freqs // dim, 1), scale=scale)
    raise ValueError(f"family must be 'gaussian' or 'positional'; got {family!r}")


@renamed_arguments(time="times")
def suggest_scale(
    arch: ReluMLP,
    image,
    *,
    family: str = "gaussian",
    num_freqs: int = 256,
    times: float | None = None,
    scales=None,
    learning_rate: float = 1.0,
    ridge: float = 0.0,
    kernel: str = "ntk",
    seed: int = 0,
    rtol: float = 1e-6,
) -> ScaleSuggestion:
    r"""The mapping scale of the best predicted held-out PSNR after a finite budget.

    .. math:: \hat s = \arg\max_{s \in \text{scales}}
        -10\log_{10} E_s(t), \qquad E_s = \texttt{predicted\_error}(\text{arch},
        \gamma_s, \text{image}, \text{time}=t)

    over :func:`family_mapping` (one fixed Gaussian draw, so the curve is smooth in
    :math:`\sigma`). No network is trained.

    **Default budget** (``times=None``): :data:`DEFAULT_TIME` = 1e4 at learning rate 1,
    scaled as ``DEFAULT_TIME / learning_rate`` so that :math:`\eta t` is fixed. At
    :math:`t = \infty` the prediction is kernel interpolation and its PSNR is flat in
    :math:`\sigma` over 4-20 on astronaut, so no scale stands out; trained networks
    (2000 Adam steps) are far from interpolation. The value was calibrated on astronaut
    (the paper's 512^2 task) against the committed GPU sweep of trained 4 x 256
    networks (``figures/validation/gpu_h100/table1_networks.json``, best sigma 10):
    t = 1e4 is the budget at which the NTK curve peaks at the networks' sigma (t = 1e2
    peaks at 2, 1e3 at 4); see ``figures/design/calibration.json`` for the curves at
    every budget tried. It was *not* fitted on the validation images of the
    ``scale_suggestion`` study. It does not transfer to small images trained briefly:
    on 128^2 crops of 12 images with 2000 Adam steps (CPU, ``figures/validation/
    suggest_cpu128``), this default loses to a fixed sigma chosen on the other images
    by 0.56 dB (95 % interval over images [0.21, 0.91]), while the budget chosen on
    the other images, t = 178, comes within 0.11 dB [-0.02, 0.23]; see the guide page
    "Choosing the mapping scale". Pass ``times`` when your images or budget differ.

    Args:
        arch: the architecture (the NTK of which is used), e.g. ``ReluMLP(4)``.
        image: values in [0, 1], (H, W) or (H, W, c), even sides >= 4.
        family: "gaussian" (scale = sigma) or "positional" (scale = S of
            :math:`2^{\mathrm{linspace}(0, S, m)} - 1`).
        num_freqs: frequencies (Gaussian m; positional: split over the axes).
        times: the budget, one time t (None: the default above).
        scales: the scales to try (>= 2 positive values; default
            :data:`DEFAULT_SCALES` of the family).
        learning_rate: :math:`\eta` of the budget.
        ridge: absolute ridge.
        kernel: "ntk" or "nngp".
        seed: the Gaussian draw.
        rtol: tolerance of the Krylov path (1e-6 is ample for a PSNR curve).

    Returns:
        A :class:`ScaleSuggestion`.

    Raises:
        ValueError: bad argument values (named), before any kernel is computed.
        TypeError: bad argument types (named), before any kernel is computed.

    Deprecated: ``time=`` (now ``times=``) still works, with a ``DeprecationWarning``,
    until the next minor release.
    """
    check_arch(arch)
    if family not in DEFAULT_SCALES:
        raise ValueError(f"family must be 'gaussian' or 'positional'; got {family!r}")
    num_freqs = check_positive_int(num_freqs, "num_freqs", minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int; got {seed!r}")
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    lr = float(learning_rate)
    t = DEFAULT_TIME / lr if times is None else _check_time(times)
    if scales is None:
        scales = DEFAULT_SCALES[family]
    sc = np.asarray(scales, dtype=np.float64).ravel()
    if sc.size < 2 or not np.all(np.isfinite(sc)) or np.any(sc <= 0):
        raise ValueError(
            f"scales must hold at least 2 finite positive values; got {list(sc)}"
        )
    sc = np.unique(sc)
    image = _check_image(image, 2)
    check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    psnr = np.empty(sc.size)
    for i, s in enumerate(sc):
        mapping = family_mapping(family, float(s), num_freqs=num_freqs, seed=int(seed))
        psnr[i] = predicted_psnr(
            arch,
            mapping,
            image,
            times=t,
            learning_rate=lr,
            ridge=ridge,
            kernel=kernel,
            rtol=rtol,
        )
    best = int(np.argmax(psnr))
    return ScaleSuggestion(
        float(sc[best]), sc, psnr, t, family, num_freqs, lr, int(seed)
    )


# --------------------------------------------------------------------------------------
# FreSh: the spectrum-matching baseline.
# --------------------------------------------------------------------------------------


def fresh_spectrum(y, *, dim: int | None = None) -> np.ndarray:
    r"""FreSh's spectrum vector of a signal: binned DFT magnitudes, constant dropped.

    The vector FreSh (Kania et al. 2025) compares between a target and an untrained
    network's output. :math:`|\mathrm{DFT}|` of each channel, summed over channels:

    .. math:: M(k) = \sum_c |\hat y_c(k)|, \qquad
        \hat y_c(k) = \sum_x y_c(x)\, e^{-2\pi i\, k \cdot x / N}

    (unnormalised, NumPy's ``fft`` convention; the scale cancels in
    :func:`fresh_distance`). **2-D** (a square N x N image; ``dim=2``): the DFT is
    summed along its anti-diagonals, "the same frequency in different directions".
    With unshifted indices :math:`(k_1, k_2) \in \{0, \dots, N-1\}^2`, one member of
    each conjugate pair :math:`\{k, -k\}` is kept (:math:`k_1 + k_2 < N`, without the
    axis entries :math:`k_1 = 0 < N/2 < k_2` and :math:`k_2 = 0 < N/2 < k_1`; and on
    :math:`k_1 + k_2 = N` the entries with :math:`1 \le k_1 \le N/2`), and bin
    :math:`r = k_1 + k_2` holds their sum:

    .. math:: u_r = \sum_{k\ \text{kept},\ k_1 + k_2 = r} M(k), \qquad
        r = 1, \dots, 2N - 2

    (bins above N are 0). This is the binning of the authors' published code, which
    defines the criterion whose spectrum sizes 32/64/128 the paper reports, so it is
    the one used here rather than a radial one: bin r holds exactly the frequencies
    :math:`(k_1, k_2) \ge 0` of L1 radius r for r < N/2, but a mixed-sign frequency
    :math:`(a, -b)` (unshifted :math:`(a, N - b)`) lands in bin :math:`N + a - b`, near
    N, not at :math:`a + b`. A radial (:math:`|k_1| + |k_2|`) binning would move those
    frequencies and change which :math:`\sigma` the criterion picks at spectrum sizes
    near N. **1-D** (``dim=1``, a signal (L,) or (L, c)): the bins
    :math:`k = 1, \dots, \lfloor L/2 \rfloor` of :math:`M` (the 2-D rule on one row;
    the authors' code handles images and volumes only).

    Host NumPy (not traced, not differentiable): a baseline, not a numeric path of the
    library.

    Args:
        y: the signal, real: (L,) or (L, c) for ``dim=1``; (N, N) or (N, N, c) for
            ``dim=2``. FreSh resizes a non-square image to a square first; that is
            left to the caller (a non-square image is refused).
        dim: 1 or 2; None: 1 for a 1-D array, 2 otherwise (an (L, c) signal needs
            ``dim=1``).

    Returns:
        The spectrum vector u, float64, shape (floor(L/2),) or (2N - 2,).

    Raises:
        TypeError: ``y`` is not a real numeric array, or ``dim`` not an int.
        ValueError: a shape that does not fit ``dim``, fewer than 2 samples per axis,
            or non-finite values.

    References:
        Kania, Mihajlovic, Prokudin, Tabor & Spurek, "FreSh: Frequency Shifting for
        Accelerated Neural Representation Learning", ICLR 2025, arXiv:2410.05050.

    Examples:
        >>> import numpy as np
        >>> from ntkspec.design import fresh_spectrum
        >>> y = np.cos(2 * np.pi * 3 * np.arange(16) / 16)  # frequency 3
        >>> fresh_spectrum(y).round(6).tolist()
        [0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    if dim is not None and (isinstance(dim, bool) or dim not in (1, 2)):
        raise (TypeError if not isinstance(dim, int) else ValueError)(
            f"dim must be 1, 2 or None; got {dim!r}"
        )
    arr = np.asarray(y)
    if not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ) or np.issubdtype(arr.dtype, np.bool_):
        raise TypeError(f"y must be a real numeric array; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if dim is None:
        dim = 1 if arr.ndim == 1 else 2
    if dim == 1:
        if arr.ndim not in (1, 2) or arr.shape[0] < 2:
            raise ValueError(
                "y must have shape (L,) or (L, c) with L >= 2 for dim=1; got "
                f"{arr.shape}"
            )
    elif arr.ndim not in (2, 3) or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(
            "y must be a square image (N, N) or (N, N, c) with N >= 2 for dim=2 "
            f"(resize it first, as FreSh does; or dim=1 for an (L, c) signal); got "
            f"shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("y must be finite; got NaN or inf values")
    if dim == 1:
        y1 = arr.reshape(arr.shape[0], -1)
        mag = np.abs(np.fft.fft(y1, axis=0)).sum(axis=1)
        return mag[1 : y1.shape[0] // 2 + 1]
    if arr.ndim == 2:
        arr = arr[..., None]
    n = arr.shape[0]
    mag = np.abs(np.fft.fft2(arr, axes=(0, 1))).sum(axis=-1)
    k1, k2 = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    half = n // 2
    keep = (k1 + k2 < n) & ~((k2 == 0) & (k1 > half)) & ~((k1 == 0) & (k2 > half))
    keep |= (k1 + k2 == n) & (k1 >= 1) & (k1 <= half)
    return np.bincount((k1 + k2)[keep], weights=mag[keep], minlength=2 * n - 1)[1:]


def fresh_distance(
    target, output, *, size: int | None = None, dim: int | None = None
) -> float:
    r"""FreSh's criterion: Wasserstein distance between normalised spectrum vectors.

    With :math:`u, v` the first ``size`` bins of :func:`fresh_spectrum` of ``target``
    and of ``output`` (the network's output at initialisation), normalised to unit sum,
    and the bin index as support (unit spacing), the 1-D Wasserstein-1 distance is the
    L1 distance between their cumulative sums:

    .. math:: W_1(u, v) = \sum_{r=1}^{\text{size}-1}\Big|\sum_{q \le r}
        (\tilde u_q - \tilde v_q)\Big|, \qquad \tilde u = u / \textstyle\sum_q u_q

    (computed by :func:`scipy.stats.wasserstein_distance` with the vectors as weights,
    as in the authors' code). FreSh picks the embedding scale whose untrained networks
    (averaged over initialisations) minimise it, at spectrum size 32, 64 or 128. The
    distance is infinite when either truncated vector is all zero (a constant signal
    has no spectrum to match), never NaN.

    Args:
        target: the signal, a shape :func:`fresh_spectrum` accepts.
        output: the network's output on the same points, the same shape.
        size: spectrum size, the leading bins kept (FreSh: 32, 64 or 128), an int
            >= 1; None: all bins.
        dim: as in :func:`fresh_spectrum`.

    Returns:
        The distance in bins, a float >= 0 (or inf).

    Raises:
        TypeError: ``size`` not an int, or as in :func:`fresh_spectrum`.
        ValueError: ``target`` and ``output`` of different shapes, ``size`` < 1, or
            as in :func:`fresh_spectrum`.

    References:
        Kania, Mihajlovic, Prokudin, Tabor & Spurek, "FreSh: Frequency Shifting for
        Accelerated Neural Representation Learning", ICLR 2025, arXiv:2410.05050.

    Examples:
        >>> import numpy as np
        >>> from ntkspec.design import fresh_distance
        >>> wave = lambda k: np.cos(2 * np.pi * k * np.arange(16) / 16)
        >>> round(fresh_distance(wave(2), wave(5)), 12)  # point masses 3 bins apart
        3.0
    """
    if np.shape(target) != np.shape(output):
        raise ValueError(
            f"target and output must have the same shape; got {np.shape(target)} "
            f"and {np.shape(output)}"
        )
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"size must be an int or None; got {size!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1; got {size}")
    from scipy.stats import wasserstein_distance

    u = fresh_spectrum(target, dim=dim)[:size]
    v = fresh_spectrum(output, dim=dim)[:size]
    if not (u.sum() > 0 and v.sum() > 0):
        return math.inf
    idx = np.arange(u.size, dtype=np.float64)
    return float(wasserstein_distance(idx, idx, u_weights=u, v_weights=v))
