r"""The finite ReLU MLP over a fixed input mapping, in both parameterizations.

:func:`mlp` builds the finite network whose infinite-width kernels are
:func:`ntkspec.nngp` / :func:`ntkspec.ntk` of the same :class:`~ntkspec.ReluMLP`, under
neural-tangents' ``stax`` conventions. With :math:`n_{l-1}` the input width of Dense
layer l (:math:`n_0 = 2m`, the feature dimension, then the hidden ``width``),
:math:`\sigma_w` = ``W_std`` and :math:`\sigma_b` = ``b_std``:

* ``"ntk"`` parameterization: :math:`W_{ij}, b_j \sim \mathcal N(0, 1)` and
  :math:`z = \frac{\sigma_w}{\sqrt{n_{l-1}}}\,h W + \sigma_b\, b`;
* ``"standard"``: :math:`W_{ij} \sim \mathcal N(0, \sigma_w^2/n_{l-1})`,
  :math:`b_j \sim \mathcal N(0, \sigma_b^2)` and :math:`z = h W + b`;

with :math:`h_0 = \gamma(v)` (the mapping, applied inside the network: its B and a are
constants, not parameters), :math:`h_l = \mathrm{ReLU}(z_l)` for l < L and output
:math:`f = z_L` (optionally a sigmoid of it). ``b_std=None`` means no bias parameter.
The paper's image networks use ``initialization="stax"``: jax ``stax`` defaults
(Glorot-normal weights, :math:`\mathcal N(0, 0.01^2)` biases) with :math:`z = hW + b`.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
    Novak et al., "Neural Tangents: Fast and Easy Infinite Neural Networks in Python",
    ICLR 2020, https://arxiv.org/abs/1912.02803.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS 2010.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from .._numerics import check_allocation, resolve_dtype
from .._validation import check_positive_int, is_traced
from ..kernels import ReluMLP, check_arch
from ..mappings import FourierMapping, IdentityMapping
from ._spec import Apply, Init, Layers, Spec

__all__ = ["Network", "mlp"]

_INITIALIZATIONS = ("arch", "stax")
_OUTPUTS = (None, "sigmoid")


class Network(NamedTuple):
    """A network as a pair of pure functions (like ``optax.GradientTransformation``).

    Attributes:
        init: ``init(key) -> params``, a pytree of arrays.
        apply: ``apply(params, v) -> (n, out_dim)`` on raw coordinates v, shape (n, d).
    """

    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, Any], jax.Array]


def _mapping_arrays(mapping):
    if isinstance(mapping, FourierMapping):
        if is_traced(mapping.B) or is_traced(mapping.a):
            raise TypeError("mapping must hold concrete arrays, not traced values")
        B = np.asarray(mapping.B, dtype=np.float64)
        a = np.asarray(mapping.a, dtype=np.float64)
        return B.shape[1], 2 * B.shape[0], B, a, 0.0
    if isinstance(mapping, IdentityMapping):
        if mapping.dim is None:
            raise ValueError(
                "an identity mapping used by a network needs its dim (input width): "
                "use ntkspec.mappings.identity(dim)"
            )
        return mapping.dim, mapping.dim, None, None, float(mapping.offset)
    raise TypeError(
        "mapping must be a ntkspec.FourierMapping or ntkspec.mappings.IdentityMapping; "
        f"got {type(mapping).__name__}"
    )


def mlp(
    arch: ReluMLP,
    mapping,
    width: int,
    *,
    out_dim: int = 1,
    output: str | None = None,
    initialization: str = "arch",
    dtype=None,
) -> Network:
    r"""A finite ReLU MLP of hidden width ``width`` over a fixed input mapping.

    ``arch.depth`` Dense layers (``depth - 1`` hidden layers of ``width`` units, then a
    readout of ``out_dim`` units), parameterized and initialised as ``arch`` says (see
    the module docstring), so that :func:`empirical_ntk` tends to
    ``ntkspec.ntk(arch, mapping(v1), mapping(v2))`` as ``width`` grows.

    Args:
        arch: a :class:`~ntkspec.ReluMLP`; if ``arch.width`` is set it must equal
            ``width``.
        mapping: a :class:`~ntkspec.FourierMapping` (B and a are fixed constants) or
            ``ntkspec.mappings.identity(dim)`` (raw coordinates minus its offset).
        width: hidden width (>= 1).
        out_dim: number of outputs (>= 1, e.g. 3 for RGB). The per-output kernel does
            not depend on it.
        output: None (linear readout) or ``"sigmoid"`` (the paper's image networks).
        initialization: ``"arch"`` (the parameterization of ``arch``) or ``"stax"`` (the
            official notebooks: jax ``stax`` defaults, Glorot-normal weights with
            variance :math:`2/(n_{\rm in}+n_{\rm out})`, biases
            :math:`\mathcal N(0, 0.01^2)`,
            :math:`z = hW + b`; ``arch.W_std``, ``b_std`` and ``parameterization`` are
            then unused).
        dtype: None (default): follow the inputs, as JAX sees them: ``apply``,
            :func:`empirical_ntk` and :func:`train` compute in float64 when given
            float64 inputs while JAX's x64 mode is on in the caller (``with
            jax.enable_x64(True):`` or the global flag), else in float32; ``init``
            makes float32 parameters. float32 or float64 fix the parameter and compute
            dtype whatever the inputs (float64 runs in a scoped x64 context).

    Returns:
        ``Network(init, apply)``: ``init(key)`` gives a list of ``{"W": (n_in, n_out),
        "b": (n_out,)}`` dicts (no ``"b"`` when ``b_std`` is None); ``apply(params, v)``
        maps v of shape (n, d) to (n, out_dim). Both are pure and jit-able.

    Raises:
        ValueError: ``width``/``out_dim`` < 1, ``arch.width`` != ``width``, unknown
            ``output``/``initialization``, an identity mapping without ``dim``.
        TypeError: ``arch`` is not a ReluMLP, ``mapping`` is not a mapping.

    Example:
        >>> import jax, numpy as np, ntkspec
        >>> arch, mapping = ntkspec.ReluMLP(3), ntkspec.mappings.basic(1)
        >>> net = ntkspec.networks.mlp(arch, mapping, 64)
        >>> params = net.init(jax.random.PRNGKey(0))
        >>> net.apply(params, np.zeros((5, 1))).shape
        (5, 1)
    """
    check_arch(arch)
    width = check_positive_int(width, "width")
    out_dim = check_positive_int(out_dim, "out_dim")
    if arch.width is not None and arch.width != width:
        raise ValueError(
            f"width must agree with arch.width when that is set; got width={width} and "
            f"arch.width={arch.width}"
        )
    if output not in _OUTPUTS:
        raise ValueError(f"output must be None or 'sigmoid'; got {output!r}")
    if initialization not in _INITIALIZATIONS:
        raise ValueError(
            f"initialization must be 'arch' or 'stax'; got {initialization!r}"
        )
    for name in ("W_std", "b_std"):
        if is_traced(getattr(arch, name)):
            raise TypeError(f"arch.{name} must be a concrete number for a network")
    follow = dtype is None
    dtype = np.dtype(np.float32) if follow else resolve_dtype(dtype)
    input_dim, n0, B, a, offset = _mapping_arrays(mapping)
    layers = Layers(
        widths=(n0,) + (width,) * (arch.depth - 1) + (out_dim,),
        W_std=float(arch.W_std),
        b_std=None if arch.b_std is None else float(arch.b_std),
        parameterization=arch.parameterization,
        initialization=initialization,
        output=output,
    )
    widths = layers.widths
    check_allocation(
        (sum((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1)),),
        argument=f"width = {width:,}",
        what=f"the parameters ({arch.depth} layers, {np.dtype(dtype)})",
        itemsize=np.dtype(dtype).itemsize,
    )
    spec = Spec(
        layers=layers,
        dtype=dtype,
        input_dim=input_dim,
        B=B,
        a=a,
        offset=offset,
        mapping=mapping,
        follow_inputs=follow,
    )
    return Network(Init(spec), Apply(spec))
