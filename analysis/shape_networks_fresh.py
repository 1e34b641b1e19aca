"""Occupancy networks on fresh uniform points, for the population flow (issue 25).

Two kinds of run, each one JSON file under ``OUT/runs/`` written atomically when it
finishes (a later call skips the finished runs, so a cut-off run resumes; the
summary ``OUT/shape_networks_fresh.json`` lists every run in the folder):

* ``adam``: the ``3d_shape_occupancy`` notebook's network, 8 x 256 ReLU MLP with a
  logit output (jax ``stax`` initialisation), sigmoid binary cross-entropy, Adam at
  ``5e-4 * 0.1^(step / 5000)``, every step on ``--batch`` fresh uniform points of the
  box; the four mappings of ``ntkspec.studies.shape_table.shape_mappings`` with the
  mapped inputs divided by ||a|| (``fresh_mappings``, as
  ``analysis/mri_shape_networks.py``), on the four shapes of
  ``ntkspec.shapes.shape_set``.
* ``sgd``: the control the population flow describes directly: the same network with a
  linear readout, plain SGD on ``1/(2B) sum (z - (4 y - 2))^2`` on fresh batches: the
  centred targets +-2 of the linearised sigmoid-BCE
  (``ntkspec.population.linearized_bce``; the flow is linear in the targets, so its
  sign, hence the IoU at 0, is that of the flow on ``y - 1/2``), step size
  ``--sgd-lr-factor / lambda_max(K/N)`` (lambda_max of the flow's operator on a 16^3
  grid, by power iteration), on one shape. Its flow time is
  ``steps x lr`` (``ntkspec.population.sgd_flow_time``).

A run whose output on the evaluation points is non-finite (a diverged run) or constant
is recorded as collapsed, with its cause and no scores; ``fig_shape_population`` lists
it and leaves it out of every mean and gap. Each run records the IoU on 2^18 uniform
and near-surface points (logit > 0, i.e.
probability > 0.5; SGD: output > 0), and the population residual that places it on the
flow's time axis: ``mean((sigmoid(z) - y)^2)`` (Adam; the linearised BCE residual, equal
to the centred flow's residual, ``ntkspec.population``) or ``mean((z - (4 y - 2))^2)``
(SGD; also divided by 16, the centred flow's units) on the uniform evaluation points.
``fig_shape_population --networks OUT`` reads them.

Training runs ``--chunk`` steps (default 100) per jitted ``lax.scan`` call
(``train_fresh``): the same keys, points and updates as one jitted step per call (equal
to float32 rounding, bit-identical on this CPU), in float32 like the Table 1 networks.
Each run records ``train_seconds`` (compilation included) and ``seconds_per_step``
(compiled chunks only).

Reduced CPU size (issue 25): ``--batch 4096 --steps 2000``. Measured on the shared
2-core CPU (niced, load 3.8-4.7, beside the background studies), per compiled step:
0.13 s ("none", basic; 0.16-0.17 s with one jitted step per call), 0.17-0.18 s
(positional, Gaussian; 0.21-0.22 s), the SGD control as fast as the Adam network; plus
about 20 s a run (compilation, the IoU on 2 x 2^18 points; the SGD control's
lambda_max, 1-13 s). That is 4.5-6.5 min a run and about 1.8 h for the 20 runs at that
load. (The earlier 0.43-0.73 s a step matches whole 40-step runs, compilation and
evaluation included, divided by 40.) Start it niced, in the
background::

    nohup nice -n 19 python -m analysis.shape_networks_fresh --batch 4096 \\
        --steps 2000 --out figures/shapes/networks_fresh_cpu > run.log 2>&1 &

``--seeds K`` trains every run at seeds 0..K-1: seed k offsets the keys of the
network's initialisation and of the training points by ``k * SEED_STRIDE``, with the
mapping (its Gaussian draw) fixed; seed 0 is the run without the option, so a folder
gains seeds by a later call.

Full size (``analysis/gpu_run.sh --shapes``): 32,768 points, 10,000 steps.
``--quick``: a tiny width and budget into ``figures/shapes/networks_fresh/quick``
(git-ignored), seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ARCH_KW = dict(W_std=1.0, b_std=0.0, parameterization="standard")


def fresh_mappings(seed: int = 0) -> dict:
    """The shape mappings with Fourier features divided by ||a|| (the networks')."""
    import ntkspec
    from ntkspec.studies.shape_table import shape_mappings

    out = {}
    for name, m in shape_mappings(seed).items():
        if isinstance(m, ntkspec.FourierMapping):
            a = np.asarray(m.a, np.float64)
            m = ntkspec.FourierMapping(np.asarray(m.B), a / np.linalg.norm(a))
        out[name] = m
    return out


def flow_lambda_max(arch, mapping, res: int = 16) -> float:
    """lambda_max(K / N) of the flow's operator on a res^3 grid (power iteration)."""
    import ntkspec
    from ntkspec.linalg import largest_eigenvalue

    grid = ntkspec.Grid((res,) * 3)
    op = ntkspec.operators.kernel_operator(arch, mapping, grid)
    return float(largest_eigenvalue(op, grid.size, iters=50)) / grid.size


def train_fresh(
    loss, opt, params, key, *, batch: int, steps: int, chunk: int = 100
) -> tuple:
    """``steps`` optimiser steps, each on ``batch`` fresh uniform points of the box.

    Step k draws ``key, sub = split(key)`` and then ``batch`` points
    ``uniform(sub, (batch, 3))`` (float32), takes ``grad(loss)(params, points)`` and
    applies ``opt``: the same steps, points and keys as one jitted step per Python
    call, but ``chunk`` steps run in one jitted ``lax.scan`` (the last chunk takes the
    remainder), so Python dispatches ``steps / chunk`` times, not ``steps`` times.

    Returns:
        ``(params, timing)``: ``timing["train_seconds"]`` is the wall time of all
        steps, compilation included; ``timing["seconds_per_step"]`` that of the
        full chunks after the first (compiled), None when there are none.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def one(carry, _):
        p, s, k = carry
        k, sub = jax.random.split(k)
        x = jax.random.uniform(sub, (batch, 3), jnp.float32)
        upd, s = opt.update(jax.grad(loss)(p, x), s, p)
        return (optax.apply_updates(p, upd), s, k), None

    @functools.partial(jax.jit, static_argnums=1, donate_argnums=0)
    def run(carry, length: int):
        return jax.lax.scan(one, carry, None, length=length)[0]

    chunk = max(1, min(chunk, steps))
    lengths = [chunk] * (steps // chunk) + ([steps % chunk] if steps % chunk else [])
    # copies: the chunks donate their carry, the caller keeps params and key
    carry = jax.tree_util.tree_map(jnp.array, (params, opt.init(params), key))
    t0 = time.perf_counter()
    ends = []
    for length in lengths:
        carry = jax.block_until_ready(run(carry, length))
        ends.append(time.perf_counter())
    # compiled chunks: after the first, of the first's length (a remainder compiles)
    warm = [
        (ends[i] - ends[i - 1], n)
        for i, n in enumerate(lengths)
        if i and n == lengths[0]
    ]
    return carry[0], {
        "train_seconds": round(ends[-1] - t0, 1) if ends else 0.0,
        "seconds_per_step": round(sum(t for t, _ in warm) / sum(n for _, n in warm), 4)
        if warm
        else None,
    }


@functools.lru_cache(maxsize=4)
def eval_points(solid, num_points: int, mc: int) -> tuple:
    """The IoU points of ``solid``: 2 x num_points uniform and near-surface (seed 0).

    Cached: the runs of one shape (its four mappings, Adam and SGD) share them.
    """
    from ntkspec import shapes

    uniform = shapes.uniform_points(num_points, seed=0)
    near = shapes.near_surface_points(solid, num_points, seed=0, resolution=mc)
    return uniform, near


def _eval(net, params, solid, points, kind: str) -> dict:
    import jax.numpy as jnp

    from ntkspec import shapes, verdicts

    z = np.concatenate(
        [
            np.asarray(net.apply(params, jnp.asarray(c, jnp.float32)))[:, 0]
            for c in np.array_split(points, max(1, len(points) // 65536))
        ]
    ).astype(np.float64)
    occ = shapes.occupancy(solid, points)
    if verdicts.output_collapse(z) is not None:
        # collapsed (constant or non-finite output): no score
        bad = int(np.count_nonzero(~np.isfinite(z)))
        cause = (
            f"non-finite output on {bad} of {z.size} points (diverged)"
            if bad
            else f"constant output {z[0]:.3g}"
        )
        return {"iou": None, "residual_mse": None, "collapsed": True, "cause": cause}
    if kind == "adam":
        prob = 1.0 / (1.0 + np.exp(-z))
        return {
            "iou": shapes.iou(z, occ, threshold=0.0),
            "residual_mse": float(np.mean((prob - occ) ** 2)),
            "bce": float(
                np.mean(np.logaddexp(0.0, z) - occ * z)  # BCE of sigmoid(z)
            ),
        }
    r2 = float(np.mean((z - (4.0 * occ - 2.0)) ** 2))
    return {
        "iou": shapes.iou(z, occ, threshold=0.0),
        "residual_mse": r2,
        "residual_mse_centred_units": r2 / 16.0,
    }


#: Seed k draws the network's initialisation and the training points from keys
#: offset by k * SEED_STRIDE (seed 0: the keys of the first committed runs).
SEED_STRIDE = 1000


def run_name(kind: str, mapping: str, shape: str, seed: int = 0) -> str:
    """The run's file name (seed 0 keeps the name of the first committed runs)."""
    return f"{kind}_{mapping}_{shape}" + (f"_seed{seed}" if seed else "") + ".json"


def run_one(kind, name, mapping, solid, s_index, args, seed: int = 0) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import networks, shapes
    from ntkspec.population import sgd_flow_time

    arch = ntkspec.ReluMLP(8, width=args.width, **ARCH_KW)
    net = networks.mlp(arch, mapping, args.width, output=None, initialization="stax")
    params = net.init(jax.random.PRNGKey(10 + s_index + SEED_STRIDE * seed))
    batch, steps = args.batch, args.steps
    extra = {}
    if kind == "adam":
        opt = optax.adam(optax.exponential_decay(5e-4, 5000, 0.1))

        def loss(p, x):
            logits = net.apply(p, x)[:, 0]
            target = shapes.occupancy(solid, x)
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target))

    else:
        lam = flow_lambda_max(arch, mapping)
        lr = args.sgd_lr_factor / lam
        opt = optax.sgd(lr)
        ft = sgd_flow_time(steps, lr, batch)
        extra = {
            "lambda_max_T": lam,
            "learning_rate": lr,
            "flow_time": ft.time,
            "noise_scale": ft.noise_scale,
        }

        def loss(p, x):
            z = net.apply(p, x)[:, 0]
            target = 4.0 * shapes.occupancy(solid, x) - 2.0  # linearized_bce's +-2
            return 0.5 * jnp.mean((z - target) ** 2)

    params, timing = train_fresh(
        loss,
        opt,
        params,
        jax.random.PRNGKey(100 + s_index + SEED_STRIDE * seed),
        batch=batch,
        steps=steps,
        chunk=args.chunk,
    )
    uniform, near = eval_points(solid, args.eval_points, args.mc)
    u, n = (_eval(net, params, solid, p, kind) for p in (uniform, near))
    collapsed = u.get("collapsed", False) or n.get("collapsed", False)
    if collapsed:
        scores = {"collapsed": True, "cause": u.get("cause") or n.get("cause")}
    elif kind == "adam":
        scores = {"collapsed": False, "bce": u["bce"]}
    else:
        scores = {
            "collapsed": False,
            "residual_mse_centred_units": u["residual_mse_centred_units"],
        }
    return {
        "kind": kind,
        "mapping": name,
        "shape": solid.name,
        "seed": seed,
        "iou_uniform": None if collapsed else u["iou"],
        "iou_near_surface": None if collapsed else n["iou"],
        "residual_mse": None if collapsed else u["residual_mse"],
        **scores,
        **extra,
        "steps": steps,
        "batch": batch,
        "width": args.width,
        **timing,
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=32_768)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--shapes", type=int, default=4)
    p.add_argument("--mappings", default="none,basic,positional,gaussian")
    p.add_argument("--eval-points", type=int, default=2**18)
    p.add_argument("--mc", type=int, default=128, help="marching-cubes resolution")
    p.add_argument("--sgd-shapes", type=int, default=1)
    p.add_argument("--sgd-lr-factor", type=float, default=0.5)
    p.add_argument("--kinds", default="adam,sgd")
    p.add_argument(
        "--seeds", type=int, default=1, help="seeds per run (network init, points)"
    )
    p.add_argument(
        "--chunk", type=int, default=100, help="steps per jitted lax.scan call"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.width = 3, 256, 16
        args.shapes, args.eval_points, args.mc = 1, 2048, 24
        args.mappings = "gaussian"
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m analysis.shape_networks_fresh", *argv])
    out = Path(
        args.out
        or (
            "figures/shapes/networks_fresh/quick"
            if args.quick
            else "figures/shapes/networks_fresh"
        )
    )
    import jax

    from ntkspec import shapes
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance
    from ntkspec.studies.shape_table import PAPER_SHAPE

    if args.chunk < 1:
        print(f"error: --chunk must be >= 1; got {args.chunk}", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"error: --seeds must be >= 1; got {args.seeds}", file=sys.stderr)
        return 2
    maps = fresh_mappings(0)
    names = [m for m in args.mappings.split(",") if m]
    unknown = sorted(set(names) - set(maps))
    if unknown:
        print(
            f"error: --mappings: unknown {unknown}; use {sorted(maps)}", file=sys.stderr
        )
        return 2
    solids = shapes.shape_set(0)
    plan = []
    for kind in args.kinds.split(","):
        count = args.shapes if kind == "adam" else args.sgd_shapes
        for seed in range(args.seeds):
            for s_index, solid in enumerate(solids[:count]):
                for name in names:
                    plan.append((kind, name, s_index, solid, seed))
    # a resumed folder must hold runs of this budget only (never mix budgets)
    for done in sorted((out / "runs").glob("*.json")):
        rec = json.loads(done.read_text())
        theirs = {k: rec.get(k) for k in ("steps", "batch", "width")}
        ours = {"steps": args.steps, "batch": args.batch, "width": args.width}
        if theirs != ours:
            print(
                f"error: --out: {done} was trained at {theirs}, not {ours}; use "
                "another --out",
                file=sys.stderr,
            )
            return 2
    started = time.perf_counter()
    for kind, name, s_index, solid, seed in plan:
        path = out / "runs" / run_name(kind, name, solid.name, seed)
        if path.exists():
            continue
        rec = run_one(kind, name, maps[name], solid, s_index, args, seed)
        write_json(path, rec)
        score = (
            f"collapsed: {rec['cause']}"
            if rec["collapsed"]
            else f"IoU {rec['iou_uniform']:.3f} / {rec['iou_near_surface']:.3f}"
        )
        print(
            f"{kind} {name} {solid.name} seed {seed}: {score} "
            f"({rec['train_seconds']} s)",
            flush=True,
        )
    # the summary lists every run in the folder, those of earlier calls included
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    full = args.steps == 10_000 and args.batch == 32_768 and args.width == 256
    summary = {
        "device": str(jax.devices()[0]),
        "label": ("" if full else "reduced; ")
        + ("CPU" if jax.default_backend() == "cpu" else jax.default_backend()),
        "reduced": not full or args.eval_points != 2**18 or args.shapes != 4,
        "sizes": {
            k: getattr(args, k)
            for k in ("steps", "batch", "width", "shapes", "eval_points", "mc")
        },
        "paper": {k: {"mean": v[0], "std": v[1]} for k, v in PAPER_SHAPE.items()},
        "runs": runs,
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "load": [round(v, 2) for v in os.getloadavg()],
        "provenance": provenance(command, 0),
    }
    write_json(out / "shape_networks_fresh.json", summary)
    print(f"{out}: {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
