"""Trained-network sigma sweep for the ``scale_suggestion`` study (CPU-reduced).

For 5 natural and 5 text images (``ntkspec.studies.scale_suggestion.images``, side
``--res``) and each sigma of ``SIGMAS``: a 4-layer ReLU MLP (``--width``, jax ``stax``
initialisation, sigmoid RGB output, the paper's setup otherwise) on the Gaussian mapping
sigma * Z (the study's draw), trained by full-batch Adam on the pixels [::2, ::2];
held-out PSNR on [1::2, 1::2]. Writes ``figures/design/networks_cpu.json`` (or
``--out``), which the study reads. CPU numbers: labelled CPU.

    python analysis/design_networks.py                 # res 64, width 64, 500 steps
    python analysis/design_networks.py --res 256 --width 256 --steps 2000 \
        --out OUT/networks_gpu.json                    # the GPU version (gpu_run.sh)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fit(img, sigma, *, width, steps, lr, seed):
    from ntkspec import data, design, networks
    from ntkspec.kernels import ReluMLP

    h, w, c = img.shape
    pts = np.stack(
        np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij"), -1
    ).reshape(-1, 2)
    y = img.reshape(-1, c)
    tr = data.train_indices((h, w))
    held = data.heldout_indices((h, w))
    mapping = design.family_mapping("gaussian", float(sigma), seed=seed)
    net = networks.mlp(
        ReluMLP(4), mapping, width, out_dim=c, output="sigmoid", initialization="stax"
    )
    params = net.init(jax.random.PRNGKey(10 + seed))
    res = networks.train(
        net, params, pts[tr], y[tr], steps=steps, learning_rate=lr,
        eval_every=steps, progress=False,
    )  # fmt: skip
    pred = np.asarray(net.apply(res.params, pts[held]), dtype=np.float64)
    return data.psnr(pred, y[held])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python analysis/design_networks.py")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=5, help="images per set")
    p.add_argument("--out", default="figures/design/networks_cpu.json")
    args = p.parse_args(argv)
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance
    from ntkspec.studies.scale_suggestion import SIGMAS, images

    load = os.getloadavg()
    t0 = time.perf_counter()
    out = {}
    for name, (_, img) in images(args.res, args.count).items():
        out[name] = {}
        for s in SIGMAS:
            out[name][f"{s:g}"] = fit(
                img, s, width=args.width, steps=args.steps, lr=args.lr, seed=args.seed
            )
        best = max(out[name], key=out[name].get)
        print(name, best, {k: round(v, 2) for k, v in out[name].items()}, flush=True)
    dev = jax.devices()[0]
    command = " ".join(["python analysis/design_networks.py"] + (argv or sys.argv[1:]))
    write_json(
        Path(args.out),
        dict(
            description="Held-out PSNR ([1::2, 1::2]) of trained networks against the "
            "Gaussian sigma (cycles per image side), per image.",
            res=args.res,
            sigmas=list(SIGMAS),
            setup=f"{dev.platform.upper()}: 4 x {args.width} ReLU MLP, stax init, "
            f"sigmoid output, full-batch Adam lr {args.lr:g}, {args.steps} steps, "
            f"{args.res}^2 images (train [::2, ::2])",
            device=dev.platform.upper(),
            psnr_heldout=out,
            seconds=time.perf_counter() - t0,
            load_average_1_5_15min=[round(x, 2) for x in load],
            provenance=provenance(command, args.seed),
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
