r"""What fixes the function an :func:`ntkspec.networks.mlp` network computes.

A private helper of :mod:`ntkspec.networks`, shared by its modules: the Dense/ReLU stack
(:class:`Layers`, hashable by value, so one compiled step serves many mappings), the
network's spec (layers, dtype, mapping), ``init`` / ``apply`` as hashable callables,
the dtype rules and the checks of training sets against a network. The conventions
(both parameterizations, the "stax" initialisation) are stated in
:mod:`ntkspec.networks.network`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope
from .._validation import as_points, is_traced

#: Bias initialisation scale of jax ``stax.Dense`` (``normal(1e-2)``).
STAX_BIAS_STD = 1e-2


@dataclasses.dataclass(frozen=True)
class Layers:
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
class Spec:
    """Everything that fixes the function computed by an :func:`mlp` network."""

    layers: Layers
    dtype: np.dtype
    input_dim: int
    B: np.ndarray | None  # (m, d) frequencies, None for raw coordinates
    a: np.ndarray | None  # (m,) amplitudes
    offset: float  # raw-coordinate shift (IdentityMapping)
    mapping: object = None  # the FourierMapping / IdentityMapping itself
    follow_inputs: bool = False  # mlp(dtype=None): compute in the inputs' dtype
    _variants: dict = dataclasses.field(default_factory=dict, repr=False)

    def resolve(self, v) -> Spec:
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
class Init:
    spec: Spec

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
                    p["b"] = STAX_BIAS_STD * jax.random.normal(kb, (n_out,), spec.dtype)
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
class Apply:
    spec: Spec

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


def _input_dtype(v) -> np.dtype:
    """float64 for float64 inputs when JAX's x64 is on in the caller, else float32."""
    dt = np.dtype(getattr(v, "dtype", np.float64))
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.dtype(np.float64)
    return np.dtype(np.float64 if dt == np.float64 and x64 else np.float32)


def spec_of(net) -> Spec | None:
    apply = getattr(net, "apply", None)
    return apply.spec if isinstance(apply, Apply) else None


def compute_dtype(spec, params) -> np.dtype:
    """The network's own dtype for :func:`mlp` networks, else the parameters' dtype."""
    return spec.dtype if spec is not None else _params_dtype(params)


def _params_dtype(params) -> np.dtype:
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("params must contain at least one array")
    return np.dtype(np.result_type(*[leaf.dtype for leaf in leaves]))


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


def check_train_sets(spec, v_train, y_train, eval_sets) -> dict:
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
