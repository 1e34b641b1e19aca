"""Benchmark of NTK regression from CT projections at the paper's size (issue 14).

Task (Tancik et al. 2020, Table 1, CT): the first test phantom of
``ntkspec.phantoms.ct_phantoms`` at 512 x 512, 20 parallel-beam projections
(``measurements.ct_projections``), depth-4 ReLU NTK on Gaussian Fourier features
(sigma 4, 256 frequencies, seed 0), ridge 1e-6 x the mean diagonal of A K A^T
(estimated from 64 evenly spaced diagonal entries, outside the timed part), relative
residual 1e-8, t = infinity. Timed: ``ntkspec.inverse_regression`` with the default
("auto") preconditioner, setup included: for CT the balancing (deflated) block
preconditioner with the CT block model (``inverse.ct_block_model``).

Baseline in the same run: the previous default, the block-circulant two-level
preconditioner (``preconditioner="blocks"``), on the same system; ratios of wall time
and iterations. ``--with-cg`` adds unpreconditioned CG capped at 3000 iterations
(it stalls: 2.2e-4 after 3000 iterations, 268 s, in an earlier run).

Reported: total wall seconds and process CPU seconds, the setup (preconditioner)
and iteration seconds (``InverseInfo.setup_seconds`` / ``solve_seconds``), ms per
iteration, iterations, residual, the load average before and after, and the
baseline ratios. ``--profile`` adds the setup parts (``ct_block_model``,
``deflated_block_preconditioner``) and one product each with G, K, A, A^T and the
preconditioner (medians of 5).

Target (project CPU, 2 cores, shared): under 30 s. Usage:
``python -m analysis.bench_ct [--quick] [--with-cg] [--profile] [--out PATH]``
(``--quick``: 128 x 128).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from analysis._bench import load_record, machine_record, peak_mib


def _median_ms(fn, reps: int = 5) -> float:
    fn()  # compile
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 2)


def profile(arch, gauss, grid, A, y, ridge) -> dict:
    """Where the time goes, by public parts: setup pieces and one iteration's products.

    Wall seconds of ``inverse.ct_block_model`` and of
    ``inverse.deflated_block_preconditioner`` (the coarse products G Z and the block
    factorisations), and medians of one product with G, K, A, A^T and the
    preconditioner (jitted, one vector).
    """
    import jax
    import jax.numpy as jnp

    from ntkspec import inverse, operators
    from ntkspec._numerics import x64_scope

    nb = A.shape[0] // grid.shape[-1]
    K = operators.grid_operator(arch, gauss, grid)
    G = operators.composed(A, K)
    out = {}
    with x64_scope(np.float64):
        t0 = time.perf_counter()
        blocks = inverse.ct_block_model(K, nb)
        out["ct_block_model_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        pre = inverse.deflated_block_preconditioner(G, blocks, shift=ridge)
        out["deflated_block_preconditioner_s"] = round(time.perf_counter() - t0, 2)
        u = jnp.asarray(y)
        x = jnp.asarray(np.ones(grid.size))
        mv = jax.jit(lambda op, v: op.matvec(v))
        fw = jax.jit(lambda a, v: a.forward(v))
        ad = jax.jit(lambda a, v: a.adjoint(v))
        ap = jax.jit(lambda p, v: p.apply(v))
        out["per_product_ms"] = {
            "G = A K A^T": _median_ms(lambda: mv(G, u).block_until_ready()),
            "K (padded FFT)": _median_ms(lambda: mv(K, x).block_until_ready()),
            "A": _median_ms(lambda: fw(A, x).block_until_ready()),
            "A^T": _median_ms(lambda: ad(A, u).block_until_ready()),
            "preconditioner apply": _median_ms(lambda: ap(pre, u).block_until_ready()),
        }
    return out


def bench(
    quick: bool = False, with_cg: bool = False, with_profile: bool = False
) -> dict:
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

    t0, c0 = time.perf_counter(), time.process_time()
    pred, info = ntkspec.inverse_regression(
        arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, return_info=True
    )
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    recon = np.clip(pred, 0.0, 1.0)
    fit = float(np.linalg.norm(A.to_scipy() @ pred - y) / np.linalg.norm(y))

    # Baseline, same run: the previous default, the block-circulant two-level
    # preconditioner (Strang symbols + exact coarse space).
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, base = ntkspec.inverse_regression(
            arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, preconditioner="blocks",
            max_iter=4000, return_info=True,
        )  # fmt: skip
    base_seconds = time.perf_counter() - t0
    base_cpu = time.process_time() - c0
    base_its = base.iterations
    cg_note = None
    if with_cg:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, plain = ntkspec.inverse_regression(
                arch, gauss, grid, A, y, ridge=ridge, rtol=1e-8, preconditioner=None,
                max_iter=3000, return_info=True,
            )  # fmt: skip
        cg_note = {
            "iterations": plain.iterations,
            "relative_residual": plain.residual,
            "converged": plain.converged,
            "seconds": round(time.perf_counter() - t0, 2),
        }

    result = {
        "task": f"CT phantom test[0] {n}x{n}, 20 projections, t = infinity",
        "mapping": "gaussian sigma=4, 256 frequencies, seed 0",
        "architecture": "ReluMLP(4), NTK",
        "ridge": ridge,
        "ridge_rule": "1e-6 x mean diag(A K A^T), 64 evenly spaced entries",
        "mean_diagonal_estimate": mean_diag,
        "rtol": 1e-8,
        "seconds": round(seconds, 2),
        "process_cpu_seconds": round(cpu_seconds, 2),
        "solver": info.solver,
        "preconditioner": info.preconditioner,
        "setup_matvecs": info.setup_matvecs,
        "setup_seconds": info.setup_seconds,
        "iteration_seconds": info.solve_seconds,
        "ms_per_iteration": round(
            1e3 * info.solve_seconds / max(info.iterations, 1), 1
        ),
        "iterations": info.iterations,
        "relative_residual": info.residual,
        "converged": info.converged,
        "measurement_misfit_relative": fit,
        "psnr_db": data.psnr(recon, img),
        "peak_rss_mib": round(peak_mib(), 1),
        "baseline_block_circulant": {
            "preconditioner": base.preconditioner,
            "iterations": base_its,
            "relative_residual": base.residual,
            "converged": base.converged,
            "seconds": round(base_seconds, 2),
            "process_cpu_seconds": round(base_cpu, 2),
            "setup_matvecs": base.setup_matvecs,
            "setup_seconds": base.setup_seconds,
            "iteration_seconds": base.solve_seconds,
        },
        "ratio_seconds_baseline_over_default": round(base_seconds / seconds, 2),
        "ratio_iterations_baseline_over_default": round(base_its / info.iterations, 2),
        "unpreconditioned_cg": cg_note,
        "profile": profile(arch, gauss, grid, A, y, ridge) if with_profile else None,
        "targets": {"under_30s": seconds < 30.0, "converged": bool(info.converged)},
        "quick": quick,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128x128 task")
    parser.add_argument(
        "--with-cg", action="store_true", help="also unpreconditioned CG (3000 its)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also time the setup parts and products"
    )
    parser.add_argument("--out", default="figures/bench/ct.json")
    args = parser.parse_args(argv)

    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    result = bench(args.quick, args.with_cg, args.profile)
    result["machine"] = machine_record()
    result["load_average_1_5_15min"] = load_record(load_before)
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
