"""Trained networks on the MRI and 3D-shape tasks (Tancik et al. 2020, Table 1).

MRI, as the ``3d_MRI`` notebook: a 4 x 256 ReLU MLP with a sigmoid output (jax
``stax`` initialisation) on the whole grid, full-batch Adam (lr 2e-3, every mapping)
for 1000 steps on 0.5 * mean((A f - y)^2), A the Gaussian k-space mask of
``ntkspec.studies.mri_table.mri_mask`` (orthonormal FFT; the notebook's unnormalised
FFT only rescales the loss, which Adam ignores up to its epsilon), PSNR of the volume
against the phantom, mean +- std over the test phantoms of
``ntkspec.phantoms.mri_phantoms`` (3D Shepp-Logan; the paper's ATLAS brains are not
available). Scales: Gaussian sigma 2, positional encoding S = 4 (the Shepp-Logan
option).

Shape, as the ``3d_shape_occupancy`` notebook: an 8 x 256 ReLU MLP with a logit output
(stax initialisation), sigmoid binary cross-entropy, Adam with learning rate
5e-4 * 0.1^(step / 5000), 10,000 steps, each on 32,768 fresh uniform points of the box;
mapped inputs divided by ||a|| (raw input x - 1/2, the notebook's 2x - 1 up to a
factor 2); Gaussian sigma 12, positional S = 6. IoU at 0.5 of the network itself
(no grid) on 2^18 uniform and 2^18 near-surface points, mean +- std over the shapes
of ``ntkspec.shapes.shape_set``.

Run by ``analysis/gpu_run.sh`` at full size on a GPU; on a CPU pass reduced sizes and
the JSON says so ("device", the sizes and ``reduced``).

Usage: ``python -m analysis.mri_shape_networks [--task mri|shape|both] [--mri-res 96]
[--mri-images 6] [--mri-steps 1000] [--shapes 4] [--shape-steps 10000]
[--batch 32768] [--eval-points 262144] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np


def _stat(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def run_mri(res: int, images: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import networks, phantoms
    from ntkspec.studies.mri_table import PAPER_MRI, mri_mappings, mri_mask

    arch = ntkspec.ReluMLP(
        4, W_std=1.0, b_std=0.0, parameterization="standard", width=256
    )
    grid = ntkspec.Grid((res, res, res))
    v = jnp.asarray(np.asarray(grid.points(), np.float32))
    A = mri_mask(res)
    test = phantoms.mri_phantoms(res, num_search=0, num_test=images).test
    out = {}
    for name, mapping in mri_mappings(0).items():
        net = networks.mlp(arch, mapping, 256, output="sigmoid", initialization="stax")
        scores = []
        for i, img in enumerate(test):
            y = A.forward(jnp.asarray(img.reshape(-1), jnp.float32))
            params = net.init(jax.random.PRNGKey(10 + i))
            opt = optax.adam(2e-3)
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
            rec = np.asarray(net.apply(params, v)[:, 0], np.float64)
            err = np.mean((np.clip(rec, 0, 1) - img.reshape(-1)) ** 2)
            scores.append(float(-10 * np.log10(err)))
        out[name] = {
            "psnr": _stat(scores),
            "per_image": scores,
            "paper": {"mean": PAPER_MRI[name][0], "std": PAPER_MRI[name][1]},
        }
    return {
        "results": out,
        "res": res,
        "images": images,
        "steps": steps,
        "keep_fraction": A.keep_fraction,
        "reduced": res != 96 or images != 6 or steps != 1000,
    }


def _normalised(mapping):
    import ntkspec

    if not isinstance(mapping, ntkspec.FourierMapping):
        return mapping
    a = np.asarray(mapping.a, np.float64)
    return ntkspec.FourierMapping(np.asarray(mapping.B), a / np.linalg.norm(a))


def run_shape(num_shapes: int, steps: int, batch: int, eval_points: int) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    import ntkspec
    from ntkspec import networks, shapes
    from ntkspec.studies.shape_table import PAPER_SHAPE, shape_mappings

    arch = ntkspec.ReluMLP(
        8, W_std=1.0, b_std=0.0, parameterization="standard", width=256
    )
    solids = shapes.shape_set(0)[:num_shapes]
    uniform = shapes.uniform_points(eval_points, seed=0)
    out = {}
    for name, mapping in shape_mappings(0).items():
        net = networks.mlp(
            arch, _normalised(mapping), 256, output=None, initialization="stax"
        )
        per_shape = []
        for i, solid in enumerate(solids):
            params = net.init(jax.random.PRNGKey(10 + i))
            schedule = optax.exponential_decay(5e-4, 5000, 0.1)
            opt = optax.adam(schedule)
            state = opt.init(params)

            def loss(p, x, net=net, solid=solid):
                target = shapes.occupancy(solid, x)
                logits = net.apply(p, x)[:, 0]
                return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, target))

            @functools.partial(jax.jit, static_argnames=("opt", "loss"))
            def step(p, s, key, opt=opt, loss=loss):
                x = jax.random.uniform(key, (batch, 3), jnp.float32)
                g = jax.grad(loss)(p, x)
                upd, s = opt.update(g, s, p)
                return optax.apply_updates(p, upd), s

            key = jax.random.PRNGKey(100 + i)
            for _ in range(steps):
                key, sub = jax.random.split(key)
                params, state = step(params, state, sub)
            near = shapes.near_surface_points(solid, eval_points, seed=0)
            scores = {}
            for label, pts in (("uniform", uniform), ("near_surface", near)):
                logits = np.concatenate(
                    [
                        np.asarray(net.apply(params, jnp.asarray(c, jnp.float32)))
                        for c in np.array_split(pts, max(1, len(pts) // 65536))
                    ]
                )[:, 0]
                prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
                scores[label] = shapes.iou(prob, shapes.occupancy(solid, pts))
            per_shape.append({"shape": solid.name, **scores})
        out[name] = {
            "iou_uniform": _stat([s["uniform"] for s in per_shape]),
            "iou_near_surface": _stat([s["near_surface"] for s in per_shape]),
            "per_shape": per_shape,
            "paper": {"mean": PAPER_SHAPE[name][0], "std": PAPER_SHAPE[name][1]},
        }
    return {
        "results": out,
        "shapes": num_shapes,
        "steps": steps,
        "batch": batch,
        "eval_points": eval_points,
        "reduced": num_shapes != 4
        or steps != 10_000
        or batch != 32_768
        or eval_points != 2**18,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mri", "shape", "both"), default="both")
    parser.add_argument("--mri-res", type=int, default=96)
    parser.add_argument("--mri-images", type=int, default=6)
    parser.add_argument("--mri-steps", type=int, default=1000)
    parser.add_argument("--shapes", type=int, default=4)
    parser.add_argument("--shape-steps", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=32_768)
    parser.add_argument("--eval-points", type=int, default=2**18)
    parser.add_argument("--out", default="figures/mri_shape/networks.json")
    args = parser.parse_args(argv)
    import jax

    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    t0 = time.perf_counter()
    result = {"device": str(jax.devices()[0])}
    if args.task in ("mri", "both"):
        result["mri"] = run_mri(args.mri_res, args.mri_images, args.mri_steps)
    if args.task in ("shape", "both"):
        result["shape"] = run_shape(
            args.shapes, args.shape_steps, args.batch, args.eval_points
        )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    command = "python -m analysis.mri_shape_networks " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    write_json(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
