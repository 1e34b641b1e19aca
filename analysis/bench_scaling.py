"""Strong scaling of the sharded matvecs (issue 18): 1, 2, 4 devices, same problem.

Two operators, each timed on a 1-D mesh of D devices against D = 1 (the baseline:
the same code, one device; throughput ratio and parallel efficiency = ratio / D):

* the blocked Gram of n scattered points (NTK of ReluMLP(4), Gaussian sigma 10,
  256 features), one matvec with c = 3 right-hand sides;
* the embedded-Toeplitz FFT operator of a 3D grid, one channel, sharded along its
  first axis (slab layout).

Correctness: the largest relative difference of each sharded matvec from the
single-device operator without a mesh, and of a CG solve on the blocked Gram.

On CPU the devices are forced host devices (``XLA_FLAGS=--xla_force_host_platform_
device_count=D``, one subprocess per D): they share the machine's cores, so on this
2-core machine no speed-up is expected and the numbers measure the *overhead* of the
sharded code, not scaling. ``--real`` runs on the machine's own devices (a lent GPU
host: analysis/gpu_run.sh), where the target applies: per added device, matvec
throughput within 20 % of linear (efficiency >= 0.8).

Usage: ``python -m analysis.bench_scaling [--quick] [--real] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from analysis._bench import load_record, timed

DEVICES = (1, 2, 4)


def _sizes(quick: bool) -> dict:
    if quick:
        return {"n": 1024, "block": 256, "grid": (32, 32, 16), "repeats": 3}
    return {"n": 4096, "block": 512, "grid": (64, 64, 32), "repeats": 5}


def measure(devices: int, quick: bool) -> dict:
    """Time the two operators on the first ``devices`` devices of this process."""
    import jax
    from jax.sharding import Mesh

    import ntkspec
    from ntkspec import operators, sharding, solvers

    sz = _sizes(quick)
    mesh = Mesh(np.array(jax.devices()[:devices]), ("devices",))
    arch = ntkspec.ReluMLP(4)
    rng = np.random.default_rng(0)
    gauss = ntkspec.mappings.gaussian(0, 2, 256, 10.0)
    f = np.asarray(gauss(rng.uniform(size=(sz["n"], 2))))
    v = rng.normal(size=(sz["n"], 3))
    single = operators.blocked_gram(arch, f, block_rows=sz["block"])
    blk = sharding.device_block(sz["block"], mesh)
    sharded = sharding.shard_operator(
        operators.blocked_gram(arch, f, block_rows=blk), mesh
    )
    ref = np.asarray(single.matvec(v))
    out, first, warm, runs = timed(lambda: np.asarray(sharded.matvec(v)), sz["repeats"])
    blocked = {
        "n": sz["n"],
        "block_rows_all_devices": sz["block"],
        "block_rows_per_device": blk,
        "rhs": 3,
        "seconds_first_call": round(first, 4),
        "seconds_warm_median": round(warm, 4),
        "max_relative_difference": float(
            np.max(np.abs(out - ref)) / np.max(np.abs(ref))
        ),
    }
    s1 = solvers.cg(operators.Shifted(single, 1e-3), v, rtol=1e-10)
    s2 = solvers.cg(operators.Shifted(sharded, 1e-3), v, rtol=1e-10)
    blocked["cg_max_abs_difference"] = float(
        np.max(np.abs(np.asarray(s1.value) - np.asarray(s2.value)))
    )
    blocked["cg_iterations"] = [int(s1.iterations), int(s2.iterations)]
    grid = ntkspec.Grid(sz["grid"])
    gop = operators.grid_operator(arch, ntkspec.mappings.gaussian(1, 3, 64, 4.0), grid)
    sgop = sharding.shard_operator(gop, mesh)
    u = rng.normal(size=grid.size)
    gref = np.asarray(gop.matvec(u))
    gout, gfirst, gwarm, _ = timed(lambda: np.asarray(sgop.matvec(u)), sz["repeats"])
    fft = {
        "grid": list(sz["grid"]),
        "layout": sgop.layout(1),
        "seconds_first_call": round(gfirst, 4),
        "seconds_warm_median": round(gwarm, 4),
        "max_relative_difference": float(
            np.max(np.abs(gout - gref)) / np.max(np.abs(gref))
        ),
    }
    return {
        "devices": devices,
        "device_kind": jax.devices()[0].device_kind,
        "platform": jax.devices()[0].platform,
        "blocked_gram": blocked,
        "grid_fft_3d": fft,
    }


def _forced(devices: int, quick: bool) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([".", env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "analysis.bench_scaling", "--worker", str(devices)]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _scaling(rows: list[dict], real: bool) -> dict:
    base = rows[0]
    out = {}
    for key in ("blocked_gram", "grid_fft_3d"):
        t1 = base[key]["seconds_warm_median"]
        out[key] = [
            {
                "devices": r["devices"],
                "speedup_vs_1": round(t1 / r[key]["seconds_warm_median"], 3),
                "efficiency": round(
                    t1 / r[key]["seconds_warm_median"] / r["devices"], 3
                ),
            }
            for r in rows
        ]
    eff = [e["efficiency"] for e in out["blocked_gram"][1:]]
    ok = [
        max(r["blocked_gram"]["max_relative_difference"], r["grid_fft_3d"][
            "max_relative_difference"]) <= 1e-13
        and r["blocked_gram"]["cg_max_abs_difference"] <= 1e-8
        for r in rows
    ]  # fmt: skip
    out["targets"] = {
        "sharded_equals_single_device": all(ok),
        "matvec_efficiency_at_least_0.8_per_device": (
            bool(min(eff) >= 0.8) if real and eff else None
        ),
    }
    if not real:
        out["targets"]["note"] = (
            "forced host devices share this machine's cores: no speed-up is expected"
            " and the efficiency target is not assessed here (it needs real devices,"
            " analysis/gpu_run.sh)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems")
    parser.add_argument("--real", action="store_true", help="this machine's devices")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="figures/bench/scaling.json")
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.quick)))
        return 0
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    if args.real:
        import jax

        counts = [d for d in (1, 2, 4, 8) if d <= len(jax.devices())]
        rows = [measure(d, args.quick) for d in counts]
    else:
        rows = [_forced(d, args.quick) for d in DEVICES]
    result = {
        "mode": "real devices" if args.real else "forced CPU host devices",
        "runs": rows,
        "scaling": _scaling(rows, args.real),
        "load_average_1_5_15min": load_record(load_before),
        "quick": args.quick,
    }
    command = "python -m analysis.bench_scaling " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    result["provenance"] = provenance(command, 0)
    write_json(Path(args.out), result)
    print(
        f"{'devices':>7} {'blocked s':>10} {'eff':>6} {'fft3d s':>9} {'eff':>6}  diff"
    )
    for r, eb, ef in zip(
        rows,
        result["scaling"]["blocked_gram"],
        result["scaling"]["grid_fft_3d"],
        strict=True,
    ):
        diff = max(
            r["blocked_gram"]["max_relative_difference"],
            r["grid_fft_3d"]["max_relative_difference"],
        )
        print(
            f"{r['devices']:>7} {r['blocked_gram']['seconds_warm_median']:>10.4f} "
            f"{eb['efficiency']:>6.2f} {r['grid_fft_3d']['seconds_warm_median']:>9.4f} "
            f"{ef['efficiency']:>6.2f}  {diff:.1e}"
        )
    for k, v in result["scaling"]["targets"].items():
        if k != "note":
            print(f"target {k}: {'hit' if v else ('n/a' if v is None else 'MISS')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
