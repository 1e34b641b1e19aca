r"""The empirical NTK of a finite network: Jacobian contraction or per-layer form.

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
float32 accuracy floor: empirical NTKs in float32 agree with float64 to ~1e-5 relative.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, https://arxiv.org/abs/1902.06720.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import x64_scope
from .._validation import as_points, check_positive_int
from ._spec import Layers, Spec, compute_dtype, spec_of
from .network import Network

__all__ = ["empirical_ntk"]

_IMPLEMENTATIONS = ("jacobian", "structured")


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


def _backward_signals(layers: Layers, params, kept, output):
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
def _ntk_block_structured(spec: Spec, params, v1, v2, output):
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
    spec = spec_of(net)
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
    dtype = compute_dtype(spec, params)
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
