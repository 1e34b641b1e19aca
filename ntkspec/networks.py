r"""Finite ReLU MLPs over a fixed Fourier mapping, their empirical NTK, optax training.

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

The empirical NTK of output k is

.. math::

    \hat\Theta(v, v') = \sum_p \frac{\partial f_k(v)}{\partial p}
        \frac{\partial f_k(v')}{\partial p}
    = \sum_{l=1}^{L} \big(c_l^2\, h_{l-1}(v)^\top h_{l-1}(v') + s_l^2\big)\,
      \delta_l(v)^\top \delta_l(v'),

with :math:`\delta_l = \partial f_k/\partial z_l`,
:math:`c_l = \sigma_w/\sqrt{n_{l-1}}`, :math:`s_l = \sigma_b` ("ntk") or
:math:`c_l = 1`, :math:`s_l = 1` ("standard"; 0 without a bias). As the width grows it
tends to ``ntkspec.ntk(arch, mapping(v), mapping(v'))`` with relative fluctuations of
order :math:`\text{width}^{-1/2}` ("ntk"; in "standard" the limit is the kernel of
``arch`` with ``width`` declared, which grows with the width).

Training (:func:`train`) is full-batch: Adam (the paper) or plain gradient descent (the
theory comparisons, ``optimizer="gd"``) on neural-tangents' loss

.. math::

    \mathcal L = \frac{1}{2\,N_y}\sum_{i}\|f(v_i) - y_i\|^2,\qquad N_y = \text{y.size},

the normalisation of :func:`ntkspec.gd_dynamics` (and 0.5 x the mean squared error
logged by the official notebooks). :func:`train_ensemble` trains several such networks
at once (e.g. one per mapping, Table 1's sweep): their first-layer inputs are padded
with zero features to a common width, the matching rows of :math:`W_1` start at 0 and
get zero gradients, so they stay 0 under Adam or GD and every member follows its own
:func:`train` run; the members are ``vmap``-ed and, with a mesh, split over the
devices. Steps are jit-compiled and run in chunks by
``lax.scan``; a float64 network (``dtype=np.float64``) trains in a scoped x64 context.
float32 accuracy floor: relative ~1e-6 per operation; empirical NTKs in float32 agree
with float64 to ~1e-5 relative.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, https://arxiv.org/abs/1902.06720.
    Novak et al., "Neural Tangents: Fast and Easy Infinite Neural Networks in Python",
    ICLR 2020, https://arxiv.org/abs/1912.02803.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
    networks", AISTATS 2010.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._numerics import resolve_dtype, x64_scope
from ._validation import (
    as_points,
    check_positive_int,
    check_real,
    is_traced,
)
from .kernels import ReluMLP, check_arch
from .mappings import FourierMapping, IdentityMapping
from .sharding import batch_rows, check_mesh, data_parallel, shard_batches
from .sharding import train_ensemble as _sharded_ensemble

__all__ = [
    "Network",
    "mlp",
    "empirical_ntk",
    "mse_loss",
    "psnr",
    "TrainHistory",
    "TrainResult",
    "train",
    "EnsembleResult",
    "train_ensemble",
]

_INITIALIZATIONS = ("arch", "stax")
_OUTPUTS = (None, "sigmoid")
_IMPLEMENTATIONS = ("jacobian", "structured")
#: Bias initialisation scale of jax ``stax.Dense`` (``normal(1e-2)``).
_STAX_BIAS_STD = 1e-2


class Network(NamedTuple):
    """A network as a pair of pure functions (like ``optax.GradientTransformation``).

    Attributes:
        init: ``init(key) -> params``, a pytree of arrays.
        apply: ``apply(params, v) -> (n, out_dim)`` on raw coordinates v, shape (n, d).
    """

    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, Any], jax.Array]


# --------------------------------------------------------------------------------------
# The MLP.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layers:
    """The Dense/ReLU stack (hashable by value: one compiled step, many mappings)."""

    widths: tuple[int, ...]  # (n_0 = feature dim, width, ..., width, out_dim)
    W_std: float
    b_std: float | None
    parameterization: str
    initialization: str
    output: str | None

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def has_bias(self) -> bool:
        return self.initialization == "stax" or self.b_std is not None

    def weight_scale(self, layer: int) -> float:
        """c_l: the constant multiplying h W in layer ``layer`` (0-based)."""
        if self.initialization == "arch" and self.parameterization == "ntk":
            return float(self.W_std) / math.sqrt(self.widths[layer])
        return 1.0

    def bias_scale(self) -> float:
        """s_l: the constant multiplying b."""
        if not self.has_bias:
            return 0.0
        if self.initialization == "arch" and self.parameterization == "ntk":
            return float(self.b_std)
        return 1.0

    def __call__(self, params, x, *, keep: bool = False):
        """Apply the stack to features x; with ``keep`` also return [(h_{l-1}, z_l)]."""
        h = x
        kept = []
        s_b = self.bias_scale()
        for layer, p in enumerate(params):
            z = self.weight_scale(layer) * (h @ p["W"])
            if "b" in p:
                z = z + s_b * p["b"][None, :]
            if keep:
                kept.append((h, z))
            h = jax.nn.relu(z) if layer < self.depth - 1 else z
        if self.output == "sigmoid":
            h = jax.nn.sigmoid(h)
        return (h, kept) if keep else h


@dataclasses.dataclass(frozen=True, eq=False)
class _Spec:
    """Everything that fixes the function computed by an :func:`mlp` network."""

    layers: _Layers
    dtype: np.dtype
    input_dim: int
    B: np.ndarray | None  # (m, d) frequencies, None for raw coordinates
    a: np.ndarray | None  # (m,) amplitudes
    offset: float  # raw-coordinate shift (IdentityMapping)
    mapping: object = None  # the FourierMapping / IdentityMapping itself
    follow_inputs: bool = False  # mlp(dtype=None): compute in the inputs' dtype
    _variants: dict = dataclasses.field(default_factory=dict, repr=False)

    def resolve(self, v) -> _Spec:
        """The spec to compute ``v`` with: itself, or its variant in v's dtype.

        Variants are memoised, so each is one object (a stable jit cache key).
        """
        if not self.follow_inputs:
            return self
        dt = _input_dtype(v)
        if dt == self.dtype:
            return self
        if dt not in self._variants:
            self._variants[dt] = dataclasses.replace(
                self, dtype=dt, follow_inputs=False, _variants={}
            )
        return self._variants[dt]

    def check_points(self, v, name: str = "v"):
        if isinstance(v, list | tuple):
            v = np.asarray(v)
        if not hasattr(v, "shape"):
            raise TypeError(f"{name} must be an array of shape (n, {self.input_dim})")
        if v.ndim != 2 or v.shape[1] != self.input_dim:
            raise ValueError(
                f"{name} must have shape (n, {self.input_dim}) to match the mapping's "
                f"input dimension {self.input_dim}; got shape {tuple(v.shape)}"
            )
        return as_points(v, name, dim=self.input_dim)

    def features(self, v):
        """The input map, by the mapping itself: gamma(v) (n, 2m) or v - offset."""
        return self.mapping(jnp.asarray(v, dtype=self.dtype), dtype=self.dtype)

    def forward(self, params, v):
        return self.layers(params, self.features(v))


@dataclasses.dataclass(frozen=True, eq=False)
class _Init:
    spec: _Spec

    def __call__(self, key):
        spec, layers = self.spec, self.spec.layers
        if not isinstance(key, jax.Array):
            raise TypeError(f"key must be a jax.random key; got {type(key).__name__}")
        with x64_scope(spec.dtype):
            keys = jax.random.split(key, 2 * layers.depth)
            params = []
            for layer in range(layers.depth):
                n_in, n_out = layers.widths[layer], layers.widths[layer + 1]
                kw, kb = keys[2 * layer], keys[2 * layer + 1]
                p = {}
                if layers.initialization == "stax":
                    p["W"] = jax.nn.initializers.glorot_normal()(
                        kw, (n_in, n_out), spec.dtype
                    )
                    p["b"] = _STAX_BIAS_STD * jax.random.normal(
                        kb, (n_out,), spec.dtype
                    )
                elif layers.parameterization == "ntk":
                    p["W"] = jax.random.normal(kw, (n_in, n_out), spec.dtype)
                    if layers.b_std is not None:
                        p["b"] = jax.random.normal(kb, (n_out,), spec.dtype)
                else:
                    std = layers.W_std / math.sqrt(n_in)
                    p["W"] = std * jax.random.normal(kw, (n_in, n_out), spec.dtype)
                    if layers.b_std is not None:
                        p["b"] = layers.b_std * jax.random.normal(
                            kb, (n_out,), spec.dtype
                        )
                params.append(p)
            return params


@dataclasses.dataclass(frozen=True, eq=False)
class _Apply:
    spec: _Spec

    def __call__(self, params, v):
        spec = self.spec
        traced = is_traced(v) or any(
            is_traced(x) for x in jax.tree_util.tree_leaves(params)
        )
        if traced:
            if v.ndim != 2 or v.shape[1] != spec.input_dim:
                raise ValueError(
                    f"v must have shape (n, {spec.input_dim}) to match the mapping's "
                    f"input dimension; got shape {tuple(v.shape)}"
                )
            return spec.resolve(v).forward(params, v)
        v = spec.check_points(v)
        spec = spec.resolve(v)
        with x64_scope(spec.dtype):
            params = jax.tree_util.tree_map(
                lambda a: jnp.asarray(a, spec.dtype), params
            )
            return _apply_jit(spec, params, v)


@functools.partial(jax.jit, static_argnums=0)
def _apply_jit(spec, params, v):
    return spec.forward(params, v)


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
    layers = _Layers(
        widths=(n0,) + (width,) * (arch.depth - 1) + (out_dim,),
        W_std=float(arch.W_std),
        b_std=None if arch.b_std is None else float(arch.b_std),
        parameterization=arch.parameterization,
        initialization=initialization,
        output=output,
    )
    spec = _Spec(
        layers=layers,
        dtype=dtype,
        input_dim=input_dim,
        B=B,
        a=a,
        offset=offset,
        mapping=mapping,
        follow_inputs=follow,
    )
    return Network(_Init(spec), _Apply(spec))


def _input_dtype(v) -> np.dtype:
    """float64 for float64 inputs when JAX's x64 is on in the caller, else float32."""
    dt = np.dtype(getattr(v, "dtype", np.float64))
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.dtype(np.float64)
    return np.dtype(np.float64 if dt == np.float64 and x64 else np.float32)


def _spec_of(net) -> _Spec | None:
    apply = getattr(net, "apply", None)
    return apply.spec if isinstance(apply, _Apply) else None


def _compute_dtype(spec, params) -> np.dtype:
    """The network's own dtype for :func:`mlp` networks, else the parameters' dtype."""
    return spec.dtype if spec is not None else _params_dtype(params)


def _params_dtype(params) -> np.dtype:
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params must contain at least one array")
    return np.dtype(np.result_type(*[leaf.dtype for leaf in leaves]))


# --------------------------------------------------------------------------------------
# Empirical NTK.
# --------------------------------------------------------------------------------------


def _jacobian_rows(apply, params, v, output):
    """Per-point flattened Jacobians of f_k, (n, P); (n, out, P) if output is None."""

    def f(p, x):
        return apply(p, x[None, :])[0]

    jac = jax.vmap(jax.jacrev(f), in_axes=(None, 0))(params, v)  # leaves (n, out, ...)
    leaves = [
        leaf.reshape(leaf.shape[0], leaf.shape[1], -1)
        for leaf in jax.tree_util.tree_leaves(jac)
    ]
    j = jnp.concatenate(leaves, axis=-1)
    return j if output is None else j[:, output, :]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _ntk_block_jacobian(apply, params, v1, v2, output):
    j1 = _jacobian_rows(apply, params, v1, output)
    j2 = _jacobian_rows(apply, params, v2, output)
    if output is None:  # mean over outputs of the per-output kernels
        return jnp.einsum("iop,jop->ij", j1, j2) / j1.shape[1]
    return j1 @ j2.T


def _backward_signals(layers: _Layers, params, kept, output):
    """delta_l = d f_k / d z_l for each layer, shapes (n, n_l); from the output down."""
    deltas = [None] * layers.depth
    z_last = kept[-1][1]
    n = z_last.shape[0]
    d = jax.nn.one_hot(jnp.full((n,), output), layers.widths[-1], dtype=z_last.dtype)
    if layers.output == "sigmoid":
        s = jax.nn.sigmoid(z_last)
        d = d * s * (1.0 - s)
    deltas[-1] = d
    for layer in range(layers.depth - 1, 0, -1):
        back = layers.weight_scale(layer) * (d @ params[layer]["W"].T)
        d = back * (kept[layer - 1][1] > 0).astype(back.dtype)
        deltas[layer - 1] = d
    return deltas


@functools.partial(jax.jit, static_argnums=(0, 4))
def _ntk_block_structured(spec: _Spec, params, v1, v2, output):
    layers = spec.layers
    _, kept1 = layers(params, spec.features(v1), keep=True)
    _, kept2 = layers(params, spec.features(v2), keep=True)
    outs = range(layers.widths[-1]) if output is None else (output,)
    total = jnp.zeros((v1.shape[0], v2.shape[0]), spec.dtype)
    s_b2 = layers.bias_scale() ** 2
    for k in outs:
        d1 = _backward_signals(layers, params, kept1, k)
        d2 = _backward_signals(layers, params, kept2, k)
        for layer in range(layers.depth):
            c2 = layers.weight_scale(layer) ** 2
            hh = c2 * (kept1[layer][0] @ kept2[layer][0].T) + s_b2
            total = total + hh * (d1[layer] @ d2[layer].T)
    return total / len(outs)


def empirical_ntk(
    net: Network,
    params,
    v1,
    v2=None,
    *,
    output: int | None = None,
    implementation: str = "jacobian",
    batch_size: int | None = None,
    max_batch_bytes: float = 2**28,
):
    r"""The empirical NTK :math:`\hat\Theta = J(v_1) J(v_2)^\top` of a finite network.

    :math:`J(v)` is the Jacobian of one output with respect to all parameters, so the
    result is the kernel that ``ntkspec.ntk(arch, mapping(v1), mapping(v2))`` is the
    infinite-width limit of (same scale, no division by the width; see the module
    docstring for the per-layer form).

    Args:
        net: a :class:`Network` (any ``apply(params, v)``; ``"structured"`` needs one
            made by :func:`mlp`).
        params: its parameters.
        v1: raw coordinates, shape (n1, d).
        v2: raw coordinates, shape (n2, d); None means ``v1``.
        output: which output k; None (default) averages the per-output kernels over the
            outputs (neural-tangents' ``trace_axes=(-1,)``), the same for one output.
        implementation: ``"jacobian"`` (default: Jacobian contraction, batched) or
            ``"structured"`` (the exact per-layer form above, for :func:`mlp`
            networks only: costs a forward and backward pass per output, no Jacobian is
            formed, so it is the way at widths of thousands).
        batch_size: points per block (default: as many as keep one block's Jacobian
            under ``max_batch_bytes``).
        max_batch_bytes: memory bound for one block's Jacobian (default 256 MiB).

    Returns:
        ``jax.Array`` of shape (n1, n2) in the network's dtype (for :func:`mlp` with
        ``dtype=None``, the inputs' dtype as JAX sees it), else the parameters'.

    Raises:
        ValueError: bad shapes, an output index out of range, an unknown implementation.
        TypeError: ``"structured"`` for a network not made by :func:`mlp`.
    """
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be 'jacobian' or 'structured'; got {implementation!r}"
        )
    if not isinstance(net, Network) and not (
        hasattr(net, "init") and hasattr(net, "apply")
    ):
        raise TypeError(f"net must be a Network(init, apply); got {type(net).__name__}")
    spec = _spec_of(net)
    if implementation == "structured" and spec is None:
        raise TypeError("implementation='structured' needs a network made by mlp()")
    if spec is not None:
        v1 = spec.check_points(v1, "v1")
        v2 = v1 if v2 is None else spec.check_points(v2, "v2")
        spec = spec.resolve(v1)
        out_dim = spec.layers.widths[-1]
    else:
        v1 = as_points(v1, "v1")
        v2 = v1 if v2 is None else as_points(v2, "v2", dim=v1.shape[1])
        out_dim = None
    if output is not None:
        output = check_positive_int(output, "output", minimum=0)
        if out_dim is not None and output >= out_dim:
            raise ValueError(f"output must be < out_dim = {out_dim}; got {output}")
    dtype = _compute_dtype(spec, params)
    n_params = sum(
        int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params)
    )
    if batch_size is None:
        if implementation == "jacobian":
            n_out = (out_dim or 1) if output is None else 1
            per_point = n_params * dtype.itemsize * n_out
            batch_size = max(1, int(max_batch_bytes // max(per_point, 1)))
        else:
            widest = max(spec.layers.widths)
            batch_size = max(1, int(max_batch_bytes // (8 * widest * dtype.itemsize)))
    else:
        batch_size = check_positive_int(batch_size, "batch_size")
    n1, n2 = v1.shape[0], v2.shape[0]
    with x64_scope(dtype):
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
        a1 = jnp.asarray(v1, dtype)
        a2 = jnp.asarray(v2, dtype)
        b1 = min(batch_size, n1)
        b2 = min(batch_size, n2)
        p1, p2 = _pad_rows(a1, b1), _pad_rows(a2, b2)  # equal blocks: one compilation
        rows = []
        for i in range(0, n1, b1):
            cols = []
            for j in range(0, n2, b2):
                x1, x2 = p1[i : i + b1], p2[j : j + b2]
                if implementation == "structured":
                    blk = _ntk_block_structured(spec, params, x1, x2, output)
                else:
                    blk = _ntk_block_jacobian(net.apply, params, x1, x2, output)
                cols.append(blk)
            row = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=1)
            rows.append(row[:, :n2])
        out = rows[0] if len(rows) == 1 else jnp.concatenate(rows, axis=0)
        return out[:n1]


def _pad_rows(x, block: int):
    """Repeat the last row so that the row count is a multiple of ``block``."""
    pad = -x.shape[0] % block
    if pad == 0:
        return x
    return jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad, x.shape[1]))])


# --------------------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------------------


def mse_loss(f, y):
    r"""neural-tangents' loss :math:`\sum (f - y)^2 / (2\,\mathrm{y.size})`."""
    return 0.5 * jnp.mean((f - y) ** 2)


def psnr(f, y) -> float:
    r"""Peak signal-to-noise ratio :math:`-10\log_{10}\mathrm{MSE}` (data in [0, 1]).

    :func:`ntkspec.data.psnr` after broadcasting ``f`` against ``y``.
    """
    from .data import psnr as data_psnr

    f, y = np.broadcast_arrays(np.asarray(f, np.float64), np.asarray(y, np.float64))
    return data_psnr(f, y)


@dataclasses.dataclass(frozen=True)
class TrainHistory:
    r"""What :func:`train` recorded.

    Attributes:
        steps: (T,) the step counts at which evaluations were made (0 first, the last
            step last).
        losses: name -> (T,) loss :math:`\sum(f-y)^2/(2\,\mathrm{y.size})` on each
            evaluation set (``"train"`` always present).
        outputs: name -> (T, n, out_dim) network outputs at those steps, or None when
            ``record_outputs`` was False.
        step_losses: (steps,) training loss before each update.
        device: the device the run used, e.g. ``"cpu"`` or ``"gpu"``.
        stats: wall-clock timings, in seconds: ``"seconds"`` (the whole run,
            compilation included), ``"compile_seconds"`` (the first chunk: compilation
            plus its steps) and ``"chunk_seconds"`` ((number of chunks,) array, each
            chunk of steps, evaluation excluded; the first includes compilation unless
            it was cached).

    The attributes ``seconds``, ``compile_seconds`` and ``chunk_seconds`` are
    deprecated aliases of the ``stats`` entries (a ``DeprecationWarning``; to be
    removed in the next minor release).
    """

    steps: np.ndarray
    losses: dict
    outputs: dict | None
    step_losses: np.ndarray
    device: str
    stats: dict

    def _deprecated_stat(self, name: str):
        warnings.warn(
            f"TrainHistory.{name} is deprecated; use TrainHistory.stats[{name!r}]",
            DeprecationWarning,
            stacklevel=3,
        )
        return self.stats[name]

    @property
    def seconds(self) -> float:
        """Deprecated alias of ``stats["seconds"]``."""
        return self._deprecated_stat("seconds")

    @property
    def compile_seconds(self) -> float:
        """Deprecated alias of ``stats["compile_seconds"]``."""
        return self._deprecated_stat("compile_seconds")

    @property
    def chunk_seconds(self) -> np.ndarray:
        """Deprecated alias of ``stats["chunk_seconds"]``."""
        return self._deprecated_stat("chunk_seconds")


class TrainResult(NamedTuple):
    """The final state of :func:`train`: an explicit pytree plus the history."""

    params: Any
    opt_state: Any
    history: TrainHistory


def _optimizer(optimizer, learning_rate):
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate must be None when optimizer is an optax transformation "
                "(it carries its own)"
            )
        return optimizer
    if optimizer not in ("adam", "gd", "sgd"):
        raise ValueError(
            "optimizer must be 'adam', 'gd' (= 'sgd', full-batch gradient descent) or "
            "an "
            f"optax.GradientTransformation; got {optimizer!r}"
        )
    if learning_rate is None:
        raise ValueError("learning_rate is required for optimizer " + repr(optimizer))
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    return _named_optimizer(optimizer, float(learning_rate))


@functools.lru_cache(maxsize=64)
def _named_optimizer(name: str, learning_rate: float):
    # One transformation object per (name, rate), so repeated runs reuse compiled steps.
    return optax.adam(learning_rate) if name == "adam" else optax.sgd(learning_rate)


def _check_targets(y, n: int, name: str):
    if isinstance(y, list | tuple):
        y = np.asarray(y)
    if not hasattr(y, "shape"):
        raise TypeError(f"{name} must be an array of shape (n, out_dim)")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n}, out_dim) to match its inputs; got "
            f"{tuple(y.shape)}"
        )
    if not is_traced(y) and not bool(np.all(np.isfinite(np.asarray(y)))):
        raise ValueError(f"{name} must be finite")
    return y


def _full_batch_value_and_grad(forward, params, batches):
    """Loss sum(f - y)^2 / (2 y.size) and its gradient, accumulated over row blocks.

    ``batches = (x, y, mask, scale)`` with x (k, b, d), y (k, b, c), mask (k, b) (0 on
    padding rows) and scale = 1 / (2 y.size): the exact full-batch gradient, computed a
    block at a time so that the activations stay in cache (on CPU much faster).
    """
    xb, yb, mb, scale = batches

    def block_loss(p, x, y, m):
        r = forward(p, x) - y
        return scale * jnp.sum(m[:, None] * r * r)

    if xb.shape[0] == 1:
        return jax.value_and_grad(block_loss)(params, xb[0], yb[0], mb[0])

    def body(acc, blk):
        val = jax.value_and_grad(block_loss)(params, *blk)
        return jax.tree_util.tree_map(jnp.add, acc, val), None

    zero = jax.tree_util.tree_map(jnp.zeros_like, (scale, params))
    total, _ = jax.lax.scan(body, zero, (xb, yb, mb))
    return total


@functools.partial(jax.jit, static_argnums=(0, 1, 5, 6), donate_argnums=(2, 3))
def _run_chunk(forward, opt, params, opt_state, batches, length, mesh=None):
    value_and_grad = _full_batch_value_and_grad
    if mesh is not None:  # rows of every block split over the mesh, psum'd
        value_and_grad = data_parallel(value_and_grad, mesh)

    def body(carry, _):
        p, s = carry
        loss, grads = value_and_grad(forward, p, batches)
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    (params, opt_state), losses = jax.lax.scan(
        body, (params, opt_state), None, length=length
    )
    return params, opt_state, losses


def _row_blocks(x, y, block_rows: int):
    """Pad to a multiple of ``block_rows`` and reshape to (k, block_rows, ...)."""
    n = x.shape[0]
    k = -(-n // block_rows)
    pad = k * block_rows - n
    mask = jnp.ones((n,), x.dtype)
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
        y = jnp.concatenate([y, jnp.zeros((pad,) + y.shape[1:], y.dtype)])
        mask = jnp.concatenate([mask, jnp.zeros((pad,), x.dtype)])
    scale = jnp.asarray(0.5 / (n * y.shape[1]), x.dtype)
    return (
        x.reshape(k, block_rows, *x.shape[1:]),
        y.reshape(k, block_rows, *y.shape[1:]),
        mask.reshape(k, block_rows),
        scale,
    )


@functools.partial(jax.jit, static_argnums=0)
def _eval_outputs(forward, params, x):
    return forward(params, x)


@dataclasses.dataclass(frozen=True)
class _CoordinateForward:
    apply: Callable

    def __call__(self, params, v):
        return self.apply(params, v)


def _check_train_sets(spec, v_train, y_train, eval_sets) -> dict:
    """``{"train": (v, y), name: (v, y), ...}`` checked against the network."""
    check = (
        spec.check_points if spec is not None else (lambda v, name: as_points(v, name))
    )
    sets = {"train": (v_train, y_train)}
    for name, pair in (eval_sets or {}).items():
        if name == "train":
            raise ValueError("eval_sets must not use the name 'train' (it is built in)")
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"eval_sets[{name!r}] must be a pair (v, y)")
        sets[name] = tuple(pair)
    checked = {}
    for name, (v, y) in sets.items():
        label = "v_train" if name == "train" else f"eval_sets[{name!r}] v"
        v = check(v, label)
        y = _check_targets(
            y, v.shape[0], "y_train" if name == "train" else f"eval_sets[{name!r}] y"
        )
        if spec is not None and y.shape[1] != spec.layers.widths[-1]:
            raise ValueError(
                f"targets have {y.shape[1]} columns but the network has out_dim = "
                f"{spec.layers.widths[-1]}"
            )
        checked[name] = (v, y)
    return checked


def _device_data(spec, checked: dict, dtype) -> dict:
    """Features (the mapping evaluated once) and targets as device arrays."""
    data = {}
    for name, (v, y) in checked.items():
        v = jnp.asarray(v, dtype)
        x = spec.features(v) if spec is not None else v
        data[name] = (jax.block_until_ready(x), jnp.asarray(y, dtype))
    return data


def train(
    net: Network,
    params,
    v_train,
    y_train,
    *,
    steps: int,
    learning_rate: float | None = None,
    optimizer="adam",
    eval_sets: Mapping[str, tuple] | None = None,
    eval_every: int | None = None,
    record_outputs: bool = False,
    progress: bool | None = None,
    opt_state=None,
    block_rows: int | None = None,
    mesh=None,
) -> TrainResult:
    r"""Full-batch training of ``net`` on :math:`\sum(f - y)^2/(2\,\mathrm{y.size})`.

    The steps run jit-compiled in chunks of ``eval_every`` steps (``lax.scan``); after
    each chunk the network is evaluated on the training set and on ``eval_sets``. With
    ``optimizer="gd"`` one step is :math:`p \leftarrow p - \eta\nabla\mathcal L`, whose
    linearised function-space form is
    :math:`f \leftarrow f - (\eta/N_y)\hat\Theta(f-y)`: the discrete dynamics of
    ``ntkspec.gd_dynamics(..., learning_rate=eta, discrete=True)`` (continuous time
    :math:`t = \eta\cdot\text{steps}`). The run uses the network's dtype (a float64
    network trains inside a scoped x64 context) on JAX's default device.

    Args:
        net: the network (for :func:`mlp` networks the fixed mapping is applied once,
            outside the loop).
        params: initial parameters (not modified; the buffers of a copy are donated).
        v_train: training coordinates, shape (n, d).
        y_train: targets, shape (n, out_dim) (or (n,) for one output).
        steps: number of optimiser steps (>= 1).
        learning_rate: step size (> 0) for ``"adam"`` / ``"gd"``.
        optimizer: ``"adam"`` (default; the paper), ``"gd"`` or ``"sgd"`` (plain
            full-batch gradient descent), or an ``optax.GradientTransformation``.
        eval_sets: name -> (v, y) pairs evaluated every ``eval_every`` steps.
        eval_every: steps between evaluations (default: about 100 evaluations).
        record_outputs: keep the outputs at every evaluation (for residual analyses).
        progress: show a tqdm bar (default: when the run has more than one chunk).
        opt_state: optimiser state to resume from (default: a fresh one).
        block_rows: rows per block of the gradient accumulation. Each step still uses
            the exact full-batch gradient (summed over blocks); blocks only keep the
            activations in cache. Default: 1024 on CPU for more than 2048 points (about
            1.6x faster there than one block), one block otherwise and on accelerators.
        mesh: None or a 1-D ``jax.sharding.Mesh`` of D devices: data-parallel
            training, the rows of every gradient block (``block_rows`` rounded up to
            a multiple of D) split over the devices and the loss and gradient summed
            across them (``ntkspec.sharding.data_parallel``); the same full-batch
            steps as without a mesh, up to the order of the sums.

    Returns:
        :class:`TrainResult` ``(params, opt_state, history)``.

    Raises:
        ValueError: ``steps`` < 1, ``learning_rate`` <= 0, shapes that disagree with
            each other or with the mapping, unknown optimiser.
    """
    mesh = check_mesh(mesh)
    steps = check_positive_int(steps, "steps")
    opt = _optimizer(optimizer, learning_rate)
    if eval_every is None:
        eval_every = max(1, steps // 100)
    eval_every = check_positive_int(eval_every, "eval_every")
    if block_rows is not None:
        block_rows = check_positive_int(block_rows, "block_rows")
    spec = _spec_of(net)
    checked = _check_train_sets(spec, v_train, y_train, eval_sets)
    if spec is not None:
        spec = spec.resolve(checked["train"][0])
    dtype = _compute_dtype(spec, params)
    forward = spec.layers if spec is not None else _CoordinateForward(net.apply)
    device = jax.devices()[0].platform
    t0 = time.perf_counter()
    with x64_scope(dtype):
        data = _device_data(spec, checked, dtype)
        n_train = data["train"][0].shape[0]
        if block_rows is None:
            block_rows = n_train if device != "cpu" or n_train <= 2048 else 1024
        rows = batch_rows(min(block_rows, n_train), mesh)
        batches = _row_blocks(*data["train"], rows)
        if mesh is not None:
            batches = shard_batches(batches, mesh)
        params = jax.tree_util.tree_map(lambda a: jnp.array(a, dtype=dtype), params)
        if opt_state is None:
            opt_state = opt.init(params)
        else:
            opt_state = jax.tree_util.tree_map(jnp.array, opt_state)
        rec_steps, rec_losses = [0], {k: [] for k in data}
        rec_out = {k: [] for k in data} if record_outputs else None

        def evaluate():
            for name, (x, y) in data.items():
                out = _eval_outputs(forward, params, x)
                rec_losses[name].append(float(mse_loss(out, y)))
                if rec_out is not None:
                    rec_out[name].append(np.asarray(out))

        evaluate()
        chunks = [eval_every] * (steps // eval_every)
        if steps % eval_every:
            chunks.append(steps % eval_every)
        if progress is None:
            progress = len(chunks) > 1
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc="train", unit="step", leave=False, delay=1.0)
        step_losses, chunk_seconds = [], []
        done = 0
        compile_seconds = 0.0
        for i, length in enumerate(chunks):
            tc = time.perf_counter()
            params, opt_state, losses = _run_chunk(
                forward, opt, params, opt_state, batches, length, mesh
            )
            step_losses.append(np.asarray(losses))  # waits for the chunk
            chunk_seconds.append(time.perf_counter() - tc)
            if i == 0:
                compile_seconds = time.perf_counter() - t0
            done += length
            rec_steps.append(done)
            evaluate()
            if bar is not None:
                bar.update(length)
                bar.set_postfix(loss=f"{rec_losses['train'][-1]:.3e}")
        if bar is not None:
            bar.close()
    history = TrainHistory(
        steps=np.asarray(rec_steps),
        losses={k: np.asarray(v) for k, v in rec_losses.items()},
        outputs=None
        if rec_out is None
        else {k: np.stack(v) for k, v in rec_out.items()},
        step_losses=np.concatenate(step_losses),
        device=device,
        stats={
            "seconds": time.perf_counter() - t0,
            "compile_seconds": compile_seconds,
            "chunk_seconds": np.asarray(chunk_seconds),
        },
    )
    _warn_non_finite(history.step_losses, history.losses["train"][-1], steps, opt)
    return TrainResult(params, opt_state, history)


def _warn_non_finite(step_losses: np.ndarray, final: float, steps: int, opt) -> None:
    """Warn when training reached a non-finite loss, naming the first such step."""
    bad = np.flatnonzero(~np.isfinite(step_losses))
    if bad.size:
        step = int(bad[0])  # the loss before update `step`, i.e. after `step` updates
    elif not math.isfinite(final):
        step = steps
    else:
        return
    warnings.warn(
        f"training diverged: the loss is not finite after step {step} of {steps}"
        "; the learning rate is probably above the stability limit "
        "(for plain gradient descent 2 N_y / lambda_max of the empirical NTK, "
        "N_y = y.size); the parameters are returned as computed",
        RuntimeWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------------------
# Ensembles: several networks (one per mapping or seed) trained at once.
# --------------------------------------------------------------------------------------


class EnsembleResult(NamedTuple):
    """What :func:`train_ensemble` returns.

    Attributes:
        params: one parameter list per member, as that member's network takes them.
        step_losses: (steps, E) training loss of each member before each update.
        outputs: name -> list of E arrays (n, out_dim): each member's outputs after the
            last step on the training set (``"train"``) and on each eval set.
        stats: ``"seconds"`` (the whole call), ``"members"``, ``"devices"``.
    """

    params: list
    step_losses: np.ndarray
    outputs: dict
    stats: dict


@dataclasses.dataclass(frozen=True)
class _EnsembleLoss:
    """Member loss sum(m (f - y)^2) / (2 n c) on padded features (hashable)."""

    layers: _Layers

    def __call__(self, params, data):
        x, y, scale = data
        r = self.layers(params, x) - y
        return scale * jnp.sum(r * r)


@functools.lru_cache(maxsize=8)
def _unit_optimizer(name: str):
    # One object per name, so that repeated ensembles reuse the compiled loop; with a
    # per-member rate r these are exactly optax.adam(r) / optax.sgd(r).
    direction = optax.scale_by_adam() if name == "adam" else optax.identity()
    return optax.chain(direction, optax.scale(-1.0))


def _ensemble_specs(nets) -> list[_Spec]:
    if not isinstance(nets, list | tuple) or len(nets) < 1:
        raise TypeError("nets must be a non-empty list of networks made by mlp()")
    specs = [_spec_of(n) for n in nets]
    if any(s is None for s in specs):
        raise TypeError("nets must be networks made by ntkspec.networks.mlp()")
    first = specs[0]
    body = dataclasses.replace(first.layers, widths=(0,) + first.layers.widths[1:])
    for i, s in enumerate(specs[1:], 1):
        other = dataclasses.replace(s.layers, widths=(0,) + s.layers.widths[1:])
        if other != body or s.input_dim != first.input_dim:
            raise ValueError(
                f"nets[{i}] must match nets[0] in everything but the mapping (depth, "
                "width, out_dim, output, initialization, parameterization, input "
                f"dimension); got {s.layers} against {first.layers}"
            )
    return specs


def _pad_first_layer(params, rows: int):
    first = dict(params[0])
    w = jnp.asarray(first["W"])
    first["W"] = jnp.concatenate(
        [w, jnp.zeros((rows - w.shape[0], w.shape[1]), w.dtype)]
    )
    return [first] + list(params[1:])


def train_ensemble(
    nets,
    params,
    v_train,
    y_train,
    *,
    steps: int,
    learning_rate,
    optimizer: str = "adam",
    eval_sets: Mapping[str, tuple] | None = None,
    mesh=None,
) -> EnsembleResult:
    r"""Train several :func:`mlp` networks at once, e.g. one per mapping (Table 1).

    The networks must agree in everything but their mapping. Member e's features
    :math:`\gamma_e(v)` (width :math:`n_{0,e}`) are padded with zeros to the widest,
    and its first-layer weight with zero rows; those rows get zero gradients, so they
    stay 0 and each member takes the same full-batch steps as
    ``train(nets[e], params[e], v_train, y_train, learning_rate=learning_rate[e],
    block_rows=len(v_train))``, up to the order of floating-point sums. All members
    run in one ``vmap``-ed, jit-compiled loop (:func:`ntkspec.sharding.train_ensemble`);
    with ``mesh`` the members are split over its devices. Memory: E copies of the
    (n, max n_0) features.

    Args:
        nets: E networks from :func:`mlp` (same depth, width, out_dim, output,
            initialization and input dimension; any mappings).
        params: E initial parameter lists, one per network (not modified).
        v_train: training coordinates (n, d), shared by all members.
        y_train: targets (n, out_dim), shared, or (E, n, out_dim), one per member.
        steps: optimiser steps (>= 1).
        learning_rate: a positive number, or E of them (one per member).
        optimizer: ``"adam"`` (the paper) or ``"gd"`` (= ``"sgd"``).
        eval_sets: name -> (v, y) pairs evaluated after the last step.
        mesh: None or a 1-D ``jax.sharding.Mesh``.

    Returns:
        :class:`EnsembleResult`.

    Raises:
        TypeError: ``nets`` not a list of :func:`mlp` networks.
        ValueError: networks that differ in more than the mapping, ``params`` or
            ``learning_rate`` not one per network, bad shapes or steps.

    Example:
        >>> import jax, numpy as np, ntkspec
        >>> arch, maps = ntkspec.ReluMLP(3), [ntkspec.mappings.basic(1),
        ...     ntkspec.mappings.positional(1, 4, scale=2.0)]
        >>> nets = [ntkspec.networks.mlp(arch, m, 16) for m in maps]
        >>> ps = [n.init(jax.random.PRNGKey(0)) for n in nets]
        >>> v = np.linspace(0, 1, 8)[:, None]
        >>> res = ntkspec.networks.train_ensemble(
        ...     nets, ps, v, np.sin(6 * v), steps=5, learning_rate=1e-2)
        >>> res.step_losses.shape, [p[0]["W"].shape for p in res.params]
        ((5, 2), [(2, 16), (8, 16)])
    """
    t0 = time.perf_counter()
    mesh = check_mesh(mesh)
    specs = _ensemble_specs(nets)
    e = len(specs)
    steps = check_positive_int(steps, "steps")
    if optimizer not in ("adam", "gd", "sgd"):
        raise ValueError(f"optimizer must be 'adam', 'gd' or 'sgd'; got {optimizer!r}")
    try:
        rates = np.atleast_1d(np.asarray(learning_rate, np.float64)).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(
            f"learning_rate must be a number or a list of numbers; got "
            f"{learning_rate!r}"
        ) from None
    if rates.size == 1:
        rates = np.repeat(rates, e)
    if rates.size != e or not np.all(np.isfinite(rates)) or np.any(rates <= 0):
        raise ValueError(
            f"learning_rate must be a positive number or {e} of them (one per "
            f"network); got {learning_rate!r}"
        )
    if not isinstance(params, list | tuple) or len(params) != e:
        raise ValueError(f"params must be a list of {e} parameter lists, one per net")
    targets = y_train
    if hasattr(targets, "ndim") and np.ndim(targets) == 3:
        if np.shape(targets)[0] != e:
            raise ValueError(
                f"y_train of shape (E, n, out_dim) must have E = {e}; got "
                f"{np.shape(targets)}"
            )
        per_member = list(targets)
    else:
        per_member = [targets] * e
    checked = [
        _check_train_sets(s, v_train, y, eval_sets)
        for s, y in zip(specs, per_member, strict=True)
    ]
    specs = [s.resolve(c["train"][0]) for s, c in zip(specs, checked, strict=True)]
    dtype = _compute_dtype(specs[0], params[0])
    widths = [s.layers.widths[0] for s in specs]
    wide = max(widths)
    layers = dataclasses.replace(
        specs[0].layers, widths=(wide,) + specs[0].layers.widths[1:]
    )
    with x64_scope(dtype):

        def features(spec, v):
            x = spec.features(jnp.asarray(v, dtype))
            # The first layer's constant c_1 depends on n_0 ("ntk" parameterization):
            # carried by the features, as c_1(e) / c_1(padded) (1 otherwise).
            ratio = spec.layers.weight_scale(0) / layers.weight_scale(0)
            if ratio != 1.0:
                x = ratio * x
            return jnp.pad(x, ((0, 0), (0, wide - x.shape[1])))

        def stacked(name):
            xs, ys = [], []
            for spec, c in zip(specs, checked, strict=True):
                v, y = c[name]
                xs.append(features(spec, v))
                ys.append(jnp.asarray(y, dtype))
            return jnp.stack(xs), jnp.stack(ys)

        x_train, y_all = stacked("train")
        scale = jnp.full((e,), 0.5 / y_all[0].size, dtype)
        p0 = [
            _pad_first_layer(
                jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), p), wide
            )
            for p in params
        ]
        p_stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *p0)
        p_out, losses = _sharded_ensemble(
            _EnsembleLoss(layers),
            p_stacked,
            (x_train, y_all, scale),
            steps=steps,
            optimizer=_unit_optimizer("adam" if optimizer == "adam" else "gd"),
            mesh=mesh,
            learning_rates=rates,
        )
        apply = jax.jit(jax.vmap(layers))
        outputs = {}
        for name in checked[0]:
            x = x_train if name == "train" else stacked(name)[0]
            out = np.asarray(apply(p_out, x))
            outputs[name] = [out[i] for i in range(e)]
        members = []
        for i in range(e):
            p = jax.tree_util.tree_map(lambda a, i=i: np.asarray(a[i]), p_out)
            p[0] = dict(p[0], W=p[0]["W"][: widths[i]])
            members.append(p)
        losses = np.asarray(losses)
    bad = np.flatnonzero(~np.all(np.isfinite(losses), axis=0))
    if bad.size:
        warnings.warn(
            f"train_ensemble: members {bad.tolist()} reached a non-finite loss; lower "
            "their learning rates",
            RuntimeWarning,
            stacklevel=2,
        )
    stats = dict(
        seconds=time.perf_counter() - t0,
        members=e,
        devices=1 if mesh is None else int(mesh.devices.size),
    )
    return EnsembleResult(members, losses, outputs, stats)
