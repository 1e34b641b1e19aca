"""When and how an SGD-control run of ``shape_networks_fresh`` diverges (issue 25).

Replays one ``sgd`` run of :mod:`analysis.shape_networks_fresh` step by step with the
same keys, network, step size ``--sgd-lr-factor / lambda_max(K/N)`` and fresh points,
and records at every step the loss on that step's batch and the gradient's global
norm, before the update. Every ``--eig-every`` steps (and at step 0) it records the
top eigenvalue of the network's empirical NTK over a fixed batch of ``--batch``
points, :math:`\\lambda_{\\max}(J J^\\top / B)` (``ntkspec.linalg.largest_eigenvalue``
through a jvp of a vjp). Gradient descent on ``1/(2B) sum (z - y)^2`` is linearly
stable while ``lr * lambda_max < 2``. The replay stops at the first non-finite
loss. Output: ``OUT/<mapping>_<shape>_seed<k>.json``, written atomically.

Reduced CPU size, the run that diverged::

    python -m analysis.sgd_divergence --mapping positional --shape twisted_star \\
        --batch 4096 --steps 2000 --out figures/shapes/sgd_divergence_cpu

``--quick``: tiny width and budget into ``figures/shapes/sgd_divergence/quick``
(git-ignored), seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from analysis.shape_networks_fresh import (
    ARCH_KW,
    SEED_STRIDE,
    flow_lambda_max,
    fresh_mappings,
)


def replay(mapping_name, shape_name, *, width, batch, steps, lr_factor, seed,
           eig_every, eig_iters) -> dict:  # fmt: skip
    """The replayed run's per-step record (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import networks, shapes
    from ntkspec.linalg import largest_eigenvalue

    solids = shapes.shape_set(0)
    s_index = [s.name for s in solids].index(shape_name)
    solid = solids[s_index]
    mapping = fresh_mappings(0)[mapping_name]
    arch = ntkspec.ReluMLP(8, width=width, **ARCH_KW)
    net = networks.mlp(arch, mapping, width, output=None, initialization="stax")
    params = net.init(jax.random.PRNGKey(10 + s_index + SEED_STRIDE * seed))
    lam_t = flow_lambda_max(arch, mapping)
    lr = lr_factor / lam_t
    opt = optax.sgd(lr)

    def loss(p, x):
        z = net.apply(p, x)[:, 0]
        return 0.5 * jnp.mean((z - (4.0 * shapes.occupancy(solid, x) - 2.0)) ** 2)

    @jax.jit
    def step(carry):
        p, s, k = carry
        k, sub = jax.random.split(k)
        x = jax.random.uniform(sub, (batch, 3), jnp.float32)
        value, g = jax.value_and_grad(loss)(p, x)
        upd, s = opt.update(g, s, p)
        norm = jnp.sqrt(sum(jnp.vdot(v, v) for v in jax.tree_util.tree_leaves(g)))
        return (optax.apply_updates(p, upd), s, k), value, norm

    fixed = jax.random.uniform(jax.random.PRNGKey(7), (batch, 3), jnp.float32)

    def ntk_top(p) -> float:
        def f(q):
            return net.apply(q, fixed)[:, 0]

        _, vjp = jax.vjp(f, p)
        mv = jax.jit(lambda v: jax.jvp(f, (p,), (vjp(v)[0],))[1] / batch)
        return largest_eigenvalue(
            lambda v: mv(jnp.asarray(v, jnp.float32)), batch, iters=eig_iters
        )

    key = jax.random.PRNGKey(100 + s_index + SEED_STRIDE * seed)
    carry = (params, opt.init(params), key)
    losses, norms, eig = [], [], [{"step": 0, "lr_times_lambda": lr * ntk_top(params)}]
    diverged_at = None
    for i in range(steps):
        nxt, value, norm = step(carry)
        losses.append(float(value))
        norms.append(float(norm))
        if not (np.isfinite(losses[-1]) and np.isfinite(norms[-1])):
            diverged_at = i
            break
        carry = nxt
        if (i + 1) % eig_every == 0:
            eig.append({"step": i + 1, "lr_times_lambda": lr * ntk_top(carry[0])})
    return {
        "mapping": mapping_name,
        "shape": shape_name,
        "seed": seed,
        "width": width,
        "batch": batch,
        "steps": steps,
        "lambda_max_T": lam_t,
        "learning_rate": lr,
        "diverged_at_step": diverged_at,
        "batch_loss": losses,
        "grad_norm": norms,
        "ntk_top": eig,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--mapping", default="positional")
    p.add_argument("--shape", default="twisted_star")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--sgd-lr-factor", type=float, default=0.5)
    p.add_argument("--eig-every", type=int, default=100)
    p.add_argument("--eig-iters", type=int, default=30)
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.batch, args.steps, args.eig_every = 16, 256, 4, 2
        args.eig_iters = 5
    argv = sys.argv[1:] if argv is None else list(argv)
    from ntkspec import shapes
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    names = [s.name for s in shapes.shape_set(0)]
    checks = [
        ("--mapping", args.mapping in fresh_mappings(0), sorted(fresh_mappings(0))),
        ("--shape", args.shape in names, names),
    ]
    for flag, ok, allowed in checks:
        if not ok:
            print(f"error: {flag}: use one of {allowed}", file=sys.stderr)
            return 2
    for flag in ("width", "batch", "steps", "eig_every", "eig_iters"):
        if getattr(args, flag) < 1:
            print(f"error: --{flag.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    out = Path(
        args.out
        or (
            "figures/shapes/sgd_divergence/quick"
            if args.quick
            else "figures/shapes/sgd_divergence"
        )
    )
    t0 = time.perf_counter()
    rec = replay(
        args.mapping, args.shape, width=args.width, batch=args.batch,
        steps=args.steps, lr_factor=args.sgd_lr_factor, seed=args.seed,
        eig_every=args.eig_every, eig_iters=args.eig_iters,
    )  # fmt: skip
    rec["label"] = "CPU" if not args.quick else "quick; CPU"
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    rec["load"] = [round(v, 2) for v in os.getloadavg()]
    command = " ".join(["python -m analysis.sgd_divergence", *argv])
    rec["provenance"] = provenance(command, args.seed)
    path = out / f"{args.mapping}_{args.shape}_seed{args.seed}.json"
    write_json(path, rec)
    at = rec["diverged_at_step"]
    top = max(e["lr_times_lambda"] for e in rec["ntk_top"])
    print(
        f"{path}: "
        + (f"diverged at step {at}" if at is not None else "no divergence")
        + f"; max lr * lambda_max(NTK) seen {top:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
