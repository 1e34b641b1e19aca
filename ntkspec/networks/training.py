r"""Full-batch training of a finite network with optax, evaluated as it goes.

:func:`train` runs Adam (the paper) or plain gradient descent (the theory comparisons,
``optimizer="gd"``) on neural-tangents' loss

.. math::

    \mathcal L = \frac{1}{2\,N_y}\sum_{i}\|f(v_i) - y_i\|^2,\qquad N_y = \text{y.size},

the normalisation of :func:`ntkspec.gd_dynamics` (and 0.5 x the mean squared error
logged by the official notebooks). Steps are jit-compiled and run in chunks by
``lax.scan``; a float64 network (``dtype=np.float64``) trains in a scoped x64 context.
float32 accuracy floor: relative ~1e-6 per operation.

References:
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, https://arxiv.org/abs/1902.06720.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
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

from .._mesh import batch_rows, check_mesh, data_parallel, shard_batches
from .._numerics import x64_scope
from .._validation import check_positive_int, check_real
from ._spec import check_train_sets, compute_dtype, spec_of
from .network import Network

__all__ = ["mse_loss", "psnr", "TrainHistory", "TrainResult", "train"]


def mse_loss(f, y):
    r"""neural-tangents' loss :math:`\sum (f - y)^2 / (2\,\mathrm{y.size})`."""
    return 0.5 * jnp.mean((f - y) ** 2)


def psnr(f, y) -> float:
    r"""Peak signal-to-noise ratio :math:`-10\log_{10}\mathrm{MSE}` (data in [0, 1]).

    :func:`ntkspec.data.psnr` after broadcasting ``f`` against ``y``.
    """
    from ..data import psnr as data_psnr

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


def _device_data(spec, checked: dict, dtype) -> dict:
    """Features (the mapping evaluated once) and targets as device arrays."""
    data = {}
    for name, (v, y) in checked.items():
        v = jnp.asarray(v, dtype)
        x = spec.features(v) if spec is not None else v
        data[name] = (jax.block_until_ready(x), jnp.asarray(y, dtype))
    return data


def _eval_every(eval_every, steps: int) -> int:
    """``eval_every`` checked; None gives about 100 evaluations."""
    if eval_every is None:
        return max(1, steps // 100)
    return check_positive_int(eval_every, "eval_every")


def _chunks(steps: int, eval_every: int) -> list[int]:
    """Chunk lengths: ``eval_every`` steps each, the remainder last."""
    chunks = [eval_every] * (steps // eval_every)
    if steps % eval_every:
        chunks.append(steps % eval_every)
    return chunks


def _train_batches(train_data, block_rows, device: str, mesh):
    """The training rows as (x, y, mask, scale) blocks, placed on the mesh if any."""
    x, y = train_data
    n_train = x.shape[0]
    if block_rows is None:
        block_rows = n_train if device != "cpu" or n_train <= 2048 else 1024
    rows = batch_rows(min(block_rows, n_train), mesh)
    batches = _row_blocks(x, y, rows)
    return batches if mesh is None else shard_batches(batches, mesh)


def _initial_state(opt, params, opt_state, dtype):
    """Copies of the parameters in ``dtype`` (their buffers are donated) and state."""
    params = jax.tree_util.tree_map(lambda a: jnp.array(a, dtype=dtype), params)
    if opt_state is None:
        return params, opt.init(params)
    return params, jax.tree_util.tree_map(jnp.array, opt_state)


@dataclasses.dataclass
class _Recorder:
    """The evaluations of a run: the loss (and outputs) on every set after a chunk."""

    forward: Callable
    data: dict
    record_outputs: bool
    steps: list = dataclasses.field(default_factory=list)
    losses: dict = dataclasses.field(default_factory=dict)
    outputs: dict = dataclasses.field(default_factory=dict)

    def evaluate(self, params, done: int) -> None:
        self.steps.append(done)
        for name, (x, y) in self.data.items():
            out = _eval_outputs(self.forward, params, x)
            self.losses.setdefault(name, []).append(float(mse_loss(out, y)))
            if self.record_outputs:
                self.outputs.setdefault(name, []).append(np.asarray(out))

    def history(self, step_losses, device: str, stats: dict) -> TrainHistory:
        outputs = None
        if self.record_outputs:
            outputs = {k: np.stack(v) for k, v in self.outputs.items()}
        return TrainHistory(
            steps=np.asarray(self.steps),
            losses={k: np.asarray(v) for k, v in self.losses.items()},
            outputs=outputs,
            step_losses=step_losses,
            device=device,
            stats=stats,
        )


def _progress_bar(progress, chunks: list[int]):
    """A tqdm bar over the steps or None (default: a bar for more than one chunk)."""
    if progress is None:
        progress = len(chunks) > 1
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=sum(chunks), desc="train", unit="step", leave=False, delay=1.0)


def _run_chunks(recorder, opt, state, batches, chunks, mesh, bar):
    """Run the chunks, evaluating after each: final state, step losses, timings."""
    params, opt_state = state
    step_losses, chunk_seconds, first_end, done = [], [], None, 0
    for length in chunks:
        tc = time.perf_counter()
        params, opt_state, losses = _run_chunk(
            recorder.forward, opt, params, opt_state, batches, length, mesh
        )
        step_losses.append(np.asarray(losses))  # waits for the chunk
        chunk_seconds.append(time.perf_counter() - tc)
        first_end = first_end or time.perf_counter()
        done += length
        recorder.evaluate(params, done)
        if bar is not None:
            bar.update(length)
            bar.set_postfix(loss=f"{recorder.losses['train'][-1]:.3e}")
    times = {"chunk_seconds": np.asarray(chunk_seconds), "first_end": first_end}
    return params, opt_state, np.concatenate(step_losses), times


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
            activations in cache. Default: 1024 on CPU for more than 2048 points, one
            block otherwise and on accelerators.
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
    chunks = _chunks(steps, _eval_every(eval_every, steps))
    if block_rows is not None:
        block_rows = check_positive_int(block_rows, "block_rows")
    spec = spec_of(net)
    checked = check_train_sets(spec, v_train, y_train, eval_sets)
    if spec is not None:
        spec = spec.resolve(checked["train"][0])
    dtype = compute_dtype(spec, params)
    forward = spec.layers if spec is not None else _CoordinateForward(net.apply)
    device = jax.devices()[0].platform
    t0 = time.perf_counter()
    with x64_scope(dtype):
        data = _device_data(spec, checked, dtype)
        batches = _train_batches(data["train"], block_rows, device, mesh)
        state = _initial_state(opt, params, opt_state, dtype)
        recorder = _Recorder(forward, data, record_outputs)
        recorder.evaluate(state[0], 0)
        bar = _progress_bar(progress, chunks)
        params, opt_state, step_losses, times = _run_chunks(
            recorder, opt, state, batches, chunks, mesh, bar
        )
        if bar is not None:
            bar.close()
    stats = {
        "seconds": time.perf_counter() - t0,
        "compile_seconds": times["first_end"] - t0,
        "chunk_seconds": times["chunk_seconds"],
    }
    history = recorder.history(step_losses, device, stats)
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
