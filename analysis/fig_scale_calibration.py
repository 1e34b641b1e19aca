"""Calibrate the default budget of ``ntkspec.design.suggest_scale``.

Predicted held-out PSNR of the infinitely wide ReluMLP(4) against the Gaussian sigma on
astronaut (the paper's task: 256^2 train -> 512^2), at several gradient-flow times
(``gd_dynamics`` units, learning rate 1), beside the committed GPU sweep of trained
4 x 256 networks (``figures/validation/gpu_h100/table1_networks.json``). The default
budget is the time whose NTK curve peaks where the networks peak (sigma = 10). One
Lanczos run per sigma serves every finite time.

    python -m analysis fig_scale_calibration            # 512^2 (about a minute, CPU)
    python -m analysis fig_scale_calibration --quick    # 128^2, 4 sigmas, 3 times
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

GPU_SWEEP = Path("figures/validation/gpu_h100/table1_networks.json")
SIGMAS = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0, 32.0, 64.0)
TIMES = (1e2, 1e3, 3e3, 1e4, 3e4, 1e5)


def curves(res: int, sigmas, times, seed: int = 0) -> dict:
    import ntkspec
    from ntkspec import data, design

    img = data.natural_images(res)["astronaut"]
    arch = ntkspec.ReluMLP(4)
    c = img.shape[-1]
    n = res // 2
    y_tr = img[::2, ::2].reshape(-1, c)
    held = img[1::2, 1::2]
    table = np.empty((len(times), len(sigmas)))
    for j, s in enumerate(sigmas):
        mp = design.family_mapping("gaussian", s, num_freqs=256, seed=seed)
        _, f_te = ntkspec.gd_dynamics(
            arch, mp, ntkspec.Grid((n, n)), y_tr, ntkspec.Grid((res, res)),
            list(times), 1.0, rtol=1e-6,
        )  # fmt: skip
        for i in range(len(times)):
            pred = f_te[i].reshape(res, res, c)[1::2, 1::2]
            table[i, j] = data.psnr(pred, held)
    return dict(
        image="astronaut",
        res=res,
        sigmas=list(sigmas),
        times=list(times),
        psnr=table.tolist(),
        best_sigma={
            f"{t:g}": float(sigmas[int(np.argmax(r))])
            for t, r in zip(times, table, strict=True)
        },
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis fig_scale_calibration")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="figures/design")
    args = p.parse_args(argv)
    from ntkspec.io import agg_subplots, save_figure, write_json
    from ntkspec.provenance import provenance

    load = os.getloadavg()
    t0 = time.perf_counter()
    if args.quick:
        res = curves(128, (2.0, 4.0, 10.0, 32.0), (1e2, 1e4, np.inf))
    else:
        res = curves(512, SIGMAS, TIMES)
    res["seconds"] = time.perf_counter() - t0
    res["device"] = "CPU"
    res["load_average_1_5_15min"] = [round(x, 2) for x in load]
    if GPU_SWEEP.exists():
        runs = json.loads(GPU_SWEEP.read_text())["sigma_sweep"]["runs"]
        res["gpu_networks"] = dict(
            source=str(GPU_SWEEP),
            sigmas=[r["sigma"] for r in runs],
            psnr_heldout=[r["psnr_heldout"] for r in runs],
        )
    command = " ".join(["python -m analysis fig_scale_calibration"] + (argv or []))
    res["provenance"] = provenance(command, 0)
    out = Path(args.out)
    name = "calibration_quick" if args.quick else "calibration"
    write_json(out / f"{name}.json", res)
    fig, ax = agg_subplots(figsize=(6.4, 4.2))
    for t, row in zip(res["times"], res["psnr"], strict=True):
        ax.semilogx(res["sigmas"], row, "o-", ms=3, label=f"NTK, t = {t:g}")
    if "gpu_networks" in res:
        g = res["gpu_networks"]
        ax.semilogx(g["sigmas"], g["psnr_heldout"], "k*--", label="networks (GPU)")
    ax.set_xlabel("Gaussian sigma")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_title(f"astronaut {res['res']}^2: NTK budget vs trained networks")
    ax.legend(fontsize=7)
    save_figure(fig, out / f"{name}.png")
    print(json.dumps(res["best_sigma"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
