r"""Fourier-feature input mappings and their stationary profile.

A Fourier mapping with frequencies :math:`B \in \mathbb{R}^{m \times d}` and amplitudes
:math:`a \in \mathbb{R}^m` sends a point :math:`v \in \mathbb{R}^d` to

.. math::

    \gamma(v) = [a_1 \cos(2\pi b_1^\top v), \dots, a_m \cos(2\pi b_m^\top v),
                 a_1 \sin(2\pi b_1^\top v), \dots, a_m \sin(2\pi b_m^\top v)]
    \in \mathbb{R}^{2m}.

Its Gram is stationary: :math:`\gamma(v_1)^\top\gamma(v_2) = \tau(v_1 - v_2)` with the
profile :math:`\tau(\Delta) = \sum_j a_j^2 \cos(2\pi b_j^\top \Delta)`, and every point
has
the same squared norm :math:`S = \sum_j a_j^2`. For kernels the cancellation-free form
is
used: :math:`\sin^2(\theta/2) = (1 - \tau/S)/2 = \frac{1}{S}\sum_j a_j^2
\sin^2(\pi b_j^\top\Delta)`, where :math:`\theta` is the angle between the two features.

The constructors follow Tancik et al. (2020), section 5 and the official notebooks:
``basic`` (B = I), ``positional`` (axis-aligned log-spaced frequencies, in the paper's
form
:math:`\sigma^{j/m}` or the official code's form :math:`2^{\mathrm{linspace}(0, S, m)}
- 1`),
``gaussian`` (:math:`B_{ij} \sim \mathcal N(0, \sigma^2)`) and the 1D ``power_law``
(:math:`b_j = j`, :math:`a_j = j^{-p}`). ``identity`` is "no mapping": raw coordinates.

The ``from_*`` constructors take an encoding as written in nerfstudio, tiny-cuda-nn or
the official NeRF code and return the same features (up to their order, which does not
change the kernel) as a :class:`FourierMapping`, or, when the raw coordinates are kept
beside them (``include_input``), as a :class:`FourierInputMapping`.

References:
    Tancik, Srinivasan, Mildenhall, Fridovich-Keil, Raghavan, Singhal, Ramamoorthi,
    Barron & Ng, "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
    Rahimi & Recht, "Random Features for Large-Scale Kernel Machines", NIPS 2007.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ._numerics import check_allocation, x64_scope
from ._validation import (
    as_points,
    check_magnitude,
    check_positive_int,
    check_real,
    check_real_array,
    is_traced,
)

__all__ = [
    "FourierMapping",
    "IdentityMapping",
    "identity",
    "basic",
    "positional",
    "gaussian",
    "power_law",
    "FourierInputMapping",
    "from_nerfstudio_nerf",
    "from_nerfstudio_rff",
    "from_tcnn",
    "from_nerf_positional",
]


def _concrete(x) -> bool:
    return not is_traced(x) and isinstance(x, np.ndarray | jax.Array)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class FourierMapping:
    r"""The Fourier-feature map :math:`\gamma(v) = [a\cos 2\pi Bv, a\sin 2\pi Bv]`.

    An immutable value and a JAX pytree (``B`` and ``a`` are its leaves, so kernels can
    be
    differentiated with respect to them). Calling it maps points to features.

    Attributes:
        B: frequencies, shape (m, d), in cycles per unit length.
        a: amplitudes, shape (m,).

    Example:
        >>> import numpy as np, ntkspec
        >>> gamma = ntkspec.mappings.basic(1)
        >>> gamma(np.array([[0.25]])).round(12).tolist()
        [[0.0, 1.0]]
    """

    B: jax.Array | np.ndarray
    a: jax.Array | np.ndarray

    def __post_init__(self):
        B, a = self.B, self.a
        if isinstance(B, list | tuple):
            B = np.asarray(B)
        if isinstance(a, list | tuple):
            a = np.asarray(a)
        if not hasattr(B, "shape") or not hasattr(a, "shape"):
            return  # pytree unflattening with placeholders
        # Complex frequencies or amplitudes would be cast to real (a ComplexWarning).
        check_real_array(B, "B")
        check_real_array(a, "a")
        if isinstance(self.B, list | tuple):
            B = B.astype(np.float64)
            object.__setattr__(self, "B", B)
        if isinstance(self.a, list | tuple):
            a = a.astype(np.float64)
            object.__setattr__(self, "a", a)
        if B.ndim != 2 or B.shape[0] < 1 or B.shape[1] < 1:
            raise ValueError(f"B must have shape (m, d) with m, d >= 1; got {B.shape}")
        if a.shape != (B.shape[0],):
            raise ValueError(
                f"a must have shape (m,) = ({B.shape[0]},) to match B; got {a.shape}"
            )
        for name, arr in (("B", B), ("a", a)):
            if _concrete(arr) and not np.all(np.isfinite(np.asarray(arr))):
                raise ValueError(f"{name} must be finite; it contains NaN or inf")
        if _concrete(a) and not np.any(np.asarray(a) != 0):
            raise ValueError("a must have at least one non-zero amplitude")

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return int(self.B.shape[1])

    @property
    def num_freqs(self) -> int:
        """Number of frequencies m."""
        return int(self.B.shape[0])

    @property
    def out_dim(self) -> int:
        """Feature dimension 2m."""
        return 2 * self.num_freqs

    @property
    def norm_sq(self):
        r"""The squared feature norm :math:`S = \sum_j a_j^2`, equal for every point."""
        return (
            jnp.sum(jnp.asarray(self.a) ** 2)
            if is_traced(self.a)
            else float(np.sum(np.asarray(self.a, dtype=np.float64) ** 2))
        )

    @property
    def is_periodic(self) -> bool:
        """True when every frequency is an integer: the map is periodic on [0, 1)^d."""
        if not _concrete(self.B):
            return False
        B = np.asarray(self.B, dtype=np.float64)
        return bool(np.all(B == np.round(B)))

    @property
    def is_stationary(self) -> bool:
        """Fourier mappings always give stationary kernels."""
        return True

    def _check_size(self, n: int, cols: int, name: str, what: str, dtype) -> None:
        """Refuse, before allocating, an (n, cols) result (and its temporaries)."""
        check_allocation(
            (n, cols),
            argument=f"{n:,} points ({name}) x num_freqs = {self.num_freqs:,}",
            what=what,
            itemsize=np.dtype(dtype).itemsize,
            copies=2.5,  # the phases, cos and sin terms alive with the result
            alternative="Use fewer points (in blocks) or fewer frequencies.",
        )

    def _cycles(self, v, name: str, dtype):
        r"""``v`` as a ``dtype`` array whose phases :math:`B v` are finite and exact.

        With integer frequencies (:attr:`is_periodic`) the map has period 1 in every
        coordinate, so ``v mod 1`` (exact in floating point) gives the same features,
        finite for coordinates of any size. Otherwise a concrete ``v`` whose phases
        could reach :math:`2^{53}` cycles, where float64 keeps no fraction of a cycle
        (or overflow to inf and give NaN), is refused naming ``name``.
        """
        periodic = self.is_periodic
        if not is_traced(v):
            self.check_points(v, name, dtype)
            if periodic:
                v = np.mod(np.asarray(v, dtype=np.float64), 1.0)
            return jnp.asarray(v, dtype=dtype)
        v = jnp.asarray(v, dtype=dtype)
        return jnp.mod(v, 1.0) if periodic else v

    def check_points(self, v, name: str, dtype=np.float64) -> None:
        """Refuse concrete coordinates whose (non-integer) phases lose every digit.

        Raises:
            ValueError: naming ``name``, when the phases :math:`Bv` could reach
                :math:`2^{53}` cycles or a coordinate exceeds the largest ``dtype``.
        """
        if self.is_periodic or is_traced(v) or is_traced(self.B):
            return  # traced frequencies (e.g. under grad): nothing to check
        arr = np.asarray(v)
        big = float(np.max(np.abs(arr))) if arr.size else 0.0
        rows = np.sum(np.abs(np.asarray(self.B, dtype=np.float64)), axis=1)
        with np.errstate(over="ignore"):
            bound = float(np.max(rows)) * big
        if not bound < 2.0**53:
            raise ValueError(
                f"{name} has coordinates up to {big:.3g}: with these (non-integer) "
                f"frequencies the phases B v reach {bound:.3g} cycles, beyond 2**53, "
                "where float64 keeps no fraction of a cycle (the features would be "
                f"noise or NaN); rescale {name} (or use integer frequencies, which "
                "are periodic)"
            )
        limit = float(np.finfo(np.dtype(dtype)).max)
        if big > limit:
            raise ValueError(
                f"{name} has coordinates up to {big:.3g}, beyond the largest "
                f"{np.dtype(dtype)} ({limit:.3g}); rescale {name}"
            )

    def __call__(self, v, *, dtype=np.float64):
        """Map points ``v`` of shape (n, d) to features of shape (n, 2m) (float64)."""
        v = as_points(v, "v", dim=self.dim, dim_name="mapping's input dimension")
        self._check_size(v.shape[0], 2 * self.num_freqs, "v", "the features", dtype)
        with x64_scope(dtype):
            B = jnp.asarray(self.B, dtype=dtype)
            a = jnp.asarray(self.a, dtype=dtype)
            phase = 2.0 * jnp.pi * (self._cycles(v, "v", dtype) @ B.T)
            return jnp.concatenate(
                [a[None, :] * jnp.cos(phase), a[None, :] * jnp.sin(phase)], axis=-1
            )

    def tau(self, delta, *, dtype=np.float64):
        r"""The profile :math:`\tau(\Delta) = \sum_j a_j^2 \cos(2\pi b_j^\top\Delta)`.

        Args:
            delta: offsets, shape (n, d).
            dtype: float64 (default) or float32.

        Returns:
            Shape (n,), float64: :math:`\gamma(v + \Delta)^\top\gamma(v)` for any v.
        """
        delta = as_points(delta, "delta", dim=self.dim, dim_name="mapping's dimension")
        self._check_size(delta.shape[0], self.num_freqs, "delta", "the phases", dtype)
        with x64_scope(dtype):
            B = jnp.asarray(self.B, dtype=dtype)
            a2 = jnp.asarray(self.a, dtype=dtype) ** 2
            return (
                jnp.cos(2.0 * jnp.pi * (self._cycles(delta, "delta", dtype) @ B.T)) @ a2
            )

    def sin2_half_angle(self, delta, *, dtype=np.float64):
        r"""Cancellation-free :math:`\sin^2(\theta/2) = (1 - \tau(\Delta)/S)/2`.

        Computed as :math:`\frac1S\sum_j a_j^2 \sin^2(\pi b_j^\top\Delta)`: every term
        is
        :math:`O(\Delta^2)`, so it is exactly 0 at :math:`\Delta = 0` and accurate near
        it.

        Args:
            delta: offsets, shape (n, d).
            dtype: float64 (default) or float32.

        Returns:
            Shape (n,), values in [0, 1].
        """
        delta = as_points(delta, "delta", dim=self.dim, dim_name="mapping's dimension")
        self._check_size(delta.shape[0], self.num_freqs, "delta", "the phases", dtype)
        with x64_scope(dtype):
            B = jnp.asarray(self.B, dtype=dtype)
            a2 = jnp.asarray(self.a, dtype=dtype) ** 2
            s = jnp.sin(jnp.pi * (self._cycles(delta, "delta", dtype) @ B.T)) ** 2 @ a2
            return s / jnp.sum(a2)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class IdentityMapping:
    """No mapping: raw coordinates (optionally shifted), the paper's "no mapping".

    The resulting kernel is *not* stationary; spectra and solvers use their dense or
    matrix-free paths for it.

    Attributes:
        dim: input dimension, or None to accept any.
        offset: subtracted from every coordinate (the paper's 1D code used 0.5).
    """

    dim: int | None = dataclasses.field(default=None, metadata=dict(static=True))
    offset: float = dataclasses.field(default=0.0, metadata=dict(static=True))

    def __post_init__(self):
        if self.dim is not None:
            check_positive_int(self.dim, "dim")
        check_real(self.offset, "offset")

    @property
    def out_dim(self) -> int | None:
        """Feature dimension (equal to ``dim``)."""
        return self.dim

    def check_points(self, v, name: str, dtype=np.float64) -> None:
        """Refuse raw coordinates beyond the kernel's overflow limit."""
        check_magnitude(v, name, np.dtype(dtype))

    @property
    def is_periodic(self) -> bool:
        """Raw coordinates are not periodic."""
        return False

    @property
    def is_stationary(self) -> bool:
        """Raw coordinates do not give a stationary kernel."""
        return False

    def __call__(self, v, *, dtype=np.float64):
        """Return ``v - offset`` as float64, shape (n, d)."""
        v = as_points(v, "v", dim=self.dim, dim_name="mapping's input dimension")
        with x64_scope(dtype):
            return jnp.asarray(v, dtype=dtype) - self.offset


def identity(dim: int | None = None, *, offset: float = 0.0) -> IdentityMapping:
    """No mapping: the network sees the raw coordinates ``v - offset``."""
    return IdentityMapping(dim, float(offset))


def basic(dim: int) -> FourierMapping:
    r"""The basic mapping :math:`[\cos 2\pi v, \sin 2\pi v]`: B = I_d, a = 1."""
    dim = check_positive_int(dim, "dim")
    check_allocation(
        (dim, dim), argument=f"dim = {dim:,}", what="the frequencies B = I"
    )
    return FourierMapping(np.eye(dim), np.ones(dim))


def positional(
    dim: int,
    num_freqs: int,
    sigma: float | None = None,
    *,
    scale: float | None = None,
) -> FourierMapping:
    r"""Axis-aligned positional encoding with ``num_freqs`` frequencies per axis, a = 1.

    Give exactly one of:

    * ``sigma`` (the paper's form): :math:`b = \sigma^{j/m}`, j = 0..m-1, on each axis;
    * ``scale`` (the official code's "posenc_new", used for its Table 1):
      :math:`b = 2^{\mathrm{linspace}(0, S, m)} - 1` on each axis (the first frequency
      is
      0, a constant feature); S is about :math:`\log_2\sigma` (6 natural, 5 text
      images).

    Returns:
        A mapping with ``dim * num_freqs`` frequencies, axis 0's block first.
    """
    dim = check_positive_int(dim, "dim")
    num_freqs = check_positive_int(num_freqs, "num_freqs")
    if (sigma is None) == (scale is None):
        raise ValueError(
            "positional needs exactly one of sigma (paper) or scale (code)"
        )
    check_allocation(
        (dim * num_freqs, dim),
        argument=f"num_freqs = {num_freqs:,}",
        what=f"the frequencies B ({dim} axes)",
        copies=1.5,
    )
    if sigma is not None:
        check_real(sigma, "sigma", low=0.0, low_inclusive=False)
        freqs = float(sigma) ** (np.arange(num_freqs) / num_freqs)
    else:
        check_real(scale, "scale", low=0.0)
        freqs = 2.0 ** np.linspace(0.0, float(scale), num_freqs) - 1.0
    B = np.kron(np.eye(dim), freqs[:, None])
    return FourierMapping(B, np.ones(dim * num_freqs))


def gaussian(key_or_seed, dim: int, num_freqs: int, sigma: float) -> FourierMapping:
    r"""Random Fourier features: :math:`B_{ij} \sim \mathcal N(0, \sigma^2)`, a = 1.

    Args:
        key_or_seed: a ``jax.random`` key or an int seed. The draw is made in float64,
            so the same seed gives the same B whatever the caller's JAX config.
        dim: input dimension d.
        num_freqs: number of frequencies m (the paper uses 256).
        sigma: standard deviation of the frequencies (cycles per unit).
    """
    dim = check_positive_int(dim, "dim")
    num_freqs = check_positive_int(num_freqs, "num_freqs")
    check_real(sigma, "sigma", low=0.0, low_inclusive=False)
    if isinstance(key_or_seed, numbers.Integral) and not isinstance(key_or_seed, bool):
        if not -(2**63) <= int(key_or_seed) < 2**63:
            raise ValueError(
                "key_or_seed must be an int seed in [-2**63, 2**63) (a 64-bit seed); "
                f"got {key_or_seed}"
            )
        key = jax.random.PRNGKey(int(key_or_seed))
    elif isinstance(key_or_seed, jax.Array):
        key = key_or_seed
    else:
        raise TypeError(
            f"key_or_seed must be a jax.random key or an int; got {key_or_seed!r}"
        )
    # the draw, its host copy and B = sigma * z
    check_allocation(
        (num_freqs, dim),
        argument=f"num_freqs = {num_freqs:,}",
        what="the frequencies B",
        copies=3,
    )
    with x64_scope(np.float64):
        z = np.asarray(jax.random.normal(key, (num_freqs, dim), dtype=jnp.float64))
    with np.errstate(over="ignore"):
        B = float(sigma) * z
    if not np.all(np.isfinite(B)):
        raise ValueError(
            f"sigma = {float(sigma):g} is too large: sigma times the N(0, 1) draws "
            "overflows float64"
        )
    return FourierMapping(B, np.ones(num_freqs))


def power_law(num_freqs: int, p: float, *, normalize: bool = False) -> FourierMapping:
    r"""The paper's 1D dense mapping: :math:`b_j = j`, :math:`a_j = j^{-p}`, j = 1..m.

    ``p = inf`` keeps only :math:`b_1 = 1` (a = e_1, the basic mapping). With
    ``normalize=True`` the amplitudes are divided by :math:`\|a\|_2` so that
    :math:`\|\gamma(v)\| = 1`, as in the paper's 1D notebooks.
    """
    num_freqs = check_positive_int(num_freqs, "num_freqs")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or math.isnan(p):
        raise TypeError(f"p must be a real number or inf; got {p!r}")
    if p < 0:
        raise ValueError(f"p must be >= 0 (or inf); got {p}")
    check_allocation(
        (num_freqs,),
        argument=f"num_freqs = {num_freqs:,}",
        what="the frequencies and amplitudes",
        copies=4,
    )
    j = np.arange(1, num_freqs + 1, dtype=np.float64)
    a = (j == 1).astype(np.float64) if math.isinf(p) else j ** (-float(p))
    if normalize:
        a = a / np.linalg.norm(a)
    return FourierMapping(j[:, None], a)


# --------------------------------------------------------------------------------------
# Raw coordinates beside the features, and the frameworks' encodings (issue 29).
# --------------------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True, eq=False)
class FourierInputMapping:
    r"""Fourier features with the raw coordinates beside them (``include_input``).

    .. math::

        \gamma(v) = [a\cos 2\pi Bv,\; a\sin 2\pi Bv,\; c\,v] \in \mathbb{R}^{2m + d}.

    The feature inner product is :math:`\tau(v - v') + c^2\, v^\top v'`: the second
    term depends on the points themselves, not only on their offset, so the kernel is
    *not* stationary (``is_stationary`` is False). The dense and blocked paths
    (:func:`ntkspec.ntk` on ``mapping(v)``, :func:`ntkspec.kernel_regression` and
    :func:`ntkspec.spectrum` on point arrays) accept it; the FFT / Toeplitz grid paths
    refuse it with an error naming ``include_input``.

    Attributes:
        fourier: the Fourier part, a :class:`FourierMapping` (frequencies ``B`` of
            shape (m, d), amplitudes ``a`` of shape (m,)).
        input_scale: the factor c on the raw coordinates (1 in every framework).

    Example:
        >>> import numpy as np, ntkspec
        >>> gamma = ntkspec.mappings.FourierInputMapping(ntkspec.mappings.basic(1))
        >>> gamma(np.array([[0.25]])).round(12).tolist()
        [[0.0, 1.0, 0.25]]
    """

    fourier: FourierMapping
    input_scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.fourier, FourierMapping):
            raise TypeError(
                "fourier must be a ntkspec FourierMapping; got "
                f"{type(self.fourier).__name__}"
            )
        if isinstance(self.input_scale, str | bytes):
            raise TypeError(
                f"input_scale must be a real number; got {self.input_scale!r}"
            )
        if isinstance(self.input_scale, numbers.Number):  # not traced or a placeholder
            check_real(self.input_scale, "input_scale")
            if float(self.input_scale) == 0.0:
                raise ValueError(
                    "input_scale must be non-zero (with c = 0 use the FourierMapping "
                    "itself)"
                )

    @property
    def include_input(self) -> bool:
        """Always True: the raw coordinates are part of the features."""
        return True

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self.fourier.dim

    @property
    def num_freqs(self) -> int:
        """Number of frequencies m of the Fourier part."""
        return self.fourier.num_freqs

    @property
    def out_dim(self) -> int:
        """Feature dimension 2m + d."""
        return self.fourier.out_dim + self.dim

    @property
    def is_periodic(self) -> bool:
        """False: the raw coordinates are not periodic."""
        return False

    @property
    def is_stationary(self) -> bool:
        r"""False: :math:`c^2 v^\top v'` depends on the points, not their offset."""
        return False

    def __call__(self, v, *, dtype=np.float64):
        """Map points ``v`` of shape (n, d) to features of shape (n, 2m + d)."""
        v = as_points(v, "v", dim=self.dim, dim_name="mapping's input dimension")
        with x64_scope(dtype):
            raw = jnp.asarray(self.input_scale, dtype=dtype) * jnp.asarray(v, dtype)
            return jnp.concatenate([self.fourier(v, dtype=dtype), raw], axis=-1)


def _with_input(mapping: FourierMapping, include_input) -> FourierMapping:
    if not isinstance(include_input, bool | np.bool_):
        raise TypeError(f"include_input must be True or False; got {include_input!r}")
    return FourierInputMapping(mapping) if include_input else mapping


def _axis_aligned(dim: int, freqs: np.ndarray) -> FourierMapping:
    """Frequencies ``freqs`` on every axis, axis 0's block first, a = 1."""
    return FourierMapping(
        np.kron(np.eye(dim), freqs[:, None]), np.ones(dim * freqs.size)
    )


def from_nerfstudio_nerf(
    in_dim: int,
    num_frequencies: int,
    min_freq_exp: float,
    max_freq_exp: float,
    include_input: bool = False,
    implementation: str = "torch",
) -> FourierMapping | FourierInputMapping:
    r"""The encoding of nerfstudio's ``NeRFEncoding(in_dim, num_frequencies, ...)``.

    ``implementation="torch"`` (nerfstudio's own code) scales the inputs, meant to lie
    in [0, 1], by :math:`2\pi` and encodes, per axis,

    .. math::

        \sin(2\pi\, 2^{e_k} x),\ \cos(2\pi\, 2^{e_k} x),\qquad
        e = \mathrm{linspace}(\texttt{min\_freq\_exp}, \texttt{max\_freq\_exp},
        \texttt{num\_frequencies}),

    so :math:`b = 2^{e}` cycles per unit (integers, hence periodic on [0, 1), when the
    exponents are). ``implementation="tcnn"`` hands the input to tiny-cuda-nn's
    Frequency encoding unscaled (:func:`from_tcnn`): :math:`\sin(2^k\pi x)`, half those
    frequencies, :math:`b = 2^{k-1}`; nerfstudio allows it only with
    ``min_freq_exp = 0`` and ``max_freq_exp = num_frequencies - 1``, and so does this
    function. The same arguments thus give different kernels in the two
    implementations.

    nerfstudio orders the features [sin block, cos block, raw input]; a
    :class:`FourierMapping` gives [cos block, sin block] (each block axis-major, then
    frequency, as nerfstudio's): the kernel depends only on inner products, which the
    order does not change.

    Args:
        in_dim: input dimension d.
        num_frequencies: frequencies per axis, m.
        min_freq_exp: smallest exponent (nerfstudio's ``min_freq_exp``).
        max_freq_exp: largest exponent.
        include_input: keep the raw coordinates beside the features (a non-stationary
            :class:`FourierInputMapping`).
        implementation: "torch" (default) or "tcnn".

    Returns:
        A mapping with ``in_dim * num_frequencies`` frequencies and amplitudes 1.

    Raises:
        ValueError: a bad size or exponent, an unknown implementation, or "tcnn" with
            exponents other than 0 .. num_frequencies - 1.

    Example:
        >>> from ntkspec import mappings
        >>> mappings.from_nerfstudio_nerf(1, 3, 0.0, 2.0).B[:, 0].tolist()
        [1.0, 2.0, 4.0]
    """
    in_dim = check_positive_int(in_dim, "in_dim")
    num_frequencies = check_positive_int(num_frequencies, "num_frequencies")
    check_real(min_freq_exp, "min_freq_exp")
    check_real(max_freq_exp, "max_freq_exp")
    if implementation not in ("torch", "tcnn"):
        raise ValueError(
            f"implementation must be 'torch' or 'tcnn'; got {implementation!r}"
        )
    if implementation == "tcnn":
        if float(min_freq_exp) != 0 or float(max_freq_exp) != num_frequencies - 1:
            raise ValueError(
                "implementation='tcnn' needs min_freq_exp = 0 and max_freq_exp = "
                f"num_frequencies - 1 = {num_frequencies - 1} (as in nerfstudio); got "
                f"{min_freq_exp} and {max_freq_exp}"
            )
        mapping = from_tcnn(
            {"otype": "Frequency", "n_frequencies": num_frequencies}, in_dim
        )
        return _with_input(mapping, include_input)
    exps = np.linspace(float(min_freq_exp), float(max_freq_exp), num_frequencies)
    with np.errstate(over="ignore"):
        freqs = 2.0**exps
    if not np.all(np.isfinite(freqs)):
        raise ValueError(
            f"max_freq_exp = {max_freq_exp} is too large: 2**max_freq_exp overflows"
        )
    return _with_input(_axis_aligned(in_dim, freqs), include_input)


def from_nerfstudio_rff(
    in_dim: int,
    num_frequencies: int,
    scale: float,
    seed: int = 0,
    *,
    include_input: bool = False,
    b_matrix=None,
) -> FourierMapping | FourierInputMapping:
    r"""The encoding of nerfstudio's ``RFFEncoding(in_dim, num_frequencies, scale)``.

    nerfstudio draws ``b_matrix`` of shape (in_dim, num_frequencies) with entries
    :math:`\mathcal N(0, \text{scale}^2)` and encodes :math:`[\sin(2\pi x b),
    \cos(2\pi x b)]`: that is :func:`gaussian` with :math:`\sigma` = ``scale``,
    :math:`B` = ``b_matrix.T``. The draw here uses ``jax.random`` with ``seed``, not
    torch's generator: to reproduce a trained model's encoding exactly, pass its
    ``b_matrix`` (then ``seed`` is ignored). Features come as [cos, sin, raw input]
    instead of nerfstudio's [sin, cos, raw input], with the same kernel.

    Args:
        in_dim: input dimension d.
        num_frequencies: number of random frequencies m.
        scale: standard deviation of the frequencies (cycles per unit), > 0.
        seed: an int seed or a ``jax.random`` key.
        include_input: keep the raw coordinates beside the features.
        b_matrix: None, or nerfstudio's buffer of shape (in_dim, num_frequencies).

    Returns:
        A mapping with ``num_frequencies`` frequencies and amplitudes 1.

    Raises:
        ValueError: bad sizes, ``scale <= 0``, or a ``b_matrix`` of the wrong shape or
            with non-finite entries.
    """
    in_dim = check_positive_int(in_dim, "in_dim")
    num_frequencies = check_positive_int(num_frequencies, "num_frequencies")
    check_real(scale, "scale", low=0.0, low_inclusive=False)
    if b_matrix is None:
        mapping = gaussian(seed, in_dim, num_frequencies, float(scale))
    else:
        check_real_array(b_matrix, "b_matrix")
        b = np.asarray(b_matrix, dtype=np.float64)
        if b.shape != (in_dim, num_frequencies):
            raise ValueError(
                "b_matrix must have shape (in_dim, num_frequencies) = "
                f"({in_dim}, {num_frequencies}); got {b.shape}"
            )
        mapping = FourierMapping(b.T.copy(), np.ones(num_frequencies))
    return _with_input(mapping, include_input)


_TCNN_SUPPORTED = ("Frequency",)


def from_tcnn(config: dict, n_input_dims: int) -> FourierMapping:
    r"""tiny-cuda-nn's encoding from its config dict, e.g. ``{"otype": "Frequency"}``.

    The Frequency encoding (``n_frequencies`` = m, default 12) encodes each input
    dimension as :math:`\sin(2^k \pi x)`, :math:`\cos(2^k \pi x)`, k = 0..m-1: no factor
    2, so :math:`b = 2^{k-1}` cycles per unit (:math:`b_0 = 1/2`, not periodic on
    [0, 1)). tiny-cuda-nn interleaves the features per frequency, [sin, cos] pairs
    axis-major; a :class:`FourierMapping` gives [cos block, sin block], with the same
    kernel. Only ``"Frequency"`` is supported (grid, hash, one-blob and spherical
    harmonics encodings are not Fourier features); the ``otype`` is matched without
    regard to case, as tiny-cuda-nn does. This is the encoding alone (as nerfstudio
    uses it): when tiny-cuda-nn fuses it with a network it may pad the output with
    constant features to an aligned width, which adds a constant to the first layer's
    Gram and is not modelled here.

    Args:
        config: the encoding dict: ``otype`` and, optionally, ``n_frequencies``.
        n_input_dims: input dimension d.

    Returns:
        A :class:`FourierMapping` with ``n_input_dims * n_frequencies`` frequencies.

    Raises:
        TypeError: ``config`` is not a dict.
        ValueError: another ``otype``, an unknown key, or a bad ``n_frequencies``.

    Example:
        >>> from ntkspec import mappings
        >>> cfg = {"otype": "Frequency", "n_frequencies": 3}
        >>> mappings.from_tcnn(cfg, 1).B[:, 0].tolist()
        [0.5, 1.0, 2.0]
    """
    if not isinstance(config, dict):
        raise TypeError(
            f"config must be a tiny-cuda-nn encoding dict; got {type(config).__name__}"
        )
    n_input_dims = check_positive_int(n_input_dims, "n_input_dims")
    otype = config.get("otype")
    if not isinstance(otype, str) or otype.lower() not in (
        s.lower() for s in _TCNN_SUPPORTED
    ):
        raise ValueError(
            f"config['otype'] must be one of {_TCNN_SUPPORTED} (the tiny-cuda-nn "
            f"encodings that are Fourier features); got {otype!r}"
        )
    unknown = sorted(set(config) - {"otype", "n_frequencies"})
    if unknown:
        raise ValueError(
            f"config has keys {unknown} that the Frequency encoding does not take; "
            "allowed: 'otype', 'n_frequencies'"
        )
    m = check_positive_int(config.get("n_frequencies", 12), "config['n_frequencies']")
    return _axis_aligned(n_input_dims, 2.0 ** (np.arange(m, dtype=np.float64) - 1.0))


def from_nerf_positional(
    input_dims: int,
    multires: int,
    include_input: bool = True,
    log_sampling: bool = True,
) -> FourierMapping | FourierInputMapping:
    r"""The official NeRF code's embedder, ``get_embedder(multires)``.

    Mildenhall et al.'s ``Embedder`` encodes :math:`\sin(f x)`, :math:`\cos(f x)` with
    no :math:`\pi`: :math:`f = 2^{\mathrm{linspace}(0, L - 1, L)}` with
    ``log_sampling`` (the default), :math:`f = \mathrm{linspace}(1, 2^{L-1}, L)`
    without, L = ``multires``. In cycles per unit, :math:`b = f / (2\pi)`: never
    periodic on [0, 1). The raw input comes first in NeRF's features and
    ``include_input`` is on by default there (and here); the features here are
    [cos block, sin block, raw input], with the same kernel.

    Args:
        input_dims: input dimension d (3 for positions).
        multires: number of frequencies L (10 for positions, 4 for view directions).
        include_input: keep the raw coordinates (NeRF's default True).
        log_sampling: log-spaced (True) or linearly spaced frequencies.

    Returns:
        A mapping with ``input_dims * multires`` frequencies and amplitudes 1.

    References:
        Mildenhall, Srinivasan, Tancik, Barron, Ramamoorthi & Ng, "NeRF: Representing
        Scenes as Neural Radiance Fields for View Synthesis", ECCV 2020,
        https://arxiv.org/abs/2003.08934.
    """
    input_dims = check_positive_int(input_dims, "input_dims")
    multires = check_positive_int(multires, "multires")
    if not isinstance(log_sampling, bool | np.bool_):
        raise TypeError(f"log_sampling must be True or False; got {log_sampling!r}")
    if multires > 1000:
        raise ValueError(
            f"multires must be at most 1000 (2**(multires-1)); got {multires}"
        )
    top = float(multires - 1)
    if log_sampling:
        f = 2.0 ** np.linspace(0.0, top, multires)
    else:
        f = np.linspace(1.0, 2.0**top, multires)
    return _with_input(_axis_aligned(input_dims, f / (2.0 * np.pi)), include_input)


def check_mapping(mapping) -> None:
    """A Fourier, Fourier-with-input or identity mapping (TypeError naming it)."""
    if not isinstance(mapping, FourierMapping | FourierInputMapping | IdentityMapping):
        raise TypeError(
            "mapping must be a ntkspec FourierMapping, FourierInputMapping or "
            "IdentityMapping (e.g. "
            "ntkspec.mappings.gaussian(...) or identity()); got "
            f"{type(mapping).__name__}"
        )


def check_stationary_mapping(mapping, grid) -> None:
    """A concrete FourierMapping whose input dimension is the grid's."""
    if getattr(mapping, "include_input", False):
        raise TypeError(
            "the grid (FFT / Toeplitz) operators need a stationary kernel, and a "
            "mapping with include_input (raw coordinates beside the Fourier features) "
            "is not stationary: pass point arrays (grid.points()) for the dense or "
            "blocked path, or build the encoding with include_input=False"
        )
    if not isinstance(mapping, FourierMapping):
        raise TypeError(
            "mapping must be a FourierMapping (a stationary kernel) for the grid "
            f"operators; got {type(mapping).__name__}. Raw coordinates (no mapping) "
            "give no stationary kernel: use the dense path (ntkspec.ntk / "
            "ntkspec.spectrum on grid.points())."
        )
    if mapping.dim != grid.dim:
        raise ValueError(
            f"mapping has input dimension {mapping.dim} but grid has dimension "
            f"{grid.dim} (shape {grid.shape}); mapping.dim must equal grid.dim"
        )
    if is_traced(mapping.B) or is_traced(mapping.a):
        raise TypeError(
            "mapping must hold concrete frequencies and amplitudes for the grid "
            "operators (they decide periodicity and the FFT sizes); got traced arrays"
        )
