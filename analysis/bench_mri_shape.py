"""Benchmark of the MRI and 3D-shape columns of Table 1 by the NTK (issue 15).

MRI: the first test phantom of ``ntkspec.phantoms.mri_phantoms`` at 64^3, the
notebook's Gaussian k-space mask (45,000 draws: 12.65 % kept), the NTK of the
notebook's 4 x 256 stax network on Gaussian features (sigma 2, 256 frequencies, seed
0), ridge 1e-6 x the mean diagonal of A K A^T (16 entries, outside the timed part),
relative residual 1e-8, t = infinity. Timed: ``ntkspec.inverse_regression`` with the
default ("auto": the k-space preconditioner) setup included; the finite budget (1000
GD steps, Lanczos dimension 64) is timed as well, outside the target.

Shape: the first shape of ``ntkspec.shapes.shape_set`` (bumpy_sphere), occupancy on
the 32^3 training grid (every other node of 64^3), the NTK of the notebook's 8 x 256
network on Gaussian features (sigma 12), predicted on the 64^3 grid by
``ntkspec.kernel_regression`` (structured path, PCG with T. Chan's preconditioner,
rtol 1e-8), operator construction included; IoU at 0.5 on 2^18 uniform points
(trilinear interpolation of the grid).

Baselines in the same run: unpreconditioned CG on the same systems with an
iteration cap, reporting the residual reached; the ratio is wall time per decade of
residual reduction, baseline over the preconditioned solve.

Targets (project CPU, 2 cores, shared): MRI 64^3 under 60 s; shape occupancy on a
64^3 grid under 60 s. Usage: ``python -m analysis.bench_mri_shape [--quick]
[--out PATH]`` (``--quick``: MRI 16^3, shape 8^3 -> 16^3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from analysis._bench import load_record, machine_record, peak_mib


def _rate(sec: float, res: float) -> float:
    return sec / max(-math.log10(max(res, 1e-300)), 1e-12)


def bench_mri(n: int) -> dict:
    import ntkspec
    from ntkspec import data, inverse, operators, phantoms
    from ntkspec.solvers import ConvergenceWarning
    from ntkspec.studies.mri_table import mri_mask, power_lambda_max

    arch = ntkspec.ReluMLP(
        4, W_std=1.0, b_std=0.0, parameterization="standard", width=256
    )
    gauss = ntkspec.mappings.gaussian(0, 3, 256, 2.0)
    grid = ntkspec.Grid((n, n, n))
    img = phantoms.mri_phantoms(n, num_search=0, num_test=1).test[0].reshape(-1)
    A = mri_mask(n)
    y = np.asarray(A.forward(img))
    G = operators.composed(A, operators.grid_operator(arch, gauss, grid))
    ridge = 1e-6 * inverse.mean_measured_diagonal(G, rows=16)

    t0 = time.perf_counter()
    pred, info = ntkspec.inverse_regression(
        arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, return_info=True
    )
    seconds = time.perf_counter() - t0
    lr = 1.0 / (power_lambda_max(G, A.shape[0]) + ridge)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pred_k, info_k = ntkspec.inverse_regression(
            arch, gauss, grid, A, y, ridge=ridge, times=1000, discrete=True,
            learning_rate=lr, krylov_dim=64, rtol=1e-6, return_info=True,
        )  # fmt: skip
    budget_seconds = time.perf_counter() - t0

    cap = max(50, min(2000, 4 * info.iterations))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, base = ntkspec.inverse_regression(
            arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, preconditioner=None,
            max_iter=cap, return_info=True,
        )  # fmt: skip
    base_seconds = time.perf_counter() - t0
    return {
        "task": f"MRI phantom test[0] {n}^3, Gaussian k-space mask, t = infinity",
        "keep_fraction": A.keep_fraction,
        "mapping": "gaussian sigma=2, 256 frequencies, seed 0",
        "architecture": "ReluMLP(4, W_std=1, b_std=0, standard, width=256), NTK",
        "ridge": ridge,
        "rtol": 1e-8,
        "seconds": round(seconds, 2),
        "solver": info.solver,
        "preconditioner": info.preconditioner,
        "iterations": info.iterations,
        "relative_residual": info.residual,
        "converged": info.converged,
        "psnr_db": data.psnr(np.clip(pred, 0, 1), img),
        "budget_1000_gd": {
            "seconds": round(budget_seconds, 2),
            "krylov_dim": 64,
            "lanczos_error_estimate": info_k.residual,
            "psnr_db": data.psnr(np.clip(pred_k, 0, 1), img),
        },
        "baseline_unpreconditioned_cg": {
            "max_iter": cap,
            "iterations": base.iterations,
            "relative_residual": base.residual,
            "converged": base.converged,
            "seconds": round(base_seconds, 2),
        },
        "ratio_seconds_per_residual_decade_baseline_over_pcg": round(
            _rate(base_seconds, base.residual) / _rate(seconds, info.residual), 2
        ),
        "target_under_60s": bool(seconds < 60.0 and info.converged),
    }


def bench_shape(n: int, points: int) -> dict:
    import ntkspec
    from ntkspec import operators, shapes, solvers
    from ntkspec.studies.shape_table import grid_iou_scores

    arch = ntkspec.ReluMLP(
        8, W_std=1.0, b_std=0.0, parameterization="standard", width=256
    )
    gauss = ntkspec.mappings.gaussian(0, 3, 256, 12.0)
    solid = shapes.shape_set(0)[0]
    train, test = ntkspec.Grid((n // 2,) * 3), ntkspec.Grid((n,) * 3)
    y = shapes.occupancy(solid, train.points())
    t0 = time.perf_counter()
    pred, info = ntkspec.kernel_regression(
        arch, gauss, train, y, test, rtol=1e-8, return_info=True
    )
    seconds = time.perf_counter() - t0
    pts = shapes.uniform_points(points, seed=0)
    scores = grid_iou_scores(
        pred.reshape(test.shape),
        solid,
        {"uniform": (pts, shapes.occupancy(solid, pts))},
    )

    cap = max(50, min(2000, 4 * info.iterations))
    t0 = time.perf_counter()
    K, _ = operators.grid_operators(arch, gauss, train, test)
    sol = solvers.cg(K, np.asarray(y, np.float64), rtol=1e-8, max_iter=cap)
    base_seconds = time.perf_counter() - t0
    st = sol.stats
    return {
        "task": (
            f"occupancy of {solid.name}: train {n // 2}^3 -> predict {n}^3, t = inf"
        ),
        "mapping": "gaussian sigma=12, 256 frequencies, seed 0",
        "architecture": "ReluMLP(8, W_std=1, b_std=0, standard, width=256), NTK",
        "rtol": 1e-8,
        "seconds": round(seconds, 2),
        "solver": info.solver,
        "iterations": info.iterations,
        "relative_residual": info.residual,
        "converged": info.converged,
        "iou_uniform_interpolated": scores["uniform"],
        "iou_heldout_nodes": scores["heldout_nodes"],
        "evaluation_points": points,
        "baseline_unpreconditioned_cg": {
            "max_iter": cap,
            "iterations": st["iterations"],
            "relative_residual": st["residual"],
            "converged": st["converged"],
            "seconds": round(base_seconds, 2),
            "note": "operator build included; no test-grid product",
        },
        "ratio_seconds_per_residual_decade_baseline_over_pcg": round(
            _rate(base_seconds, st["residual"]) / _rate(seconds, info.residual), 2
        ),
        "target_under_60s": bool(seconds < 60.0 and info.converged),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16^3 tasks")
    parser.add_argument("--out", default="figures/bench/mri_shape.json")
    args = parser.parse_args(argv)

    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    n = 16 if args.quick else 64
    result = {
        "mri": bench_mri(n),
        "shape": bench_shape(n, 2**14 if args.quick else 2**18),
        "peak_rss_mib": round(peak_mib(), 1),
        "device": "cpu",
        "quick": args.quick,
    }
    result["targets"] = {
        "mri_64_under_60s": result["mri"]["target_under_60s"] and not args.quick,
        "shape_64_under_60s": result["shape"]["target_under_60s"] and not args.quick,
    }
    result["machine"] = machine_record()
    result["load_average_1_5_15min"] = load_record(load_before)
    command = "python -m analysis.bench_mri_shape " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    write_json(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
