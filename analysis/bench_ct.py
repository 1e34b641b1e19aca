"""Benchmark of NTK regression from CT projections at the paper's size (issue 14).

Task (Tancik et al. 2020, Table 1, CT): the first test phantom of
``ntkspec.phantoms.ct_phantoms`` at 512 x 512, 20 parallel-beam projections
(``measurements.ct_projections``), depth-4 ReLU NTK on Gaussian Fourier features
(sigma 4, 256 frequencies, seed 0), ridge 1e-6 x the mean diagonal of A K A^T
(estimated from 64 evenly spaced diagonal entries, outside the timed part), relative
residual 1e-8, t = infinity. Timed: ``ntkspec.inverse_regression`` with the default
("auto": block-circulant two-level) preconditioner, setup included.

Baseline in the same run: unpreconditioned CG on the same system with the same
iteration budget as the preconditioned run's wall time allows (capped), reporting
the residual it reaches; the ratio is wall time per unit of log-residual reduction.

Target (project CPU, 2 cores, shared): under 30 s. Usage:
``python -m analysis.bench_ct [--quick] [--out PATH]`` (``--quick``: 128 x 128).
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

from analysis._bench import peak_mib


def bench(quick: bool = False) -> dict:
    import ntkspec
    from ntkspec import data, inverse, measurements, operators, phantoms
    from ntkspec.solvers import ConvergenceWarning

    n = 128 if quick else 512
    arch = ntkspec.ReluMLP(4)
    gauss = ntkspec.mappings.gaussian(0, 2, 256, 4.0)
    grid = ntkspec.Grid((n, n))
    img = phantoms.ct_phantoms(n, num_search=0, num_test=1).test[0].reshape(-1)
    A = measurements.ct_projections(grid.shape, 20)
    y = A.to_scipy() @ img
    G = operators.composed(A, operators.grid_operator(arch, gauss, grid))
    mean_diag = inverse.mean_measured_diagonal(G, rows=64)
    ridge = 1e-6 * mean_diag

    t0 = time.perf_counter()
    pred, info = ntkspec.inverse_regression(
        arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, return_info=True
    )
    seconds = time.perf_counter() - t0
    recon = np.clip(pred, 0.0, 1.0)
    fit = float(np.linalg.norm(A.to_scipy() @ pred - y) / np.linalg.norm(y))

    cap = max(50, min(3000, 2 * info.iterations))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, base = ntkspec.inverse_regression(
            arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, preconditioner=None,
            max_iter=cap, return_info=True,
        )  # fmt: skip
    base_seconds = time.perf_counter() - t0

    def rate(sec, res):
        return sec / max(-math.log10(max(res, 1e-300)), 1e-12)

    result = {
        "task": f"CT phantom test[0] {n}x{n}, 20 projections, t = infinity",
        "mapping": "gaussian sigma=4, 256 frequencies, seed 0",
        "architecture": "ReluMLP(4), NTK",
        "ridge": ridge,
        "ridge_rule": "1e-6 x mean diag(A K A^T), 64 evenly spaced entries",
        "mean_diagonal_estimate": mean_diag,
        "rtol": 1e-8,
        "seconds": round(seconds, 2),
        "solver": info.solver,
        "preconditioner": info.preconditioner,
        "setup_matvecs": info.setup_matvecs,
        "iterations": info.iterations,
        "relative_residual": info.residual,
        "converged": info.converged,
        "measurement_misfit_relative": fit,
        "psnr_db": data.psnr(recon, img),
        "peak_rss_mib": round(peak_mib(), 1),
        "baseline_unpreconditioned_cg": {
            "max_iter": cap,
            "iterations": base.iterations,
            "relative_residual": base.residual,
            "converged": base.converged,
            "seconds": round(base_seconds, 2),
        },
        "ratio_seconds_per_residual_decade_baseline_over_pcg": round(
            rate(base_seconds, base.residual) / rate(seconds, info.residual), 2
        ),
        "targets": {"under_30s": seconds < 30.0, "converged": bool(info.converged)},
        "quick": quick,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128 task")
    parser.add_argument("--out", default="figures/bench/ct.json")
    args = parser.parse_args(argv)
    import platform

    from ntkspec._io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    result = bench(args.quick)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
    }
    result["load_average_1_5_15min"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
        "note": "the machine is shared: timings scale with the load of other jobs",
    }
    command = "python -m analysis.bench_ct " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    out = Path(args.out)
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
