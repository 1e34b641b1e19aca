"""Benchmark of gd_dynamics on the paper's image task by the Krylov path.

Astronaut RGB, 256 x 256 train pixels [::2, ::2] -> 512 x 512, Gaussian sigma 10 (256
frequencies), ReluMLP(4) NTK, learning rate 1, three finite times. Baseline in the
same run at 64 x 64 -> 128 x 128: the dense path (gd_dynamics on points: one eigh of
the 4096 x 4096 Gram) against the Krylov path; ratio and largest difference.
Held-out PSNR on pixels [1::2, 1::2].

Targets: paper task < 10 s warm; baseline >= 50x faster than dense, equal within 1e-8.

Usage: ``python -m analysis.bench_dynamics [--quick] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from analysis._bench import load_record, timed

TIMES = (1e3, 1e4, 1e5)


def bench(quick: bool = False) -> dict:
    import ntkspec
    from ntkspec import data, mappings

    arch = ntkspec.ReluMLP(4)
    gauss = mappings.gaussian(0, 2, 256, 10.0)
    res = 256 if quick else 512
    img = data.natural_images(res)["astronaut"]
    g_tr, y_tr, g_te, y_te = data.image_task(img)
    held = data.heldout_indices((res, res))
    (_, fte, info), first, warm, runs = timed(
        lambda: ntkspec.gd_dynamics(
            arch, gauss, g_tr, y_tr, g_te, TIMES, 1.0, return_info=True
        ),
        1 if quick else 2,
    )
    paper = {
        "task": f"astronaut RGB, {res // 2}^2 train -> {res}^2, gaussian sigma 10",
        "times": list(TIMES),
        "learning_rate": 1.0,
        "seconds_first_call": round(first, 3),
        "seconds_warm_median": round(warm, 3),
        "krylov_dim": info.krylov_dim,
        "error_estimate": info.error_estimate,
        "converged": info.converged,
        "psnr_heldout": [data.psnr(f[held], y_te[held]) for f in fte],
    }
    small = data.natural_images(128)["astronaut"]
    s_tr, sy_tr, s_te, sy_te = data.image_task(small)
    (k_tr, k_te, k_info), _, kw, _ = timed(
        lambda: ntkspec.gd_dynamics(
            arch, gauss, s_tr, sy_tr, s_te, TIMES, 1.0, return_info=True
        ),
        3,
    )
    (d_tr, d_te), _, dw, _ = timed(
        lambda: ntkspec.gd_dynamics(
            arch, gauss, s_tr.points(), sy_tr, s_te.points(), TIMES, 1.0
        ),
        0 if quick else 1,
    )
    diff = max(
        float(np.max(np.abs(k_te - d_te)) / np.max(np.abs(d_te))),
        float(np.max(np.abs(k_tr - d_tr)) / np.max(np.abs(d_tr))),
    )
    baseline = {
        "task": "astronaut 128^2, 64^2 train -> 128^2",
        "dense_seconds_warm": round(dw, 3),
        "krylov_seconds_warm_median": round(kw, 3),
        "time_ratio_dense_over_krylov": round(dw / kw, 1),
        "krylov_dim": k_info.krylov_dim,
        "max_relative_difference": diff,
    }
    targets = {
        "paper_task_under_10s_warm": warm < 10.0,
        "baseline_at_least_50x": dw / kw >= 50.0,
        "baseline_equal_within_1e-8": diff <= 1e-8,
    }
    return {"paper_task": paper, "dense_vs_krylov": baseline, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128^2 -> 256^2 task")
    parser.add_argument("--out", default="figures/bench/dynamics.json")
    args = parser.parse_args(argv)
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    result = bench(args.quick)
    result["load_average_1_5_15min"] = load_record(load_before)
    command = "python -m analysis.bench_dynamics " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    result["quick"] = args.quick
    write_json(Path(args.out), result)
    print(json.dumps({k: result[k] for k in ("paper_task", "dense_vs_krylov")}))
    for k, v in result["targets"].items():
        print(f"target {k}: {'hit' if v else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
