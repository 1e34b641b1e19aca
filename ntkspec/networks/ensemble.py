r"""Several networks trained at once: one ``vmap``-ed loop, members split over a mesh.

:func:`train_ensemble` trains several :func:`~ntkspec.networks.mlp` networks at once
(e.g. one per mapping, Table 1's sweep): their first-layer inputs are padded with zero
features to a common width, the matching rows of :math:`W_1` start at 0 and get zero
gradients, so they stay 0 under Adam or GD and every member follows its own
:func:`~ntkspec.networks.train` run. The members run in :func:`train_stacked`, one
``vmap``-ed, jit-compiled loop over stacked parameters; with a mesh the members are
split over its devices (``shard_map``), each device ``vmap``-ing its own.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._mesh import (
    axis_name,
    check_mesh,
    device_count,
    pad_rows,
    padded_size,
    replicated,
    shard_map,
)
from .._numerics import x64_scope
from .._validation import check_positive_int
from ._spec import Layers, Spec, check_train_sets, compute_dtype, spec_of

__all__ = ["EnsembleResult", "train_ensemble", "train_stacked"]


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

    layers: Layers

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


def _ensemble_specs(nets) -> list[Spec]:
    if not isinstance(nets, list | tuple) or len(nets) < 1:
        raise TypeError("nets must be a non-empty list of networks made by mlp()")
    specs = [spec_of(n) for n in nets]
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


def _member_rates(learning_rate, e: int) -> np.ndarray:
    """One positive learning rate per member, shape (E,)."""
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
    return rates


def _member_targets(y_train, e: int) -> list:
    """Targets per member: (E, n, out_dim) split, else the shared ones E times."""
    if hasattr(y_train, "ndim") and np.ndim(y_train) == 3:
        if np.shape(y_train)[0] != e:
            raise ValueError(
                f"y_train of shape (E, n, out_dim) must have E = {e}; got "
                f"{np.shape(y_train)}"
            )
        return list(y_train)
    return [y_train] * e


@dataclasses.dataclass(frozen=True)
class _Padded:
    """The members' common layer stack, first-layer inputs padded to ``wide``."""

    layers: Layers
    specs: tuple
    widths: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def of(cls, specs, dtype) -> _Padded:
        widths = tuple(s.layers.widths[0] for s in specs)
        wide = max(widths)
        first = specs[0].layers
        layers = dataclasses.replace(first, widths=(wide,) + first.widths[1:])
        return cls(layers, tuple(specs), widths, np.dtype(dtype))

    def features(self, spec: Spec, v):
        """gamma_e(v) scaled by c_1(e) / c_1(padded) and padded with zero columns."""
        x = spec.features(jnp.asarray(v, self.dtype))
        # The first layer's constant c_1 depends on n_0 ("ntk" parameterization):
        # carried by the features, as c_1(e) / c_1(padded) (1 otherwise).
        ratio = spec.layers.weight_scale(0) / self.layers.weight_scale(0)
        if ratio != 1.0:
            x = ratio * x
        return jnp.pad(x, ((0, 0), (0, self.layers.widths[0] - x.shape[1])))

    def stacked(self, checked, name: str):
        """(E, n, wide) features and (E, n, out_dim) targets of one data set."""
        xs, ys = [], []
        for spec, c in zip(self.specs, checked, strict=True):
            v, y = c[name]
            xs.append(self.features(spec, v))
            ys.append(jnp.asarray(y, self.dtype))
        return jnp.stack(xs), jnp.stack(ys)

    def params(self, params):
        """The members' parameters in the dtype, padded and stacked (E, ...)."""
        wide = self.layers.widths[0]
        p0 = [
            _pad_first_layer(
                jax.tree_util.tree_map(lambda a: jnp.asarray(a, self.dtype), p), wide
            )
            for p in params
        ]
        return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *p0)

    def members(self, stacked) -> list:
        """Stacked parameters back to one NumPy list per member, unpadded."""
        out = []
        for i, width in enumerate(self.widths):
            p = jax.tree_util.tree_map(lambda a, i=i: np.asarray(a[i]), stacked)
            p[0] = dict(p[0], W=p[0]["W"][:width])
            out.append(p)
        return out

    def outputs(self, stacked, checked, x_train) -> dict:
        """The trained members' outputs: name -> list of E (n, out_dim) arrays."""
        apply = jax.jit(jax.vmap(self.layers))
        outputs = {}
        for name in checked[0]:
            x = x_train if name == "train" else self.stacked(checked, name)[0]
            out = np.asarray(apply(stacked, x))
            outputs[name] = [out[i] for i in range(len(self.widths))]
        return outputs


def _warn_diverged(losses: np.ndarray) -> None:
    bad = np.flatnonzero(~np.all(np.isfinite(losses), axis=0))
    if bad.size:
        warnings.warn(
            f"train_ensemble: members {bad.tolist()} reached a non-finite loss; lower "
            "their learning rates",
            RuntimeWarning,
            stacklevel=3,
        )


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
    run in one ``vmap``-ed, jit-compiled loop (:func:`train_stacked`);
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
    rates = _member_rates(learning_rate, e)
    if not isinstance(params, list | tuple) or len(params) != e:
        raise ValueError(f"params must be a list of {e} parameter lists, one per net")
    checked = [
        check_train_sets(s, v_train, y, eval_sets)
        for s, y in zip(specs, _member_targets(y_train, e), strict=True)
    ]
    specs = [s.resolve(c["train"][0]) for s, c in zip(specs, checked, strict=True)]
    padded = _Padded.of(specs, compute_dtype(specs[0], params[0]))
    with x64_scope(padded.dtype):
        x_train, y_all = padded.stacked(checked, "train")
        scale = jnp.full((e,), 0.5 / y_all[0].size, padded.dtype)
        p_out, losses = train_stacked(
            _EnsembleLoss(padded.layers),
            padded.params(params),
            (x_train, y_all, scale),
            steps=steps,
            optimizer=_unit_optimizer("adam" if optimizer == "adam" else "gd"),
            mesh=mesh,
            learning_rates=rates,
        )
        outputs = padded.outputs(p_out, checked, x_train)
        members = padded.members(p_out)
        losses = np.asarray(losses)
    _warn_diverged(losses)
    stats = dict(
        seconds=time.perf_counter() - t0, members=e, devices=device_count(mesh)
    )
    return EnsembleResult(members, losses, outputs, stats)


def train_stacked(
    loss_fn: Callable,
    params,
    data,
    *,
    steps: int,
    optimizer,
    mesh: Mesh | None = None,
    learning_rates=None,
):
    """Train independent members with stacked parameters at once: the ensemble loop.

    The loop under :func:`train_ensemble`, for any per-member loss (the call form of
    the deprecated ``ntkspec.sharding.train_ensemble``). Every leaf of ``params`` and
    ``data`` has the member axis first (E members, e.g. one network per mapping or per
    seed, all of the same shapes). Each step is
    ``vmap`` over members of ``loss_fn(params_e, data_e)``'s gradient and an optax
    update; with a mesh the members (padded with copies of the last to a multiple of
    D, dropped after) are split over the devices inside ``shard_map``. Members never
    interact, so each equals its own single-device training.

    Args:
        loss_fn: ``loss_fn(params, data) -> scalar`` for one member. Compiled code is
            reused across calls when ``loss_fn`` and ``optimizer`` are the same
            (hashable) objects.
        params: stacked parameters (E, ...).
        data: stacked data pytree (E, ...).
        steps: optimiser steps (>= 1).
        optimizer: an ``optax.GradientTransformation``.
        mesh: None or a 1-D mesh.
        learning_rates: None, or E positive numbers: member e's update from
            ``optimizer`` is multiplied by ``learning_rates[e]`` (so give a unit-rate
            optimizer, e.g. ``optax.chain(optax.scale_by_adam(), optax.scale(-1.0))``,
            which with rate r is exactly ``optax.adam(r)``).

    Returns:
        ``(params, losses)``: the trained stacked parameters and the losses before
        each step, shape (steps, E).
    """
    mesh = check_mesh(mesh)
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    e = jax.tree_util.tree_leaves(params)[0].shape[0]
    if learning_rates is not None:
        rates = np.asarray(learning_rates, np.float64).reshape(-1)
        if rates.size != e or not np.all(np.isfinite(rates)) or np.any(rates <= 0):
            raise ValueError(
                f"learning_rates must be {e} positive finite numbers, one per member; "
                f"got {learning_rates!r}"
            )
    else:
        rates = np.ones(e)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    d = device_count(mesh)
    ep = padded_size(e, d)

    def pad(t):
        return jax.tree_util.tree_map(lambda a: pad_rows(jnp.asarray(a), ep), t)

    rates = jnp.asarray(rates, dtype)
    run = _ensemble_run(loss_fn, optimizer, int(steps), mesh)
    if mesh is None:
        return run(params, data, rates)
    members = NamedSharding(mesh, P(axis_name(mesh)))
    p, losses = run(
        *jax.device_put(
            (pad(params), pad(data), pad_rows(rates[:, None], ep)[:, 0]), members
        )
    )
    # Gathered before the padding members are dropped (slicing a sharded axis
    # unevenly is refused under Explicit axes).
    p, losses = jax.device_put((p, losses), replicated(mesh))
    return jax.tree_util.tree_map(lambda a: a[:e], p), losses[:, :e]


@functools.lru_cache(maxsize=32)
def _ensemble_run(loss_fn: Callable, optimizer, steps: int, mesh: Mesh | None):
    """The jitted ensemble loop for one (loss, optimizer, steps, mesh): built once."""

    def run(params, data, rates):
        state = jax.vmap(optimizer.init)(params)

        def scaled(u, r):
            return jax.tree_util.tree_map(lambda a: r.astype(a.dtype) * a, u)

        def step(carry, _):
            p, s = carry
            loss, g = jax.vmap(jax.value_and_grad(loss_fn))(p, data)
            u, s = jax.vmap(optimizer.update)(g, s, p)
            u = jax.vmap(scaled)(u, rates)
            p = jax.tree_util.tree_map(lambda a, b: a + b, p, u)
            return (p, s), loss

        (p, _), losses = jax.lax.scan(step, (params, state), None, length=steps)
        return p, losses

    if mesh is None:
        return jax.jit(run)
    ax = axis_name(mesh)
    return jax.jit(shard_map(run, mesh, (P(ax), P(ax), P(ax)), (P(ax), P(None, ax))))
