"""Benchmark of ``ntkspec.design.suggest_scale`` against the network sweep it replaces.

* ``suggest_scale(ReluMLP(4), image)`` on astronaut at 512^2 (the paper's task, the
  default 11 Gaussian sigmas at the default budget): first call (compilation included)
  and the median of warm calls. Target: under 10 s on this CPU.
* The sweep it replaces: one 4 x 256 network (the paper's: stax init, sigmoid, Adam)
  per sigma, 2000 full-batch steps each, measured on this machine at a reduced size
  (``--net-res``, default 64^2: 32^2 training pixels) for ``--net-steps`` steps and
  extrapolated linearly in steps (a step costs the same every time) to 11 x 2000
  steps; ``suggest_scale`` is timed at the same reduced size for the ratio.

Writes ``figures/bench/design.json``; records the load average (a shared 2-core
machine: timings scale with other jobs' load). CPU numbers.

    python -m analysis bench_design            # 512^2 suggest + reduced-size ratio
    python -m analysis bench_design --quick    # 64^2 only
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import numpy as np

from analysis._bench import load_record, timed


def _suggest(img):
    import ntkspec
    from ntkspec import design

    return lambda: design.suggest_scale(ntkspec.ReluMLP(4), img)


def _network_seconds_per_step(img, steps: int) -> float:
    import time

    from ntkspec import data, design, networks
    from ntkspec.kernels import ReluMLP

    h, w, c = img.shape
    pts = np.stack(
        np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij"), -1
    ).reshape(-1, 2)
    tr = data.train_indices((h, w))
    mp = design.family_mapping("gaussian", 10.0)
    net = networks.mlp(
        ReluMLP(4), mp, 256, out_dim=c, output="sigmoid", initialization="stax"
    )
    params = net.init(jax.random.PRNGKey(0))
    kw = dict(steps=steps, learning_rate=1e-3, eval_every=steps, progress=False)
    networks.train(net, params, pts[tr], img.reshape(-1, c)[tr], **kw)  # compile
    t0 = time.perf_counter()
    res = networks.train(net, params, pts[tr], img.reshape(-1, c)[tr], **kw)
    jax.block_until_ready(res.params)
    return (time.perf_counter() - t0) / steps


def bench(quick: bool, net_res: int, net_steps: int) -> dict:
    from ntkspec import data, design

    sweep_points = len(design.DEFAULT_SCALES["gaussian"])
    out = dict(scales=list(design.DEFAULT_SCALES["gaussian"]), time=design.DEFAULT_TIME)
    if not quick:
        img = data.natural_images(512)["astronaut"]
        choice, first, warm, runs = timed(_suggest(img), 2)
        out["suggest_512"] = dict(
            first_call_s=first, warm_median_s=warm, warm_s=runs,
            scale=choice.scale, target_s=10.0, hit=bool(warm < 10.0),
            first_call_hit=bool(first < 10.0),
        )  # fmt: skip
    small = data.natural_set(net_res)["astronaut"]
    choice, first, warm, runs = timed(_suggest(small), 2)
    per_step = _network_seconds_per_step(small, net_steps)
    sweep_s = per_step * 2000 * sweep_points
    out["reduced"] = dict(
        res=net_res,
        suggest_first_call_s=first,
        suggest_warm_median_s=warm,
        suggest_scale=choice.scale,
        network_seconds_per_step=per_step,
        network_steps_timed=net_steps,
        network_sweep_s_extrapolated=sweep_s,
        network_sweep_note=f"{sweep_points} networks x 2000 Adam steps, 4 x 256, "
        f"{net_res // 2}^2 training pixels; timed {net_steps} steps, extrapolated "
        "linearly",
        ratio_sweep_over_suggest_warm=sweep_s / warm,
        ratio_sweep_over_suggest_first=sweep_s / first,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis bench_design")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--net-res", type=int, default=64)
    p.add_argument("--net-steps", type=int, default=100)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from ntkspec.io import write_json
    from ntkspec.provenance import provenance

    load_before = os.getloadavg()
    res = bench(args.quick, args.net_res, 20 if args.quick else args.net_steps)
    res["device"] = f"CPU ({os.cpu_count()} cores)"
    res["load_average_1_5_15min"] = load_record(load_before)
    command = " ".join(["python -m analysis bench_design"] + (argv or []))
    res["provenance"] = provenance(command, 0)
    default = (
        "figures/bench/design_quick.json" if args.quick else "figures/bench/design.json"
    )
    write_json(Path(args.out or default), res)
    if "suggest_512" in res:
        s = res["suggest_512"]
        verdict = "hit" if s["hit"] else "miss"
        print(
            f"suggest 512^2: first {s['first_call_s']:.2f} s, warm "
            f"{s['warm_median_s']:.2f} s (target 10 s: {verdict})"
        )
    r = res["reduced"]
    print(f"{r['res']}^2: suggest warm {r['suggest_warm_median_s']:.2f} s; network "
          f"sweep {r['network_sweep_s_extrapolated']:.0f} s; ratio "
          f"{r['ratio_sweep_over_suggest_warm']:.0f}x")  # fmt: skip
    print("load", res["load_average_1_5_15min"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
