"""Trained 4 x 256 networks on the CT task (Tancik et al. 2020, Table 1, CT column).

The ``2d_CT`` notebook's setup: a 4-layer ReLU MLP of width 256 with a sigmoid output
(jax ``stax`` initialisation), full-batch Adam for 1000 steps on the loss
0.5 * mean((A f - y)^2) over the 20 projections, learning rate 1e-2 (none, basic) or
1e-3 (positional, Gaussian), PSNR of the clipped reconstruction against the phantom,
mean +- std over the test phantoms of ``ntkspec.phantoms.ct_phantoms``, and the
final relative measurement misfit ||A f - y|| / ||y|| (which places each network on
the NTK's time axis, see ``ntkspec.studies.ct_table``). Run by
``analysis/gpu_run.sh`` on a GPU at 512^2 (8 test phantoms); on a CPU pass a reduced
``--res``/``--images``/``--steps`` and the JSON says so ("device" and the sizes).

Usage: ``python -m analysis.ct_networks [--res 512] [--images 8] [--steps 1000]
[--out PATH]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

LR = {"none": 1e-2, "basic": 1e-2, "positional": 1e-3, "gaussian": 1e-3}


def run(res: int, images: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import measurements, networks, phantoms
    from ntkspec.studies.ct_table import PAPER_CT, ct_mappings

    arch = ntkspec.ReluMLP(
        4, W_std=1.0, b_std=0.0, parameterization="standard", width=256
    )
    grid = ntkspec.Grid((res, res))
    v = jnp.asarray(np.asarray(grid.points(), np.float32))
    A = measurements.ct_projections(grid.shape, 20)
    test = phantoms.ct_phantoms(res, num_search=0, num_test=images).test
    out = {}
    for name, mapping in ct_mappings(0).items():
        net = networks.mlp(arch, mapping, 256, output="sigmoid", initialization="stax")
        scores, misfit = [], []
        for i, img in enumerate(test):
            flat = jnp.asarray(img.reshape(-1), jnp.float32)
            y = A.forward(flat)
            params = net.init(jax.random.PRNGKey(10 + i))
            opt = optax.adam(LR[name])
            state = opt.init(params)

            def loss(p, y=y, net=net):
                return 0.5 * jnp.mean((A.forward(net.apply(p, v)[:, 0]) - y) ** 2)

            @functools.partial(jax.jit, static_argnames=("opt", "loss"))
            def step(p, s, opt=opt, loss=loss):
                g = jax.grad(loss)(p)
                upd, s = opt.update(g, s, p)
                return optax.apply_updates(p, upd), s

            for _ in range(steps):
                params, state = step(params, state)
            raw = net.apply(params, v)[:, 0]
            rec = np.clip(np.asarray(raw), 0, 1)
            scores.append(float(-10 * np.log10(np.mean((rec - img.reshape(-1)) ** 2))))
            # The fit to the data, to place the network on the NTK's time axis.
            misfit.append(
                float(jnp.linalg.norm(A.forward(raw) - y) / jnp.linalg.norm(y))
            )
        out[name] = {
            "psnr": {"mean": float(np.mean(scores)), "std": float(np.std(scores))},
            "per_image": scores,
            "measurement_misfit_relative": misfit,
            "paper": {"mean": PAPER_CT[name][0], "std": PAPER_CT[name][1]},
        }
    return {
        "results": out,
        "res": res,
        "images": images,
        "steps": steps,
        "device": str(jax.devices()[0]),
        "platform": jax.default_backend(),
        "reduced": res != 512 or images != 8 or steps != 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=512)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", default="figures/ct/networks.json")
    args = parser.parse_args(argv)
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    t0 = time.perf_counter()
    result = run(args.res, args.images, args.steps)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    command = "python -m analysis.ct_networks " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    write_json(Path(args.out), result)
    print(json.dumps(result["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
