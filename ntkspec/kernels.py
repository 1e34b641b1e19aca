r"""Infinite-width NNGP and NTK of ReLU MLPs (arc-cosine recursion), float64 by default.

The architecture :class:`ReluMLP` with ``depth`` = L Dense layers is the network
``stax.serial(*[Dense(width, W_std, b_std, p), Relu()] * (L - 1), Dense(1, W_std,
b_std, p))``
of neural-tangents, and :func:`nngp` / :func:`ntk` reproduce neural-tangents 0.6.5's
``kernel_fn`` exactly (up to float64 round-off). Write :math:`\sigma_w` = ``W_std``,
:math:`\sigma_b` = ``b_std`` (None = no bias, counted as 0 in the NNGP), d = input
width.

Input layer: :math:`K^0 = x^\top x'/d`, :math:`v^0 = |x|^2/d`. Dense, both
parameterizations: :math:`K \leftarrow \sigma_w^2 K + \sigma_b^2` and the same for the
variances. NTK of a Dense layer, "ntk" parameterization:
:math:`\Theta \leftarrow \sigma_w^2 K_{\rm in} + \sigma_b^2 + \sigma_w^2\Theta`;
"standard" parameterization: :math:`\Theta \leftarrow n_{\rm in} K_{\rm in} +
\sigma_w^2\Theta + [\text{bias}]`, with :math:`n_{\rm in}` = d for the first layer and
``width`` after, and +1 exactly when a (trainable) bias is present (``b_std`` not None).
ReLU (Cho & Saul 2009), with :math:`\theta` the angle of the pair,
:math:`\cos\theta = K/\sqrt{v v'}`:

.. math::

    K \leftarrow \frac{\sqrt{v v'}}{2\pi}\,[\sin\theta + (\pi - \theta)\cos\theta],\quad
    v \leftarrow v/2,\quad \Theta \leftarrow \Theta\,\frac{\pi - \theta}{2\pi}.

Numerics. The recursion carries :math:`w = 1 - \cos\theta` instead of the correlation,
with the exact updates

.. math::

    w_{\rm relu} = w - \frac{\sin\theta - \theta\cos\theta}{\pi},\qquad
    w_{\rm dense} = \frac{c(\sqrt{a}-\sqrt{a'})^2/(R + \sqrt{aa'} + c)
        + \sqrt{aa'}\,w_{\rm relu}}{R},

where :math:`a = \sigma_w^2 v`, :math:`c = \sigma_b^2`, :math:`R = \sqrt{(a+c)(a'+c)}`
(a series is used for :math:`\sin\theta - \theta\cos\theta` at small angles). Nothing
cancels near :math:`\theta = 0`, so the NTK's :math:`\kappa_0` term, whose slope in
:math:`\theta` turns a rounding error :math:`\epsilon` in :math:`\cos\theta` into
:math:`\sqrt{2\epsilon} \approx 10^{-8}` (neural-tangents' own accuracy there), is exact
on the diagonal and at duplicate or collinear pairs. The first layer's :math:`w` comes
from one matrix product; pairs whose :math:`w` is below ``1e-6`` are recomputed from the
feature difference :math:`|x - x'|^2` (stable), and the diagonal of a self-kernel is 0.
Angle :math:`\pi` is treated the same way: pairs with :math:`w > 2 - 10^{-6}` are
recomputed from the sum of the unit vectors, which gives :math:`2 - w = 1 + \cos\theta`
to round-off relative to itself, and the first ReLU takes its angle from it (after it
the correlation is :math:`\ge 0`). On the Chebyshev path the diagonal is the exact
recursion at angle 0, the value the duplicate pairs get, bit for bit.
A pair whose variances are 0 gets :math:`\theta = \pi/2`, neural-tangents' convention.

For inputs of equal norm (every Fourier mapping), the whole kernel is one scalar
function
of the first-layer :math:`w` (:func:`profile`); it is evaluated by a Chebyshev fit of
that
function, built from the exact recursion for each architecture, verified on a dense test
set to 1e-14 relative before it is used (otherwise the exact recursion runs).

Memory: work is done in row blocks of at most ``2**20`` entries (8 MiB per float64
temporary, at most ~12 temporaries: a working set under 100 MiB beyond the output).
Outputs are capped at 4 GiB by default (``max_bytes`` argument or the
``NTKSPEC_MAX_DENSE_BYTES`` environment variable).

References:
    Cho & Saul, "Kernel Methods for Deep Learning", NIPS 2009.
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Deep Neural Networks as Gaussian Processes", ICLR 2018,
    arXiv:1711.00165.
    Novak et al., "Neural Tangents: Fast and Easy Infinite Neural Networks in Python",
    ICLR 2020, arXiv:1912.02803.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ._mesh import (
    axis_name,
    check_mesh,
    device_count,
    host_array,
    pad_rows,
    replicated,
    row_sharding,
    shard_map,
)
from ._numerics import check_dense_request, resolve_dtype, x64_scope
from ._validation import (
    as_points,
    check_hyperparameter,
    check_magnitude,
    check_positive_int,
    check_real,
    is_traced,
)

__all__ = [
    "ReluMLP",
    "nngp",
    "ntk",
    "nngp_and_ntk",
    "profile",
    "self_kernel_values",
    "profile_coefficients",
    "gram_block",
    "near_pairs",
    "exact_pair_values",
]

KernelName = Literal["nngp", "ntk"]
_PARAMETERIZATIONS = ("ntk", "standard")
#: Pairs whose first-layer ``w = 1 - cos(angle)`` is below this are recomputed from the
#: feature difference (a matrix product resolves ``w`` only to ~1e-16 absolute).
_NEAR_W = 1e-6
#: Entries per row block (bounded working set).
_BLOCK_ENTRIES = 2**20


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["W_std", "b_std"],
    meta_fields=["depth", "parameterization", "width"],
)
@dataclasses.dataclass(frozen=True)
class ReluMLP:
    """A ReLU MLP: ``depth`` Dense layers with ``depth - 1`` ReLUs between them.

    An immutable value and a JAX pytree (``W_std`` and ``b_std`` are leaves, so kernels
    can be differentiated with respect to them).

    Attributes:
        depth: number of Dense layers, readout included (>= 1).
        W_std: weight standard deviation sigma_w (> 0).
        b_std: bias standard deviation sigma_b (>= 0), or None for no bias. In the
            "standard" parameterization ``0.0`` (a bias initialised at zero, trained)
            adds exactly +1 per layer to the NTK; only None adds nothing.
        parameterization: "ntk" or "standard", as in neural-tangents.
        width: hidden width; required by "standard" (whose NTK grows with the declared
            widths) when depth >= 2, ignored by "ntk".

    Example: the official notebooks' network is
    ``ReluMLP(4, W_std=1.0, b_std=0.0, parameterization="standard", width=256)``.
    """

    depth: int
    W_std: float = math.sqrt(2.0)
    b_std: float | None = 0.0
    parameterization: str = "ntk"
    width: int | None = None

    def __post_init__(self):
        check_positive_int(self.depth, "depth")
        if self.parameterization not in _PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be 'ntk' or 'standard'; "
                f"got {self.parameterization!r}"
            )
        check_hyperparameter(self.W_std, "W_std", low=0.0, low_inclusive=False)
        check_hyperparameter(
            self.b_std, "b_std", low=0.0, low_inclusive=True, allow_none=True
        )
        if self.width is not None:
            check_positive_int(self.width, "width")
        if (
            self.parameterization == "standard"
            and self.depth >= 2
            and self.width is None
        ):
            raise ValueError(
                "width is required for parameterization='standard' with depth >= 2: "
                "its NTK grows with the declared hidden width (give e.g. width=256)"
            )


# --------------------------------------------------------------------------------------
# The recursion on (variances, w = 1 - cos angle, NNGP, NTK), elementwise.
# --------------------------------------------------------------------------------------


@jax.custom_jvp
def _safe_sqrt(x):
    return jnp.sqrt(jnp.maximum(x, 0.0))


@_safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _safe_sqrt(x)
    pos = x > 0
    return y, jnp.where(pos, dx / (2.0 * jnp.where(pos, y, 1.0)), 0.0)


#: Below this, w = 1 - cos(angle) is round-off (the first layer snaps w < ~1e-14 to 0,
#: deeper layers shrink w by O(1) factors): derivatives treat the pair as at angle 0.
_W_TINY = 1e-20


def _interior(w):
    return (w > _W_TINY) & (w < 2.0 - _W_TINY)


def _pi_minus_angle(s):
    """Pi - theta = 2 arcsin(sqrt(s / 2)) from s = 1 + cos(theta), stable near pi."""
    return 2.0 * jnp.arcsin(jnp.sqrt(jnp.clip(s, 0.0, 2.0) / 2.0))


@jax.custom_jvp
def _angle_from_w(w):
    """Theta = arccos(1 - w), stable at both ends; w in [0, 2].

    ``2 arcsin(sqrt(w / 2))`` on the lower half, ``pi - 2 arcsin(sqrt((2 - w) / 2))``
    on the upper half (``2 - w`` is exact there): arcsin is never evaluated near 1,
    where it would turn a rounding error into its square root.
    """
    wc = jnp.clip(w, 0.0, 2.0)
    lower = 2.0 * jnp.arcsin(jnp.sqrt(jnp.minimum(wc, 1.0) / 2.0))
    upper = jnp.pi - _pi_minus_angle(2.0 - jnp.maximum(wc, 1.0))
    return jnp.where(wc <= 1.0, lower, upper)


@_angle_from_w.defjvp
def _angle_from_w_jvp(primals, tangents):
    # d theta / d w = 1 / sin(theta) = 1 / sqrt(w (2 - w)); infinite at w = 0 and 2,
    # where
    # theta is at an end of [0, pi]. There we return 0: the symmetric (central)
    # derivative
    # of the kernel's cusp, which is what central finite differences measure.
    (w,), (dw,) = primals, tangents
    inner = _interior(w)
    s = jnp.sqrt(jnp.where(inner, w * (2.0 - w), 1.0))
    return _angle_from_w(w), jnp.where(inner, dw / s, 0.0)


@jax.custom_jvp
def _sin_from_w(w):
    """sin(theta) = sqrt(w (2 - w)) for theta = arccos(1 - w)."""
    return jnp.sqrt(jnp.clip(w * (2.0 - w), 0.0, None))


@_sin_from_w.defjvp
def _sin_from_w_jvp(primals, tangents):
    (w,), (dw,) = primals, tangents
    inner = _interior(w)
    s = jnp.sqrt(jnp.where(inner, w * (2.0 - w), 1.0))
    return _sin_from_w(w), jnp.where(inner, (1.0 - w) * dw / s, 0.0)


def _sin_minus_theta_cos(theta, sin_t, cos_t):
    """sin(theta) - theta cos(theta), by its Taylor series below 0.5 (no cancelling)."""
    t2 = theta * theta
    # sum_{k>=1} (-1)^(k+1) 2k theta^(2k+1) / (2k+1)!, Horner in theta^2, 9 terms.
    series = jnp.zeros_like(theta)
    for k in range(9, 0, -1):
        coef = (-1.0) ** (k + 1) * 2.0 * k / math.factorial(2 * k + 1)
        series = coef + t2 * series
    series = series * t2 * theta
    return jnp.where(theta < 0.5, series, sin_t - theta * cos_t)


def _dense_w(a1, a2, c, w_prev):
    """1 - correlation after a Dense layer; a = sigma_w^2 v_in, c = sigma_b^2."""
    sa = _safe_sqrt(a1 * a2)
    r2 = (a1 + c) * (a2 + c)
    r = _safe_sqrt(r2)
    d = _safe_sqrt(a1) - _safe_sqrt(a2)
    num = c * d * d / jnp.where(r + sa + c > 0, r + sa + c, 1.0) + sa * w_prev
    zero = r2 <= 0
    # Zero variance on one side: neural-tangents sets the angle to pi/2 (w = 1).
    return jnp.where(zero, 1.0, jnp.clip(num / jnp.where(zero, 1.0, r), 0.0, 2.0))


def _dense_s(a1, a2, c, s_prev):
    """1 + correlation after a Dense layer, from 1 + correlation before it (near pi).

    ``2 - w_dense`` written without cancelling: with R, sa, d as in :func:`_dense_w`,
    ``(2c(a1 + a2 + c)/(R + sa) - c d^2/(R + sa + c) + sa s_prev) / R``.
    """
    sa = _safe_sqrt(a1 * a2)
    r2 = (a1 + c) * (a2 + c)
    r = _safe_sqrt(r2)
    dd = _safe_sqrt(a1) - _safe_sqrt(a2)
    t1 = 2.0 * c * (a1 + a2 + c) / jnp.where(r + sa > 0, r + sa, 1.0)
    t2 = c * dd * dd / jnp.where(r + sa + c > 0, r + sa + c, 1.0)
    num = t1 - t2 + sa * s_prev
    zero = r2 <= 0
    return jnp.where(zero, 1.0, jnp.clip(num / jnp.where(zero, 1.0, r), 0.0, 2.0))


def _recursion(arch: ReluMLP, q1, q2, w_in, d: int, need_ntk: bool = True, s_in=None):
    """Run the layer recursion elementwise.

    Args:
        arch: the architecture.
        q1: input variances |x1|^2/d, broadcastable against ``w_in``.
        q2: input variances |x2|^2/d, broadcastable against ``w_in``.
        w_in: 1 - cos(angle between inputs), in [0, 2].
        d: input width (used by the "standard" NTK).
        need_ntk: skip the NTK when only the NNGP is wanted.
        s_in: optional ``2 - w_in`` accurate to round-off relative to itself (pairs
            near angle pi); the first layer then takes its angle from it.

    Returns:
        (nngp, ntk) broadcast to ``w_in``'s shape (ntk is None if not needed).
    """
    sw2 = jnp.asarray(arch.W_std) ** 2
    has_bias = arch.b_std is not None
    sb2 = jnp.asarray(arch.b_std) ** 2 if has_bias else 0.0
    standard = arch.parameterization == "standard"
    bias_term = 1.0 if has_bias else 0.0

    k_in = _safe_sqrt(q1 * q2) * (1.0 - w_in)  # input NNGP x.x'/d
    a1, a2 = sw2 * q1, sw2 * q2
    v1, v2 = a1 + sb2, a2 + sb2
    w = _dense_w(a1, a2, sb2, w_in)
    s = None if s_in is None else _dense_s(a1, a2, sb2, s_in)
    nngp = sw2 * k_in + sb2
    if need_ntk:
        ntk = d * k_in + bias_term if standard else nngp
    else:
        ntk = None
    for layer in range(arch.depth - 1):
        # ReLU
        theta = _angle_from_w(w)
        cos_t = 1.0 - w
        sin_t = _sin_from_w(w)
        pi_minus = jnp.pi - theta
        if s is not None and layer == 0:
            # Near angle pi the angle comes from s = 1 + cos(theta) (after the first
            # ReLU the correlation is >= 0, far from -1, so later layers need no s).
            upper = w > 1.0
            pi_minus = jnp.where(upper, _pi_minus_angle(s), pi_minus)
            theta = jnp.where(upper, jnp.pi - pi_minus, theta)
            cos_t = jnp.where(upper, s - 1.0, cos_t)
            sin_t = jnp.where(upper, _safe_sqrt(jnp.clip(w, 0.0, 2.0) * s), sin_t)
        w_relu = jnp.clip(w - _sin_minus_theta_cos(theta, sin_t, cos_t) / jnp.pi, 0, 2)
        v1, v2 = v1 / 2.0, v2 / 2.0
        k_relu = _safe_sqrt(v1 * v2) * (1.0 - w_relu)
        # Dense
        a1, a2 = sw2 * v1, sw2 * v2
        w = _dense_w(a1, a2, sb2, w_relu)
        v1, v2 = a1 + sb2, a2 + sb2
        nngp = sw2 * k_relu + sb2
        if need_ntk:
            ntk_relu = ntk * pi_minus / (2.0 * jnp.pi)
            if standard:
                ntk = arch.width * k_relu + sw2 * ntk_relu + bias_term
            else:
                ntk = nngp + sw2 * ntk_relu
    nngp = jnp.broadcast_to(nngp, jnp.shape(w_in))
    if need_ntk:
        ntk = jnp.broadcast_to(ntk, jnp.shape(w_in))
    return nngp, ntk


# --------------------------------------------------------------------------------------
# The scalar profile and its Chebyshev evaluation.
# --------------------------------------------------------------------------------------

_HALF = 1.0 / math.sqrt(2.0)


def _cheb_nodes(n: int) -> np.ndarray:
    return np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _cheb_coefficients(values: np.ndarray) -> np.ndarray:
    n = values.shape[-1]
    k = np.arange(n)
    basis = np.cos(np.pi * np.outer(k, k + 0.5) / n)  # T_j at node k
    c = (2.0 / n) * (values @ basis.T)
    c[..., 0] /= 2.0
    return c


def _w_from_z(z: np.ndarray, upper: bool) -> np.ndarray:
    # lower half: z = sin(theta/2) = sqrt(w/2); upper half: z = cos(theta/2).
    return 2.0 * (1.0 - z * z) if upper else 2.0 * z * z


def _exact_profile_impl(arch, q, w, d, kernel):
    nngp_, ntk_ = _recursion(arch, q, q, w, d, kernel == "ntk")
    return ntk_ if kernel == "ntk" else nngp_


_exact_profile = jax.jit(_exact_profile_impl, static_argnames=("d", "kernel"))
# The fit's one exact evaluation (a few thousand points, once per architecture and
# input variance) is compiled with XLA's backend optimisations off: its run time does
# not matter, its compile time is on every first call (about 40% less CPU measured on
# the 2-core machine, values equal to 1e-15). A per-function option, not global config.
_exact_profile_fit = jax.jit(
    _exact_profile_impl,
    static_argnames=("d", "kernel"),
    compiler_options={"xla_backend_optimization_level": 0},
)


#: Points of every fit's exact evaluation (nodes of both halves and the test set, padded
#: with w = 0): one compiled shape for every degree tried and every architecture.
_FIT_POINTS = 4400


def _exact_profile_np(arch, q, w, d, kernel):
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[0]
    pad = max(_FIT_POINTS, n)
    w_pad = np.zeros(pad)
    w_pad[:n] = w
    with x64_scope(np.float64):
        # Host scalars and arrays are transferred (device_put), not converted by eager
        # device ops, each of which would compile on first use.
        q_dev = jax.device_put(np.asarray(q, dtype=np.float64))
        out = _exact_profile_fit(arch, q_dev, jax.device_put(w_pad), d, kernel)
        return np.asarray(out)[:n]


@dataclasses.dataclass(frozen=True)
class _ChebyshevProfile:
    """Piecewise Chebyshev fit of the profile in z = sin or cos of half the angle."""

    coef_lower: np.ndarray  # (n,) for w in [0, 1]
    coef_upper: np.ndarray  # (n,) for w in [1, 2]
    max_rel_error: float


def _fit_profile(arch, q: float, d: int, kernel: str, degree: int = 48):
    nodes = (_cheb_nodes(degree) + 1.0) * (_HALF / 2.0)
    test_w = np.concatenate(
        [np.linspace(0.0, 2.0, 2001), 2.0 * np.random.default_rng(0).random(2000)]
    )
    # One exact evaluation (one compiled shape) for both node sets and the test set.
    w_all = np.concatenate([_w_from_z(nodes, False), _w_from_z(nodes, True), test_w])
    vals = _exact_profile_np(arch, q, w_all, d, kernel)
    coefs = [
        _cheb_coefficients(vals[:degree]),
        _cheb_coefficients(vals[degree : 2 * degree]),
    ]
    # Verify on a dense set of points (both halves) against the exact recursion, on the
    # host (the same Clenshaw recurrence as the device evaluation; no compilation).
    exact = vals[2 * degree :]
    fit_vals = _eval_chebyshev(coefs[0], coefs[1], test_w, xp=np)
    scale = np.max(np.abs(exact))
    err = float(np.max(np.abs(fit_vals - exact)) / scale) if scale > 0 else 0.0
    return _ChebyshevProfile(coefs[0], coefs[1], err)


def _eval_chebyshev(coef_lower, coef_upper, w, xp=jnp):
    """Clenshaw evaluation of the piecewise fit; ``xp`` is jax.numpy or NumPy."""
    lower = w <= 1.0
    z = xp.sqrt(xp.where(lower, w / 2.0, 1.0 - w / 2.0))
    t = z * (4.0 / _HALF) / 2.0 - 1.0  # map [0, 1/sqrt 2] -> [-1, 1]
    b1 = xp.zeros_like(w)
    b2 = xp.zeros_like(w)
    n = coef_lower.shape[0]
    for j in range(n - 1, 0, -1):
        cj = xp.where(lower, coef_lower[j], coef_upper[j])
        b1, b2 = cj + 2.0 * t * b1 - b2, b1
    c0 = xp.where(lower, coef_lower[0], coef_upper[0])
    return c0 + t * b1 - b2


_FIT_CACHE: dict = {}
_FIT_TOL = 5e-14


def _profile_key(arch: ReluMLP, q, d: int, kernel: str) -> tuple:
    """The memo key of a profile: Python numbers only (no arrays)."""
    return (
        arch.depth,
        float(arch.W_std),
        None if arch.b_std is None else float(arch.b_std),
        arch.parameterization,
        arch.width,
        float(q),
        int(d),
        kernel,
    )


def _profile_fit(arch: ReluMLP, q: float, d: int, kernel: str):
    """A verified Chebyshev fit, or None when the fit misses its tolerance."""
    key = _profile_key(arch, q, d, kernel)
    # A small bounded memo of *Python-number* keys (no arrays): fitting costs ~10 ms.
    if key in _FIT_CACHE:
        return _FIT_CACHE[key]
    fit = None
    for degree in (24, 32, 48, 96):
        cand = _fit_profile(arch, q, d, kernel, degree)
        if cand.max_rel_error <= _FIT_TOL:
            fit = cand
            break
    if len(_FIT_CACHE) > 256:
        _FIT_CACHE.clear()
    _FIT_CACHE[key] = fit
    return fit


def profile(
    arch: ReluMLP,
    sin2_half,
    *,
    input_var=1.0,
    input_dim: int = 1,
    kernel: KernelName = "ntk",
    dtype=np.float64,
    coefs=None,
):
    r"""The kernel as a scalar function of the input angle, for inputs of equal norm.

    For inputs with :math:`|x|^2/d = q` (every Fourier mapping: :math:`q = S/(2m)`), the
    NNGP and NTK depend on the pair only through the input angle :math:`\theta_0`:
    :math:`k(x, x') = h(\sin^2(\theta_0/2))`, with
    :math:`\sin^2(\theta_0/2) = (1 - x^\top x'/|x|^2)/2`. Together with
    :meth:`FourierMapping.sin2_half_angle` this evaluates a stationary kernel from the
    offset alone: ``profile(arch, mapping.sin2_half_angle(delta), input_var=S / (2m),
    input_dim=2m)``.

    Args:
        arch: the architecture.
        sin2_half: array of :math:`\sin^2(\theta_0/2)` values in [0, 1], any shape.
        input_var: :math:`q = |x|^2/d` (> 0).
        input_dim: d, the input width (only the "standard" NTK depends on it).
        kernel: "ntk" or "nngp".
        dtype: float64 (default) or float32.
        coefs: the verified fit ``profile_coefficients(arch, input_var, input_dim,
            kernel)`` (NumPy or JAX arrays), or None. Given, the values come from that
            fit, also inside ``jit`` (one compiled program with the caller's work);
            None: the fit is used for concrete inputs of more than 4096 entries, the
            exact recursion otherwise.

    Returns:
        The kernel values, same shape as ``sin2_half``.

    Raises:
        ValueError: bad arguments, or a kernel that overflows ``dtype`` (concrete
            values that are not finite; traced offsets: ``check_profile_range``).
    """
    if kernel not in ("ntk", "nngp"):
        raise ValueError(f"kernel must be 'ntk' or 'nngp'; got {kernel!r}")
    dtype = resolve_dtype(dtype)
    check_real(input_var, "input_var", low=0.0, low_inclusive=False)
    input_dim = check_positive_int(input_dim, "input_dim")
    if not is_traced(sin2_half):
        arr = np.asarray(sin2_half)
        if not np.all(np.isfinite(arr)):
            raise ValueError("sin2_half must be finite")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError(
                "sin2_half must lie in [0, 1]; got values in "
                f"[{arr.min()}, {arr.max()}]"
            )
    if is_traced(sin2_half) and coefs is None:
        # e.g. differentiated with respect to the offsets: the values cannot be read,
        # the range can (concrete architecture and input variance)
        check_profile_range(arch, input_var, input_dim, kernel, dtype)
    out = _profile_values(arch, sin2_half, input_var, input_dim, kernel, dtype, coefs)
    if not is_traced(out) and not bool(np.all(np.isfinite(np.asarray(out)))):
        raise ValueError(_overflow_message(kernel, dtype))
    return out


def _profile_values(arch, sin2_half, input_var, input_dim, kernel, dtype, coefs):
    with x64_scope(dtype):
        if coefs is not None:
            w = 2.0 * jnp.asarray(sin2_half, dtype=dtype)
            lo, up = (jnp.asarray(c, dtype) for c in coefs)
            if is_traced(w):
                return _eval_chebyshev(lo, up, w)
            return _eval_chebyshev_jit(lo, up, w)
        if is_traced(sin2_half):
            w = 2.0 * jnp.asarray(sin2_half, dtype=dtype)
        else:  # on the host: no eager device op (each compiles on first use)
            w = jnp.asarray(2.0 * np.asarray(sin2_half, dtype=dtype), dtype=dtype)
        traced = (
            is_traced(sin2_half)
            or any(is_traced(x) for x in jax.tree_util.tree_leaves(arch))
            or is_traced(input_var)
        )
        if not traced and w.size > 4096:
            fit = _profile_fit(arch, float(input_var), input_dim, kernel)
            if fit is not None:
                return _eval_chebyshev_jit(
                    jnp.asarray(fit.coef_lower, dtype),
                    jnp.asarray(fit.coef_upper, dtype),
                    w,
                )
        q = jnp.asarray(input_var, dtype=dtype)
        return _exact_profile(arch, q, w, input_dim, kernel)


_eval_chebyshev_jit = jax.jit(_eval_chebyshev)


# --------------------------------------------------------------------------------------
# Gram matrices.
# --------------------------------------------------------------------------------------


def _first_layer_w(x1, x2, q1, q2, d, self_block_offset):
    """W = 1 - cos(angle) from the matrix product, snapped to 0 on a self-diagonal."""
    gram = (x1 @ x2.T) / d
    denom = _safe_sqrt(q1[:, None] * q2[None, :])
    pos = denom > 0
    w = jnp.where(pos, 1.0 - gram / jnp.where(pos, denom, 1.0), 1.0)
    # The product resolves w only to ~sqrt(d) eps absolute: below that the pair is at
    # angle 0 as far as this data can tell. Snapping keeps traced evaluations (jit/grad,
    # where the exact near-pair pass cannot run) and their gradients well defined there.
    snap = 64.0 * jnp.finfo(w.dtype).eps * max(1.0, math.sqrt(d))
    w = jnp.where(w < snap, 0.0, jnp.where(w > 2.0 - snap, 2.0, w))
    if self_block_offset is not None:
        rows = jnp.arange(x1.shape[0])[:, None] + self_block_offset
        cols = jnp.arange(x2.shape[0])[None, :]
        w = jnp.where(rows == cols, 0.0, w)
    return w


@functools.partial(jax.jit, static_argnames=("get", "self_kernel", "fit"))
def _block(arch, x1, x2, offset, get, self_kernel, fit, coefs):
    """:func:`_block_q` with the variances computed from the blocks themselves."""
    d = x1.shape[1]
    q1 = jnp.sum(x1 * x1, axis=1) / d
    q2 = jnp.sum(x2 * x2, axis=1) / d
    return _block_q(arch, x1, x2, q1, q2, offset, get, self_kernel, fit, coefs)


@functools.partial(jax.jit, static_argnames=("get", "self_kernel", "fit"))
def _block_q(arch, x1, x2, q1, q2, offset, get, self_kernel, fit, coefs):
    """One row block of the Gram, and how many pairs need the exact near-pair path.

    ``q1``, ``q2`` are the variances ``|x|^2 / d`` of the rows, computed once for all
    points (:func:`_variances`), so every path sees the same values.
    """
    d = x1.shape[1]
    w = _first_layer_w(x1, x2, q1, q2, d, offset if self_kernel else None)
    if fit:
        out = _eval_chebyshev(coefs[0], coefs[1], w)
        if self_kernel:
            # The diagonal takes the exact recursion at angle 0, as the duplicate pairs
            # of the near-pair path do, so that both agree bit for bit.
            diag_n, diag_t = _recursion(
                arch, q1, q1, jnp.zeros_like(q1), d, get == "ntk"
            )
            diag = diag_t if get == "ntk" else diag_n
            rows = jnp.arange(w.shape[0])[:, None] + offset
            out = jnp.where(rows == jnp.arange(w.shape[1])[None, :], diag[:, None], out)
    else:
        nngp_, ntk_ = _recursion(arch, q1[:, None], q2[None, :], w, d, get == "ntk")
        out = ntk_ if get == "ntk" else nngp_
    return out, _near_mask(w, offset, self_kernel).sum()


def _near_mask(w, offset, self_kernel):
    # Near angle 0 or near angle pi: both ends of arccos need the exact pair path.
    near = (w < _NEAR_W) | (w > 2.0 - _NEAR_W)
    if self_kernel:
        rows = jnp.arange(w.shape[0])[:, None] + offset
        near = near & (rows != jnp.arange(w.shape[1])[None, :])
    return near


@functools.partial(jax.jit, static_argnames=("self_kernel",))
def _block_near(x1, x2, offset, self_kernel):
    d = x1.shape[1]
    q1 = jnp.sum(x1 * x1, axis=1) / d
    q2 = jnp.sum(x2 * x2, axis=1) / d
    w = _first_layer_w(x1, x2, q1, q2, d, offset if self_kernel else None)
    return _near_mask(w, offset, self_kernel)


@jax.jit
def _variances(x):
    """Variances |x|^2 / d of all rows in one reduction (its order varies by shape)."""
    return jnp.sum(x * x, axis=1) / x.shape[1]


@functools.partial(jax.jit, static_argnames=("get",))
def _exact_pairs(arch, x1, x2, rows, cols, get):
    """:func:`_exact_pairs_q` with the variances computed here."""
    return _exact_pairs_q(arch, x1, x2, _variances(x1), _variances(x2), rows, cols, get)


@functools.partial(jax.jit, static_argnames=("get",))
def _exact_pairs_q(arch, x1, x2, q1, q2, rows, cols, get):
    """Kernel at selected pairs, w from unit-vector differences (no cancellation).

    ``1 - cos(angle) = |a/|a| - b/|b||^2 / 2`` is accurate to round-off relative to
    ``w`` itself, for duplicates and collinear pairs alike (where it is ~1e-32, not
    ~1e-16); near angle pi ``1 + cos(angle) = |a/|a| + b/|b||^2 / 2`` is, and the
    recursion takes the first angle from it. The variances are computed as in
    :func:`_block`, so a duplicate pair equals the diagonal bit for bit.
    """
    a, b = x1[rows], x2[cols]
    d = a.shape[1]
    qa, qb = q1[rows], q2[cols]
    na = jnp.sqrt(jnp.sum(a * a, axis=1, keepdims=True))
    nb = jnp.sqrt(jnp.sum(b * b, axis=1, keepdims=True))
    pos = (na > 0) & (nb > 0)
    ua = a / jnp.where(pos, na, 1.0)
    ub = b / jnp.where(pos, nb, 1.0)
    w_minus = 0.5 * jnp.sum((ua - ub) ** 2, axis=1)
    s_plus = jnp.clip(0.5 * jnp.sum((ua + ub) ** 2, axis=1), 0.0, 2.0)
    w = jnp.where(w_minus <= 1.0, w_minus, 2.0 - s_plus)
    w = jnp.clip(jnp.where(pos[:, 0], w, 1.0), 0.0, 2.0)
    s_in = jnp.where(pos[:, 0], jnp.where(w_minus <= 1.0, 2.0 - w, s_plus), 1.0)
    nngp_, ntk_ = _recursion(arch, qa, qb, w, d, get == "ntk", s_in=s_in)
    return ntk_ if get == "ntk" else nngp_


def _exact_pairs_bucketed(arch, x1, x2, rows, cols, get, q1=None, q2=None):
    """:func:`_exact_pairs_q` with the pair count padded to a power of two (>= 8).

    The count of near pairs changes from call to call; padding it (with copies of the
    first pair, sliced off after) lets one compiled function serve every count in a
    bucket instead of compiling once per count.
    """
    q1 = _variances(x1) if q1 is None else q1
    q2 = _variances(x2) if q2 is None else q2
    rows, cols = np.asarray(rows), np.asarray(cols)
    count = int(rows.size)
    if count == 0:
        return _exact_pairs_q(arch, x1, x2, q1, q2, rows, cols, get)
    size = max(8, 1 << (count - 1).bit_length())
    rp = np.concatenate([rows, np.full(size - count, rows[0], rows.dtype)])
    cp = np.concatenate([cols, np.full(size - count, cols[0], cols.dtype)])
    return _exact_pairs_q(arch, x1, x2, q1, q2, rp, cp, get)[:count]


#: Tile side of the symmetric self-Gram path (2**18 entries per tile).
_SYM_TILE = 512


@functools.partial(
    jax.jit, static_argnames=("get", "fit", "tile"), donate_argnames=("out",)
)
def _symmetric_tiles(out, arch, xp, qp, tiles, start, stop, get, fit, coefs, tile):
    """Write tiles ``tiles[start:stop]`` of the self-Gram and their mirrors, in place.

    ``out`` (donated: updated without a copy) has shape (M, M), M = the padded point
    count, a multiple of ``tile``; ``tiles`` is a (T, 2) int array of tile-row and
    tile-column indices on and above the diagonal. Each tile is one :func:`_block_q`
    with ``self_kernel`` and offset ``r0 - c0`` (a no-op off the diagonal), so the
    diagonal tiles get the exact angle-0 diagonal. Also returns each tile's near-pair
    count (zero outside [start, stop)) and whether every tile is finite. ``start`` and
    ``stop`` are traced: one compiled program serves every chunk.
    """
    counts = jnp.zeros(tiles.shape[0], jnp.int32)

    def body(k, carry):
        out, counts, finite = carry
        r0, c0 = tiles[k, 0] * tile, tiles[k, 1] * tile
        xr = jax.lax.dynamic_slice_in_dim(xp, r0, tile)
        xc = jax.lax.dynamic_slice_in_dim(xp, c0, tile)
        qr = jax.lax.dynamic_slice_in_dim(qp, r0, tile)
        qc = jax.lax.dynamic_slice_in_dim(qp, c0, tile)
        block, n_near = _block_q(arch, xr, xc, qr, qc, r0 - c0, get, True, fit, coefs)
        # Mirror first, then the tile: a diagonal tile keeps its own computed values.
        out = jax.lax.dynamic_update_slice(out, block.T, (c0, r0))
        out = jax.lax.dynamic_update_slice(out, block, (r0, c0))
        counts = counts.at[k].set(n_near.astype(jnp.int32))
        return out, counts, finite & jnp.all(jnp.isfinite(block))

    return jax.lax.fori_loop(start, stop, body, (out, counts, jnp.bool_(True)))


@functools.partial(jax.jit, donate_argnames=("out",))
def _set_pairs(out, rows, cols, vals):
    """``out[rows, cols] = vals`` and ``out[cols, rows] = vals``, in place (donated)."""
    return out.at[cols, rows].set(vals).at[rows, cols].set(vals)


def _symmetric_gram(arch, x, q, get, fit, coefs, progress):
    """Self-Gram from the tiles on and above the diagonal, mirrored (half the work).

    Assembled on the device in one buffer: every tile has the same (padded) shape and
    one compiled loop writes them with their mirrors in place (no host copy of the
    N x N output). Near pairs (a handful) are then recomputed exactly and set in place.
    Returns ``(gram, finite)``, a ``jax.Array`` of shape (N, N) and a bool.
    """
    n, d = x.shape
    t = _SYM_TILE
    nt = -(-n // t)
    pad = nt * t - n
    xp = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad, d))]) if pad else x
    qp = jnp.concatenate([q, jnp.broadcast_to(q[-1:], (pad,))]) if pad else q
    pairs = np.array([(i, j) for i in range(nt) for j in range(i, nt)], np.int32)
    tiles = jnp.asarray(pairs)
    total = pairs.shape[0]
    out = jnp.zeros((nt * t, nt * t), x.dtype)
    # Chunks of tiles between progress updates (one chunk when no bar is shown).
    show = progress is None or progress
    chunk = max(1, nt) if show else total
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, desc=f"{get} Gram", unit="tiles", leave=False, delay=1.0
        )
    counts = np.zeros(total, np.int64)
    finite = True
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        out, cnt, ok = _symmetric_tiles(
            out, arch, xp, qp, tiles, start, stop, get, fit, coefs, t
        )
        counts += np.asarray(cnt)
        finite = finite and bool(ok)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    fix_rows, fix_cols = [], []
    for k in np.nonzero(counts)[0]:
        i, j = pairs[k]
        r0, c0 = int(i) * t, int(j) * t
        diagonal = r0 == c0
        near = np.asarray(_block_near(xp[r0 : r0 + t], xp[c0 : c0 + t], 0, diagonal))
        rows, cols = np.nonzero(near[: max(0, n - r0), : max(0, n - c0)])
        fix_rows.append(rows + r0)
        fix_cols.append(cols + c0)
    if fix_rows:
        rows, cols = np.concatenate(fix_rows), np.concatenate(fix_cols)
        if rows.size:
            vals = _exact_pairs_bucketed(arch, x, x, rows, cols, get, q, q)
            out = _set_pairs(out, rows, cols, vals)
    if pad:
        out = out[:n, :n]
    return out, finite


def _kernel(arch, x1, x2, get, dtype, max_bytes, block_rows, progress, mesh=None):
    mesh = check_mesh(mesh)
    check_arch(arch)
    dtype = resolve_dtype(dtype)
    x1 = as_points(x1, "x1")
    self_kernel = x2 is None
    x2 = x1 if self_kernel else as_points(x2, "x2")
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same number of columns; got {x1.shape[1]} and "
            f"{x2.shape[1]}"
        )
    if mesh is not None:
        if any(is_traced(t) for t in (x1, x2, *jax.tree_util.tree_leaves(arch))):
            raise ValueError("mesh needs concrete x1, x2 and arch (not traced)")
        check_magnitude(x1, "x1", dtype)
        check_magnitude(x2, "x2", dtype)
        check_dense_request(
            (x1.shape[0] // device_count(mesh), x2.shape[0]),
            np.dtype(dtype).itemsize,
            max_bytes,
            what=f"The {get.upper()} Gram's rows on one device",
            alternative="Use more devices, or a matrix-free solver.",
        )
        gram = sharded_gram(arch, x1, None if self_kernel else x2, get, dtype, mesh)
        return _check_output(gram, get, dtype)
    check_magnitude(x1, "x1", dtype)
    if not self_kernel:
        check_magnitude(x2, "x2", dtype)
    n1, n2 = x1.shape[0], x2.shape[0]
    check_dense_request(
        (n1, n2),
        np.dtype(dtype).itemsize,
        max_bytes,
        what=f"The dense {get.upper()} Gram",
        alternative=(
            "Use ntkspec.Grid points with ntkspec.spectrum / kernel_regression for the "
            "structured (FFT/Toeplitz) path, or a matrix-free solver for "
            "scattered points."
        ),
    )
    user_block_rows = block_rows
    if block_rows is None:
        block_rows = max(1, min(n1, _BLOCK_ENTRIES // max(n2, 1)))
    else:
        block_rows = check_positive_int(block_rows, "block_rows")
    traced = any(is_traced(t) for t in (x1, x2, *jax.tree_util.tree_leaves(arch)))

    with x64_scope(dtype):
        x1j = jnp.asarray(x1, dtype=dtype)
        x2j = x1j if self_kernel else jnp.asarray(x2, dtype=dtype)
        q1j = _variances(x1j)
        q2j = q1j if self_kernel else _variances(x2j)
        d = x1.shape[1]
        fit = None
        if not traced:
            q1 = np.sum(np.asarray(x1, np.float64) ** 2, axis=1) / d
            q2 = (
                q1
                if self_kernel
                else np.sum(np.asarray(x2, np.float64) ** 2, axis=1) / d
            )
            q0 = q1[0]
            equal = q0 > 0 and all(
                np.max(np.abs(q - q0)) <= 1e-13 * q0 for q in (q1, q2)
            )
            if equal and n1 * n2 > 4096:
                fit = _profile_fit(arch, float(q0), d, get)
        coefs = (
            (jnp.asarray(fit.coef_lower, dtype), jnp.asarray(fit.coef_upper, dtype))
            if fit is not None
            else (jnp.zeros(1, dtype), jnp.zeros(1, dtype))
        )
        if self_kernel and not traced and user_block_rows is None and n1 > _SYM_TILE:
            out, finite = _symmetric_gram(
                arch, x1j, q1j, get, fit is not None, coefs, progress
            )
            return _check_output(out, get, dtype, finite)
        starts = list(range(0, n1, block_rows))
        bar = None
        if progress is None:
            progress = len(starts) > 1
        if progress and not traced:
            from tqdm.auto import tqdm

            # delay: the bar appears only when the work takes longer than a second.
            bar = tqdm(
                total=n1, desc=f"{get} Gram", unit="rows", leave=False, delay=1.0
            )
        blocks = []
        for start in starts:
            stop = min(start + block_rows, n1)
            xb = x1j[start:stop]
            if stop - start < block_rows and len(starts) > 1:
                # pad the last block so every block reuses one compiled function
                xb = jnp.concatenate(
                    [xb, jnp.broadcast_to(xb[-1:], (block_rows - (stop - start), d))]
                )
            qb = q1j[start:stop]
            if qb.shape[0] < xb.shape[0]:
                qb = jnp.concatenate(
                    [qb, jnp.broadcast_to(qb[-1:], (xb.shape[0] - qb.shape[0],))]
                )
            out, n_near = _block_q(
                arch, xb, x2j, qb, q2j, start, get, self_kernel, fit is not None, coefs
            )
            out = out[: stop - start]
            if not traced and int(n_near) > 0:
                near = np.asarray(_block_near(xb, x2j, start, self_kernel))
                rows, cols = np.nonzero(near[: stop - start])
                vals = _exact_pairs_bucketed(
                    arch, x1j, x2j, rows + start, cols, get, q1j, q2j
                )
                out = out.at[rows, cols].set(vals)
            blocks.append(out)
            if bar is not None:
                bar.update(stop - start)
        if bar is not None:
            bar.close()
        out = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=0)
        return out if traced else _check_output(out, get, dtype)


def _check_output(out, get, dtype, finite=None):
    """Refuse a Gram holding inf/NaN: an overflow, since the inputs are finite.

    ``finite``: the check already made where ``out`` was computed (else it is made
    here).
    """
    if finite is None:
        finite = bool(jnp.all(jnp.isfinite(out)))
    if not finite:
        raise ValueError(_overflow_message(get, dtype))
    return out


def _overflow_message(get: str, dtype, detail: str = "") -> str:
    """The one message of every path whose kernel overflows ``dtype``."""
    return (
        f"the {get.upper()} overflowed {np.dtype(dtype)} (inf/NaN entries{detail}): "
        "the inputs or the architecture's W_std/b_std/depth are too large for this "
        "dtype; rescale them"
    )


_PEAK_CACHE: dict = {}


def check_profile_range(
    arch: ReluMLP, input_var, input_dim: int, kernel: str, dtype, *, size: float = 1.0
) -> None:
    r"""Refuse, on the host, a stationary kernel whose values would overflow ``dtype``.

    Inputs of equal norm give a positive semi-definite kernel, so
    :math:`|h(w)| \le h(0)` (angle 0) and a Gram of ``size`` such points has
    eigenvalues at most ``size`` :math:`h(0)` (Gershgorin). :math:`h(0)` is evaluated
    exactly (the layer recursion, float64) once per architecture and input variance;
    when it or ``size`` times it is not below the largest ``dtype``, the same
    ValueError as :func:`ntk` on points is raised, before any grid work. Traced
    arguments are not checked.
    """
    leaves = jax.tree_util.tree_leaves(arch)
    if is_traced(input_var) or any(is_traced(x) for x in leaves):
        return
    key = _profile_key(arch, input_var, input_dim, kernel)
    if key not in _PEAK_CACHE:
        if len(_PEAK_CACHE) > 256:
            _PEAK_CACHE.clear()
        with np.errstate(all="ignore"):
            value = _exact_profile_np(
                arch, float(input_var), np.zeros(1), int(input_dim), kernel
            )[0]
        _PEAK_CACHE[key] = float(value)
    peak = _PEAK_CACHE[key]
    limit = float(np.finfo(np.dtype(dtype)).max)
    with np.errstate(over="ignore"):
        ok = math.isfinite(peak) and abs(peak) * float(size) < limit
    if not ok:
        raise ValueError(
            _overflow_message(
                kernel,
                dtype,
                f"; its value at angle 0 is {peak:.3g}, times {float(size):.3g} "
                f"points, against the largest {np.dtype(dtype)} {limit:.3g}",
            )
        )


def nngp(
    arch: ReluMLP,
    x1,
    x2=None,
    *,
    dtype=np.float64,
    max_bytes: float | None = None,
    block_rows: int | None = None,
    progress: bool | None = None,
    mesh=None,
):
    r"""The NNGP kernel :math:`K(x_1, x_2)` of the infinitely wide ``arch``.

    Args:
        arch: a :class:`ReluMLP`.
        x1: inputs, shape (n1, d) (raw coordinates or features such as ``mapping(v)``).
        x2: inputs, shape (n2, d); None means ``x1``.
        dtype: float64 (default; round-off parity with neural-tangents) or float32
            (faster; tested to 2e-5 relative off the diagonal, 1e-3 at angle 0).
        max_bytes: cap on the output's size (default 4 GiB or
        ``NTKSPEC_MAX_DENSE_BYTES``).
        block_rows: rows per block (default: blocks of about 2**21 entries).
        progress: show a tqdm bar (default: when there are more than 8 blocks).
        mesh: None (one device) or a 1-D ``jax.sharding.Mesh`` of D devices: device
            i computes rows ``[i n1/D, (i+1) n1/D)`` and the result is row-sharded
            over the mesh (n1 must be a multiple of D; ``max_bytes`` then caps each
            device's rows). See :mod:`ntkspec.sharding`.

    Returns:
        ``jax.Array`` of shape (n1, n2) and the requested dtype (row-sharded over
        ``mesh`` when one is given).

    Raises:
        ValueError: bad shapes, non-finite inputs, an output over the memory cap, a
            mesh that is not 1-D, or n1 not a multiple of its devices.
        TypeError: ``arch`` is not a :class:`ReluMLP`, or ``mesh`` is not a Mesh.
    """
    return _kernel(arch, x1, x2, "nngp", dtype, max_bytes, block_rows, progress, mesh)


def ntk(
    arch: ReluMLP,
    x1,
    x2=None,
    *,
    dtype=np.float64,
    max_bytes: float | None = None,
    block_rows: int | None = None,
    progress: bool | None = None,
    mesh=None,
):
    r"""The neural tangent kernel :math:`\Theta(x_1, x_2)` of the infinite-width arch.

    Same arguments, return value and conventions as :func:`nngp` (neural-tangents'
    ``kernel_fn(x1, x2, 'ntk')``: the output axis is dropped, the kernel is per output).

    Example:
        >>> import numpy as np, ntkspec
        >>> x = ntkspec.mappings.basic(1)(np.array([[0.0], [0.25]]))
        >>> ntkspec.ntk(ntkspec.ReluMLP(2), x).round(6).tolist()
        [[2.0, 0.31831], [0.31831, 2.0]]
    """
    return _kernel(arch, x1, x2, "ntk", dtype, max_bytes, block_rows, progress, mesh)


def nngp_and_ntk(arch: ReluMLP, x1, x2=None, **kwargs):
    """Both kernels, as a pair ``(nngp, ntk)``; same arguments as :func:`ntk`."""
    return nngp(arch, x1, x2, **kwargs), ntk(arch, x1, x2, **kwargs)


# --------------------------------------------------------------------------------------
# Building blocks for matrix-free Grams (ntkspec.operators builds on these).
# --------------------------------------------------------------------------------------


def self_kernel_values(arch: ReluMLP, x, *, kernel: KernelName = "ntk"):
    r"""The diagonal :math:`k(x_i, x_i)` for each row of ``x``, at exact angle 0.

    Args:
        arch: the architecture.
        x: inputs (features), shape (n, d).
        kernel: "ntk" or "nngp".

    Returns:
        ``jax.Array`` of shape (n,), float64.
    """
    check_arch(arch)
    x = np.asarray(as_points(x, "x"), dtype=np.float64)
    d = x.shape[1]
    q = np.sum(x * x, axis=1) / d
    with x64_scope(np.float64):
        qj = jnp.asarray(q)
        nngp_, ntk_ = _recursion(arch, qj, qj, jnp.zeros_like(qj), d, kernel == "ntk")
        return ntk_ if kernel == "ntk" else nngp_


def profile_coefficients(arch: ReluMLP, input_var: float, input_dim: int, kernel: str):
    r"""Verified Chebyshev coefficients of the profile :math:`h`, or None.

    For inputs of equal norm :math:`|x|^2/d` = ``input_var`` the kernel is
    :math:`h(w)` of the first-layer :math:`w = 1 - \cos\theta_0` (:func:`profile`); the
    fit is piecewise in :math:`z = \sqrt{w/2}` (:math:`w \le 1`) and
    :math:`z = \sqrt{1 - w/2}` and verified to 5e-14 relative on a dense test set.

    Returns:
        ``(coef_lower, coef_upper)`` float64 NumPy arrays, or None when no fit of
        degree up to 96 meets the tolerance (then evaluate the recursion).

    Raises:
        ValueError: the profile overflows float64 (``check_profile_range``).
    """
    check_profile_range(arch, input_var, input_dim, kernel, np.float64)
    fit = _profile_fit(arch, float(input_var), int(input_dim), kernel)
    return None if fit is None else (fit.coef_lower, fit.coef_upper)


def gram_block(
    arch: ReluMLP, x1, x2, offset, *, kernel: str, self_kernel: bool, coefs=None
):
    r"""One row block :math:`k(x_{1,i}, x_{2,j})` of a Gram, pure and jittable.

    Pairs nearer than the first-layer :math:`w < 10^{-6}` carry the matrix product's
    round-off; :func:`near_pairs` finds them and :func:`exact_pair_values` gives
    their exact values. With ``self_kernel`` the block is rows ``offset + i`` of the
    self-Gram, whose diagonal is set to angle 0 exactly.

    Args:
        arch: the architecture.
        x1: block rows, shape (b, d).
        x2: all columns, shape (n, d).
        offset: index of the block's first row in the self-Gram (traced int ok).
        kernel: "ntk" or "nngp" (static).
        self_kernel: whether x1 are rows of x2 (static).
        coefs: ``profile_coefficients`` output as JAX arrays, or None for the exact
            recursion.

    Returns:
        The block, shape (b, n).
    """
    fit = coefs is not None
    if not fit:
        coefs = (jnp.zeros(1, x1.dtype), jnp.zeros(1, x1.dtype))
    out, _ = _block(arch, x1, x2, offset, kernel, self_kernel, fit, coefs)
    return out


def near_pairs(x1, x2, offset, *, self_kernel: bool):
    """Mask (b, n) of the pairs of a :func:`gram_block` that need exact values."""
    return _block_near(x1, x2, offset, self_kernel)


def exact_pair_values(arch: ReluMLP, x1, x2, rows, cols, *, kernel: str):
    r"""The kernel at pairs ``(x1[rows], x2[cols])``, cancellation-free.

    :math:`1 - \cos\theta_0 = |a/|a| - b/|b||^2/2` is accurate relative to itself for
    duplicate and collinear pairs alike. Concrete (NumPy) ``rows``/``cols`` are padded
    to a power-of-two count, so a new number of pairs rarely recompiles.
    """
    if isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray):
        return _exact_pairs_bucketed(arch, x1, x2, rows, cols, kernel)
    return _exact_pairs(arch, x1, x2, rows, cols, kernel)


def check_arch(arch) -> None:
    """Refuse anything but a :class:`ntkspec.ReluMLP` (TypeError naming ``arch``)."""
    if not isinstance(arch, ReluMLP):
        raise TypeError(f"arch must be a ntkspec.ReluMLP; got {type(arch).__name__}")


def sharded_gram(arch, x1, x2, kernel: str, dtype, mesh: Mesh) -> jax.Array:
    r"""The (n1, n2) NNGP/NTK Gram, row-sharded over ``mesh``, computed in place.

    One ``shard_map``: device i evaluates rows :math:`[i n_1/D, (i+1) n_1/D)` in
    chunks of about :math:`2^{20}` entries (:func:`ntkspec.kernels.gram_block`, the
    Chebyshev profile when all inputs have equal norm, as on one device) and counts
    its near pairs; the chunks that have some are located on the host and their
    pairs replaced by :func:`ntkspec.kernels.exact_pair_values`, device by device.
    ``x2`` None is the self-Gram (its diagonal exactly at angle 0).

    Also :func:`ntkspec.sharding.sharded_gram`; it lives here, beside the blocks it
    evaluates, so that this module imports no sharding module (no import cycle).

    Raises:
        ValueError: n1 is not a multiple of the device count.
    """
    d = device_count(mesh)
    ax = axis_name(mesh)
    n1, dim = x1.shape
    if n1 % d:
        raise ValueError(
            f"mesh has {d} devices but x1 has {n1} rows: with a mesh the rows are "
            f"split evenly, so their number must be a multiple of {d} (pad x1, e.g. "
            f"with ntkspec.sharding.pad_rows, and slice the result)"
        )
    self_kernel = x2 is None
    x1 = np.asarray(x1, np.float64)
    x2 = x1 if self_kernel else np.asarray(x2, np.float64)
    n2 = x2.shape[0]
    q = np.concatenate([np.sum(x1**2, axis=1), np.sum(x2**2, axis=1)]) / dim
    equal = q[0] > 0 and np.max(np.abs(q - q[0])) <= 1e-13 * q[0]
    fit = None
    if equal and n1 * n2 > 4096:
        fit = profile_coefficients(arch, float(q[0]), dim, kernel)
    r = n1 // d
    cb = max(1, min(r, 2**20 // max(n2, 1)))
    chunks = -(-r // cb)
    rep = replicated(mesh)
    with x64_scope(dtype):
        x1j = jax.device_put(jnp.asarray(x1, dtype), row_sharding(mesh, 2))
        x2j = jax.device_put(jnp.asarray(x2, dtype), rep)
        coefs = None if fit is None else tuple(jnp.asarray(c, dtype) for c in fit)
        coefs, arch_r = jax.device_put((coefs, arch), rep)

        def local(xl, x2, arch, coefs):
            off = jax.lax.axis_index(ax) * r
            xb = pad_rows(xl, cb).reshape(chunks, cb, dim)

            def one(j):
                o = off + j * cb
                blk = gram_block(
                    arch, xb[j], x2, o, kernel=kernel, self_kernel=self_kernel,
                    coefs=coefs,
                )  # fmt: skip
                near = near_pairs(xb[j], x2, o, self_kernel=self_kernel)
                valid = (j * cb + jnp.arange(cb)) < r
                return blk, jnp.sum(near & valid[:, None])

            blocks, counts = jax.lax.map(one, jnp.arange(chunks))
            return blocks.reshape(chunks * cb, n2)[:r], counts

        out, counts = jax.jit(
            shard_map(local, mesh, (P(ax), P(), P(), P()), (P(ax), P(ax)))
        )(x1j, x2j, arch_r, coefs)
        counts = host_array(counts).reshape(d, chunks)
        if counts.sum() == 0:
            return out
        rows, cols = [], []
        for i, j in zip(*np.nonzero(counts), strict=True):
            start = i * r + j * cb
            stop = min(start + cb, (i + 1) * r)
            near = np.asarray(
                near_pairs(
                    jnp.asarray(x1[start:stop], dtype), jnp.asarray(x2, dtype), start,
                    self_kernel=self_kernel,
                )
            )  # fmt: skip
            rr, cc = np.nonzero(near)
            rows.append(rr + start)
            cols.append(cc)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        vals = np.asarray(
            exact_pair_values(
                arch, jnp.asarray(x1, dtype), jnp.asarray(x2, dtype), rows, cols,
                kernel=kernel,
            )
        )  # fmt: skip

        def fix(block, rows, cols, vals):
            lr = rows - jax.lax.axis_index(ax) * r
            lr = jnp.where((lr >= 0) & (lr < r), lr, r)  # other devices' rows: dropped
            return block.at[lr, cols].set(vals, mode="drop")

        args = jax.device_put(
            (jnp.asarray(rows), jnp.asarray(cols), jnp.asarray(vals, dtype)), rep
        )
        return jax.jit(shard_map(fix, mesh, (P(ax), P(), P(), P()), P(ax)))(out, *args)
