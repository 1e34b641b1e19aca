"""ntkspec.solvers.cg against lineax.CG on the paper's PCG solve (one-off measurement).

The solve of the paper regression task (astronaut RGB, 256^2 train grid, Gaussian sigma
10 with 256 frequencies, depth-4 NTK, ridge 0, T. Chan preconditioner, rtol 1e-10):
both solvers get the same operator matvec and preconditioner; lineax runs one solve
per colour channel under ``jax.vmap`` (its CG takes one right-hand side). Reported:
warm median seconds, iterations and the true relative residual of each.

lineax is not a dependency of ntkspec: install it aside (``pip install --target DIR
lineax``, then drop the jax/numpy/scipy copies) and run with ``PYTHONPATH=.:DIR``.
Usage: ``python -m analysis.compare_lineax``.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np


def main() -> int:
    import jax
    import jax.numpy as jnp
    import lineax as lx

    import ntkspec
    from ntkspec import data, mappings
    from ntkspec.operators import Shifted, grid_operators
    from ntkspec.solvers import cg, t_chan_preconditioner

    arch = ntkspec.ReluMLP(4)
    gauss = mappings.gaussian(0, 2, 256, 10.0)
    img = data.natural_images(512)["astronaut"]
    g_tr, y_tr, g_te, _ = data.image_task(img)
    train, _ = grid_operators(arch, gauss, g_tr, g_te)
    system = Shifted(train, 0.0)
    pre = t_chan_preconditioner(train, 0.0)
    out = {}
    with jax.enable_x64(True):
        Y = jnp.asarray(y_tr)

        def ours():
            s = cg(system, Y, preconditioner=pre, rtol=1e-10, max_iter=2000)
            s.value.block_until_ready()
            return s.value, s.stats["iterations"]

        struct = jax.ShapeDtypeStruct((g_tr.size,), jnp.float64)
        op = lx.FunctionLinearOperator(
            system.matvec, struct, tags=lx.positive_semidefinite_tag
        )
        prec = lx.FunctionLinearOperator(
            pre.apply, struct, tags=lx.positive_semidefinite_tag
        )
        solver = lx.CG(rtol=1e-10, atol=0.0, max_steps=2000)

        @jax.jit
        def solve_lx(Y):
            def one(b):
                sol = lx.linear_solve(
                    op, b, solver, options={"preconditioner": prec}, throw=False
                )
                return sol.value, sol.stats["num_steps"]

            return jax.vmap(one, in_axes=1, out_axes=(1, 0))(Y)

        def theirs():
            x, steps = solve_lx(Y)
            x.block_until_ready()
            return x, int(jnp.max(steps))

        for name, fn in (("ntkspec", ours), ("lineax", theirs)):
            x, its = fn()
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                x, its = fn()
                runs.append(time.perf_counter() - t0)
            r = np.asarray(Y - system.matvec(x))
            res = float(
                np.max(
                    np.linalg.norm(r, axis=0) / np.linalg.norm(np.asarray(Y), axis=0)
                )
            )
            out[name] = dict(
                seconds=statistics.median(runs), iterations=its, residual=res
            )
    out["ratio_lineax_over_ntkspec"] = (
        out["lineax"]["seconds"] / out["ntkspec"]["seconds"]
    )
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
