"""Table 1's 3D shape column as the fresh-sample networks see it (issue 25).

The infinitely wide 8 x 256 network (``ReluMLP(8, W_std=1, b_std=0,
parameterization="standard", width=256)``, the stax network's NTK) trained by gradient
flow on the population loss over fresh uniform points of the box,
``ntkspec.population.population_flow`` (T_K ~ K/N on an n^3 grid; the box's boundary
handled exactly as the grid, no periodic approximation), for the four mappings of
``analysis.shape_networks_fresh.fresh_mappings`` (the networks' inputs: the shape
table's mappings with a / ||a||) on the four shapes of ``ntkspec.shapes.shape_set``:

* centred: targets ``y - 1/2``, thresholded at 0. This is the linearised sigmoid-BCE
  network: its logits are 4 f_c(eta t / 4) and its probability residual
  ``sigmoid(z) - y`` is the centred flow's residual (``ntkspec.population``);
* uncentred: targets ``y`` (0/1), thresholded at 0.5, as the grid regression of
  ``fig_shape_table`` (kept for comparison). By linearity it is the centred flow plus
  the flow of the constant 1/2, computed as a second channel.

Time: flow time t at rate 1 (mode lambda of K/N decays as exp(-lambda t)). The budget
marked is the SGD control of ``analysis.shape_networks_fresh`` (linear readout, MSE on
centred targets, step ``0.5 / lambda_max(K/N)``): t = steps x lr
(``ntkspec.population.sgd_flow_time``). With ``--networks DIR`` (the output folder of
``shape_networks_fresh``) the Adam networks are placed on the axis by their population
residual ``mean((sigmoid(z) - y)^2)`` against the centred flow's
``mean((f_c - (y - 1/2))^2)`` (log-log interpolation on the computed times), and the
SGD runs at their recorded times.

IoU at 0.5 (probability; 0 for the centred flow) on 2^18 uniform and 2^18
near-surface points, the grid prediction interpolated trilinearly (as
``fig_shape_table``); "none" (raw coordinates, not stationary) is dense, by default at
the largest cubic grid whose N x N Gram fits the dense memory cap (28^3 at the default
4 GiB); ``ceiling`` is the true occupancy on the grid, interpolated the
same way (the flow's limit at t = infinity). Writes ``shape_population.json`` (the
command, sizes, load, per-shape curves, Krylov diagnostics; each mapping is also
checkpointed to ``parts/<mapping>.json`` as it finishes, and a later call with the same
sizes reads it back instead of recomputing), ``shape_population.png``
(IoU against time per mapping, budget marked) and ``shape_population_slices.png``.

Usage::

    python -m analysis.fig_shape_population [--quick] [--res 128] [--none-res N]
        [--networks DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

#: Sizes: stationary grid side, "none" (dense) side, shapes, evaluation points,
#: marching-cubes resolution, SGD control steps, flow times (count, log10 range).
SIZES = {
    "quick": dict(res=8, none_res=6, shapes=1, points=2**12, mc=24, steps=2000,
                  times=(4, -1.0, 2.0)),
    "full": dict(res=128, none_res=None, shapes=4, points=2**18, mc=128, steps=10_000,
                 times=(29, -1.0, 6.0)),
}  # fmt: skip
ORDER = ("none", "basic", "positional", "gaussian")


def _interpolate(volume: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of values on Grid(volume.shape) at points in [0, 1)^3."""
    from scipy.ndimage import map_coordinates

    coords = (points * np.asarray(volume.shape, np.float64)).T
    return map_coordinates(volume, coords, order=1, mode="nearest")


def largest_dense_side(max_bytes=None) -> int:
    """The largest n whose (n^3)^2 float64 Gram fits the dense cap (default 4 GiB)."""
    from ntkspec._numerics import dense_cap_bytes

    cap = dense_cap_bytes(max_bytes)
    n = 1
    while 8.0 * (n + 1) ** 6 <= cap:
        n += 1
    return n


def _match_time(times, curve, target) -> dict:
    """The time where the decreasing curve meets target (log-log interpolation)."""
    t, c = np.asarray(times, float), np.asarray(curve, float)
    if target >= c[0]:
        return {"time": None, "status": "above the first computed time"}
    if target <= c[-1]:
        return {"time": None, "status": "beyond the last computed time"}
    i = int(np.flatnonzero(c <= target)[0])
    lt, lc = np.log(t[i - 1 : i + 1]), np.log(c[i - 1 : i + 1])
    s = (np.log(target) - lc[0]) / (lc[1] - lc[0])
    return {"time": float(np.exp(lt[0] + s * (lt[1] - lt[0]))), "status": "matched"}


def _path(info, channel: str) -> dict:
    """The flow's path diagnostics for one channel (JSON)."""
    return {
        "channel": channel,
        "method": info.method,
        "krylov_dim": info.krylov_dim,
        "error_estimate": info.error_estimate,
        "converged": info.converged,
    }


def place_networks(result: dict, name: str, runs: list) -> list:
    """The networks of one mapping on the flow's time axis, with the flow's IoU there.

    Adam runs: the time where the shape's centred-flow residual ``mean((f_c - (y -
    1/2))^2)`` equals the run's ``mean((sigmoid(z) - y)^2)`` (the loss-matched time
    of ``ntkspec.loss_matching``, L(t) evaluated on the computed times and
    interpolated log-log, because the Gram's eigenpairs behind
    ``loss_matching.loss_matched_time`` are not formed on the Krylov path); SGD runs:
    their recorded steps x lr. The flow's IoU at that time is interpolated linearly
    in log t between the computed times (centred, threshold 0). Collapsed runs are
    not placed.
    """
    times = np.asarray(result["times"], float)
    out = []
    for run_ in runs:
        if run_.get("mapping") != name or run_.get("collapsed"):
            continue
        rec = next(
            (r for r in result["per_shape"] if r["shape"] == run_["shape"]), None
        )
        if rec is None:
            continue
        if run_["kind"] == "sgd":
            m = {"time": run_["flow_time"], "status": "steps x lr"}
        else:
            m = _match_time(times, rec["residual_mse_centred"], run_["residual_mse"])
        for key in ("uniform", "near_surface"):
            t = m["time"]
            inside = t is not None and times[0] <= t <= times[-1]
            m[f"flow_iou_{key}"] = (
                float(np.interp(np.log(t), np.log(times), rec[f"iou_{key}_centred"]))
                if inside
                else None
            )
        keep = ("kind", "shape", "iou_uniform", "iou_near_surface")
        out.append({k: run_[k] for k in keep} | {"seed": run_.get("seed", 0)} | m)
    return out


def _networks(folder) -> list:
    runs = sorted(Path(folder, "runs").glob("*.json"))
    return [json.loads(p.read_text()) for p in runs]


def run(args, command: str) -> dict:
    import jax

    import ntkspec
    from ntkspec import shapes
    from ntkspec.io import agg_subplots, save_figure, write_json
    from ntkspec.population import population_flow, sgd_flow_time
    from ntkspec.provenance import provenance
    from ntkspec.studies.shape_table import PAPER_SHAPE

    from .shape_networks_fresh import ARCH_KW, flow_lambda_max, fresh_mappings

    sz = dict(SIZES["quick" if args.quick else "full"])
    for k in ("res", "none_res", "shapes", "points", "steps"):
        if getattr(args, k.replace("-", "_"), None) is not None:
            sz[k] = getattr(args, k)
    if sz["none_res"] is None:  # "none" dense at the largest size within the cap
        sz["none_res"] = largest_dense_side(args.max_bytes)
    started = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    arch = ntkspec.ReluMLP(8, width=256, **ARCH_KW)
    maps = fresh_mappings(args.seed)
    names = [m for m in args.mappings.split(",") if m] if args.mappings else ORDER
    solids = shapes.shape_set(args.seed)[: sz["shapes"]]
    uniform = shapes.uniform_points(sz["points"], seed=args.seed)
    evals = []
    for solid in solids:
        near = shapes.near_surface_points(
            solid, sz["points"], seed=args.seed, resolution=sz["mc"]
        )
        evals.append(
            {
                "uniform": (uniform, shapes.occupancy(solid, uniform)),
                "near_surface": (near, shapes.occupancy(solid, near)),
            }
        )
    nets = _networks(args.networks) if args.networks else []
    count, lo, hi = sz["times"]
    base_times = np.logspace(lo, hi, count)
    results, shown = {}, {}
    out = Path(args.out)
    for name in names:
        mapping = maps[name]
        n = sz["none_res"] if name == "none" else sz["res"]
        # one checkpoint a mapping (atomic): a cut-off run resumes at the next one
        part = out / "parts" / f"{name}.json"
        part_key = {
            "sizes": [n, sz["shapes"], sz["points"], sz["mc"], sz["steps"]],
            "times": list(sz["times"]),
            "seed": args.seed,
            "rtol": args.rtol,
        }
        if part.exists():
            saved = json.loads(part.read_text())
            if saved["key"] == part_key:
                results[name] = saved["result"]
                shown[name] = {
                    k: np.asarray(v, bool) for k, v in saved["shown"].items()
                }
                results[name]["networks"] = place_networks(results[name], name, nets)
                print(f"{name}: read back from {part}", flush=True)
                continue
        grid = ntkspec.Grid((n,) * 3)
        lam = flow_lambda_max(arch, mapping, min(16, n))
        # the SGD control's step 0.5 / lambda_max; the batch does not move the time
        budget = sgd_flow_time(sz["steps"], 0.5 / lam, 1).time
        times = np.unique(np.append(base_times, budget))
        t0 = time.perf_counter()
        pts = grid.points()
        kw = dict(rtol=args.rtol, max_krylov_dim=args.max_krylov_dim,
                  return_info=True, max_bytes=args.max_bytes)  # fmt: skip
        # Krylov/FFT: one channel per call (the Lanczos basis is 8 m N bytes a
        # channel, within --max-bytes): the constant 1/2 once, then each shape's
        # centred flow, scored at once, so only two (T, N) flows are held at a time.
        # Dense ("none"): all channels in one call, one eigh.
        dense = ntkspec.operators.structure(mapping, grid, grid) == "points"
        ycs = [shapes.occupancy(s, pts) - 0.5 for s in solids]
        if dense:
            Y = np.stack([*ycs, np.full(grid.size, 0.5)], axis=1)
            F_all, info = population_flow(arch, mapping, grid, Y, times, **kw)
            F_half = F_all[..., -1]
            infos = [_path(info, "all shapes and the constant 1/2")]
        else:
            F_half, info = population_flow(
                arch, mapping, grid, np.full(grid.size, 0.5), times, **kw
            )
            infos = [_path(info, "constant 1/2")]
        per_shape = []
        for j, solid in enumerate(solids):
            yc = ycs[j]
            if dense:
                F_c = F_all[..., j]
            else:
                F_c, info = population_flow(arch, mapping, grid, yc, times, **kw)
                infos.append(_path(info, solid.name))
            rec = {"shape": solid.name, "residual_mse_centred": []}
            for key in ("uniform", "near_surface"):
                rec[f"iou_{key}_centred"], rec[f"iou_{key}_uncentred"] = [], []
            for i in range(times.size):
                fc = F_c[i].reshape(grid.shape)
                fu = fc + F_half[i].reshape(grid.shape)
                rec["residual_mse_centred"].append(float(np.mean((F_c[i] - yc) ** 2)))
                for key, (p_, occ) in evals[j].items():
                    rec[f"iou_{key}_centred"].append(
                        shapes.iou(_interpolate(fc, p_), occ, threshold=0.0)
                    )
                    rec[f"iou_{key}_uncentred"].append(
                        shapes.iou(_interpolate(fu, p_), occ, threshold=0.5)
                    )
            truth = (yc + 0.5).reshape(grid.shape)
            rec["ceiling"] = {
                k: shapes.iou(_interpolate(truth, p_), o)
                for k, (p_, o) in evals[j].items()
            }
            per_shape.append(rec)
            if j == 0:
                ib = int(np.flatnonzero(times == budget)[0])
                mid = n // 2
                shown[name] = {
                    "truth": (yc.reshape(grid.shape) > 0)[mid],
                    "centred": (F_c[ib].reshape(grid.shape) > 0)[mid],
                    "uncentred": ((F_c[ib] + F_half[ib]).reshape(grid.shape) > 0.5)[
                        mid
                    ],
                }
            del F_c
        del F_half
        seconds = time.perf_counter() - t0
        ib = int(np.flatnonzero(times == budget)[0])
        keys = [k for k in per_shape[0] if k.startswith("iou_")]
        mean = {k: np.mean([r[k] for r in per_shape], axis=0).tolist() for k in keys}
        results[name] = {
            "grid": f"{n}^3",
            "lambda_max_T": lam,
            "budget_time": budget,
            "times": times.tolist(),
            "at_budget": {k: mean[k][ib] for k in keys},
            "mean": mean,
            "per_shape": per_shape,
            "networks": [],
            "flow_seconds": round(seconds, 1),
            "paths": infos,
        }
        write_json(part, {"key": part_key, "result": results[name],
                          "shown": {k: v.astype(int).tolist()
                                    for k, v in shown[name].items()}})  # fmt: skip
        results[name]["networks"] = place_networks(results[name], name, nets)
        print(f"{name} ({n}^3): {seconds:.1f} s; at budget t={budget:.3g}: "
              f"{results[name]['at_budget']}", flush=True)  # fmt: skip
    full = not args.quick and sz["res"] >= 128 and sz["shapes"] == 4
    reduced = [] if full else [
        f"stationary mappings at {sz['res']}^3 (issue: >= 128^3), none at "
        f"{sz['none_res']}^3 (dense)", f"{len(solids)} shapes, {sz['points']} points",
    ]  # fmt: skip
    backend = jax.default_backend()
    label = ("reduced; " if reduced else "") + ("CPU" if backend == "cpu" else backend)
    rows = []
    for name in ORDER:
        if name not in results:
            continue
        r = results[name]["at_budget"]
        rows.append(
            [name, results[name]["grid"], round(results[name]["budget_time"], 1)]
            + [
                round(r[f"iou_{k}_{c}"], 3)
                for c in ("centred", "uncentred")
                for k in ("uniform", "near_surface")
            ]
            + [PAPER_SHAPE[name][0]]
        )
    data = {
        "label": label,
        "reduced": reduced,
        "sizes": {k: v for k, v in sz.items() if k != "times"}
        | {"times": list(sz["times"])},
        "shapes": [s.name for s in solids],
        "arch": "ReluMLP(8, W_std=1, b_std=0, standard, width=256)",
        "results": results,
        "table": {
            "columns": [
                "mapping",
                "grid",
                "budget t (SGD control)",
                "centred uniform",
                "centred near-surface",
                "uncentred uniform",
                "uncentred near-surface",
                "paper",
            ],
            "rows": rows,
            "note": "population flow at the SGD control's flow time (0.5/lambda_max, "
            f"{sz['steps']} steps); IoU means over shapes; {label}",
        },  # fmt: skip
        "seconds": round(time.perf_counter() - started, 1),
        "load": {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()]},
        "provenance": provenance(command, args.seed),
    }
    write_json(out / "shape_population.json", data)

    plot_curves(results, label, out / "shape_population.png")

    fig, axes = agg_subplots(3, len(shown), figsize=(2.4 * len(shown), 7.2),
                             squeeze=False)  # fmt: skip
    for j, (name, s) in enumerate(shown.items()):
        panels = (
            ("truth", solids[0].name),
            ("centred", "centred > 0"),
            ("uncentred", "uncentred > 0.5"),
        )
        for i, (key, title) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(s[key].astype(float), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name}: {title}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"central slice at the budget time, {label}", fontsize=9)
    save_figure(fig, out / "shape_population_slices.png", dpi=110)
    return data


def plot_curves(results: dict, label: str, path) -> None:
    """IoU against flow time per mapping, the SGD budget and the networks marked.

    Networks placed on the axis (``results[m]["networks"]``, :func:`place_networks`)
    are dots (Adam) and squares (SGD) at their time; Adam runs that fit better than
    the flow does by the last computed time are triangles past the axis' end.
    """
    from ntkspec.io import agg_subplots, save_figure
    from ntkspec.studies.shape_table import PAPER_SHAPE

    fig, axes = agg_subplots(1, 2, figsize=(10, 4), squeeze=False)
    colours = dict(zip(ORDER, ("C0", "C1", "C2", "C3"), strict=True))
    for ax, key in zip(axes[0], ("uniform", "near_surface"), strict=True):
        for name, r in results.items():
            c = colours[name]
            ax.plot(r["times"], r["mean"][f"iou_{key}_centred"], "-", color=c,
                    label=f"{name} centred")  # fmt: skip
            ax.plot(r["times"], r["mean"][f"iou_{key}_uncentred"], "--", color=c,
                    label=f"{name} uncentred")  # fmt: skip
            ax.axvline(r["budget_time"], color=c, lw=0.8, ls=":")
            beyond = 1.6 * r["times"][-1]
            for m in r.get("networks", []):
                if m["time"] is not None:
                    marker = "o" if m["kind"] == "adam" else "s"
                    ax.plot(m["time"], m[f"iou_{key}"], marker, color=c, ms=4)
                elif m.get("status") == "beyond the last computed time":
                    ax.plot(beyond, m[f"iou_{key}"], ">", color=c, ms=4)
            ax.axhline(PAPER_SHAPE[name][0], color=c, lw=0.6, alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("population-flow time t (rate 1, operator K/N)")
        ax.set_ylabel(f"IoU ({key.replace('_', '-')})")
        ax.set_ylim(0, 1)
    axes[0, 0].legend(fontsize=6, ncol=2)
    fig.suptitle(
        f"population flow, {label}: dotted = SGD-control budget, thin = paper;"
        " networks: o Adam, s SGD, > Adam past the last time",
        fontsize=8,
    )
    save_figure(fig, path, dpi=110)


def _sci(t: float) -> str:
    """1e6, 3e5: a time on the log grid, short."""
    m, e = f"{t:.0e}".split("e")
    return f"{m}e{int(e)}"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pair(a, b) -> str:
    return f"{_fmt(a)} / {_fmt(b)}"


def _mean_or_none(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


#: The paper's order, best first (Table 1: Gaussian 0.973 > positional 0.960 > basic
#: 0.892 > none 0.864); each pair is (better, worse) in the paper.
PAPER_PAIRS = (("gaussian", "positional"), ("positional", "basic"),
               ("gaussian", "basic"), ("basic", "none"))  # fmt: skip


def shape_gaps(results: dict, runs: list) -> list:
    """Paired gaps over shapes for the paper's pairs, per source and IoU kind.

    Sources: the Adam and the SGD networks (``runs``, one seed: each shape's IoU; a
    kind gives pairs only where both mappings ran on some shape), the flow at the
    SGD budget and at the last computed time (``results[m]["per_shape"]``). A gap
    "a - b" is :func:`ntkspec.verdicts.paired_gap` over the shapes where both mappings
    have a value (the shapes are the "images"), so it is resolved only when its 95 %
    intervals exclude 0. Returns one dict per (source, pair, key): ``source``,
    ``pair``, ``key`` (``iou_uniform`` / ``iou_near_surface``), ``agrees`` (the sign
    of the mean is the paper's) and the gap's fields.
    """
    from ntkspec import verdicts

    def flow_runs(name, index):
        out = []
        for rec in results.get(name, {}).get("per_shape", []):
            out.append(
                {
                    "image": rec["shape"],
                    "seed": 0,
                    "iou_uniform": rec["iou_uniform_centred"][index],
                    "iou_near_surface": rec["iou_near_surface_centred"][index],
                }
            )
        return out  # fmt: skip

    def budget_runs(name):
        r = results.get(name)
        if r is None:
            return []
        times = np.log(np.asarray(r["times"], float))
        t = np.log(r["budget_time"])
        return [{"image": rec["shape"], "seed": 0,
                 **{k: float(np.interp(t, times, rec[f"{k}_centred"]))
                    for k in ("iou_uniform", "iou_near_surface")}}
                for rec in r["per_shape"]]  # fmt: skip

    def network_runs(kind):
        return lambda n: [
            {"image": r["shape"], "seed": r.get("seed", 0), **r}
            for r in runs if r.get("kind") == kind and r.get("mapping") == n
        ]  # fmt: skip

    sources = {
        "Adam networks": network_runs("adam"),
        "SGD networks": network_runs("sgd"),
        "flow at budget": budget_runs,
    }
    if results:
        last = _sci(next(iter(results.values()))["times"][-1])
        sources[f"flow at t = {last}"] = lambda n: flow_runs(n, -1)
    out = []
    for source, get in sources.items():
        for a, b in PAPER_PAIRS:
            ra, rb = get(a), get(b)
            if not ra or not rb:
                continue
            for key in ("iou_uniform", "iou_near_surface"):
                g = verdicts.paired_gap(ra, rb, key=key)
                if g["mean"] is None:
                    continue
                out.append({"source": source, "pair": f"{a} - {b}", "key": key,
                            "agrees": bool(g["mean"] > 0), **g})  # fmt: skip
    return out


def follow_gaps(results: dict, runs: list, kind: str = "sgd") -> list:
    """Does a kind of network follow the flow? Network minus flow at its own time.

    For each mapping, :func:`ntkspec.verdicts.paired_gap` of the runs' IoU against the
    flow's IoU at the time :func:`place_networks` gives each run (SGD: steps x lr;
    Adam: the loss-matched time), paired over the shapes where that time lies inside
    the computed times. A resolved gap says the networks leave the flow. Returns one
    dict per (mapping, key) with ``kind``, ``mapping``, ``key`` and the gap's fields.
    """
    from ntkspec import verdicts

    out = []
    for name in ORDER:
        if name not in results:
            continue
        placed = [m for m in place_networks(results[name], name, runs)
                  if m["kind"] == kind]  # fmt: skip
        for key in ("iou_uniform", "iou_near_surface"):
            both = [m for m in placed if m[f"flow_{key}"] is not None]
            if not both:
                continue
            net = [{"image": m["shape"], "seed": m["seed"], key: m[key]} for m in both]
            flow = [{"image": m["shape"], "seed": m["seed"], key: m[f"flow_{key}"]}
                    for m in both]  # fmt: skip
            g = verdicts.paired_gap(net, flow, key=key)
            out.append({"kind": kind, "mapping": name, "key": key, **g})
    return out


def _gap_table(gaps: list, intro: str, columns: tuple, headers: tuple) -> list:
    """Markdown lines: ``intro``, then one row per ``columns`` key pair of ``gaps``
    (headed ``headers``), with the uniform and near-surface gaps side by side."""
    from ntkspec import verdicts

    lines = ["", intro, "", f"| {headers[0]} | {headers[1]} | uniform | near-surface |",
             "|---|---|---|---|"]  # fmt: skip
    rows: dict = {}
    for g in gaps:
        rows.setdefault((g[columns[0]], g[columns[1]]), {})[g["key"]] = g
    for (first, second), cells in rows.items():
        lines.append(
            f"| {first} | {second} | "
            + " | ".join(verdicts.format_gap(cells[k], digits=3) if k in cells else "-"
                         for k in ("iou_uniform", "iou_near_surface"))
            + " |"
        )  # fmt: skip
    return lines


def _follow_lines(follow: list) -> list:
    intro = (
        "Does the network follow the flow at its own time? Network IoU minus the "
        "flow's IoU there, paired over shapes (95 % t and BCa intervals; resolved: the "
        "networks leave the flow):"
    )
    return _gap_table(follow, intro, ("kind", "mapping"), ("kind", "mapping"))


def _gap_lines(gaps: list) -> list:
    intro = (
        "Paired gaps over shapes (IoU, a - b; 95 % t and BCa bootstrap intervals over "
        "the shapes; each pair is ordered as the paper orders it, so a positive, "
        "resolved gap reproduces the paper):"
    )
    return _gap_table(gaps, intro, ("source", "pair"), ("source", "a - b"))


def summarize(folder, grid_table=None, networks=None) -> str:
    """The verdict tables (Markdown) from committed JSON only; no flow is computed.

    Reads ``folder/shape_population.json`` and, when present,
    ``folder/none/shape_population.json`` (``gpu_run.sh`` runs "none" on its own);
    ``grid_table``: the grid regression's ``shape_table.json`` (``fig_shape_table``);
    ``networks``: a ``shape_networks_fresh`` output folder, placed on the flow's axis
    by :func:`place_networks` from the stored per-shape curves. Writes
    ``folder/shape_population.md`` atomically and returns its text.
    """
    from ntkspec.io import atomic_write
    from ntkspec.studies.shape_table import PAPER_SHAPE

    folder = Path(folder)
    data = json.loads((folder / "shape_population.json").read_text())
    results, labels = dict(data["results"]), {data["label"]}
    extra = folder / "none" / "shape_population.json"
    if extra.exists():
        more = json.loads(extra.read_text())
        labels.add(more["label"])
        for k, v in more["results"].items():
            results.setdefault(k, v)
    grid = {}
    if grid_table is not None and Path(grid_table).exists():
        table = json.loads(Path(grid_table).read_text())["tables"][0]
        grid = {r[0]: r for r in table["rows"]}
    runs = _networks(networks) if networks else []
    lines = [
        f"Population flow ({', '.join(sorted(labels))}; IoU uniform / near-surface, "
        f"means over {len(data['shapes'])} shapes; budget = the SGD control's flow "
        f"time, {data['sizes']['steps']} steps at 0.5 / lambda_max):",
        "",
        "| mapping | flow grid | budget t | flow at budget | flow at t = "
        f"{_sci(data['results'][next(iter(data['results']))]['times'][-1])} | "
        "grid regression t = inf | grid regression 10k GD | paper (networks) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ORDER:
        if name not in results:
            continue
        r, g = results[name], grid.get(name)
        last = {k: v[-1] for k, v in r["mean"].items()}
        b = r["at_budget"]
        lines.append(
            f"| {name} | {r['grid']} | {r['budget_time']:.0f} | "
            f"{_pair(b['iou_uniform_centred'], b['iou_near_surface_centred'])} | "
            f"{_pair(last['iou_uniform_centred'], last['iou_near_surface_centred'])} | "
            + (f"{_pair(g[2], g[3])} ({g[1]}) | {_pair(g[4], g[5])} | " if g
               else "- | - | ")
            + f"{PAPER_SHAPE[name][0]:.3f} |"
        )  # fmt: skip
    if results:
        r0 = results.get("basic") or next(iter(results.values()))
        cu = np.mean([s["ceiling"]["uniform"] for s in r0["per_shape"]])
        cn = np.mean([s["ceiling"]["near_surface"] for s in r0["per_shape"]])
        g = grid.get("ceiling (true occupancy on the grid, interpolated)")
        lines += [
            "",
            f"t = inf limit of the flow (the true occupancy on the {r0['grid']} grid, "
            f"interpolated trilinearly): {_pair(cu, cn)}"
            + (f"; of the grid regression ({g[1]}): {_pair(g[2], g[3])}" if g else "")
            + ". Not an upper bound: a partly fitted, smoother field can score above "
            "it.",
        ]
    lines += ["", "Networks on fresh points, each beside the flow at its own time:", ""]
    lines += [
        "| mapping | kind | runs | network | flow time | flow there |",
        "|---|---|---|---|---|---|",
    ]
    any_run = False
    for name in ORDER:
        if name not in results:
            continue
        placed = place_networks(results[name], name, runs) if runs else []
        for kind in ("adam", "sgd"):
            ms = [m for m in placed if m["kind"] == kind]
            if not ms:
                continue
            any_run = True
            times = [m["time"] for m in ms if m["time"] is not None]
            lines.append(
                f"| {name} | {kind} | {len(ms)} | "
                + _pair(_mean_or_none([m["iou_uniform"] for m in ms]),
                        _mean_or_none([m["iou_near_surface"] for m in ms]))
                + f" | {_fmt_times(times, len(ms))} | "
                + _pair(_mean_or_none([m["flow_iou_uniform"] for m in ms]),
                        _mean_or_none([m["flow_iou_near_surface"] for m in ms]))
                + " |"
            )  # fmt: skip
    if not any_run:
        lines.append("| (no network runs given) | - | - | - | - | - |")
    lines += collapsed_lines(runs)
    gaps = shape_gaps(results, runs)
    if gaps:
        lines += _gap_lines(gaps)
    follow = follow_gaps(results, runs, "sgd") + follow_gaps(results, runs, "adam")
    if follow:
        lines += _follow_lines(follow)
    if runs:
        placed = {n: dict(r, networks=place_networks(r, n, runs))
                  for n, r in results.items()}  # fmt: skip
        plot_curves(placed, ", ".join(sorted(labels)), folder / "shape_population.png")
    text = "\n".join(lines) + "\n"
    gap_json = json.dumps({"command": "fig_shape_population --summarize-only",
                           "networks": str(networks) if networks else None,
                           "gaps": gaps, "network_minus_flow": follow},
                          indent=1)  # fmt: skip

    def _write_gaps(tmp: str) -> None:
        Path(tmp).write_text(gap_json)

    atomic_write(folder / "shape_population_gaps.json", _write_gaps)

    def _write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(folder / "shape_population.md", _write)
    return text


def collapsed_lines(runs: list) -> list:
    """Markdown lines listing the collapsed runs with their causes (none: [])."""
    lost = [r for r in runs if r.get("collapsed")]
    if not lost:
        return []
    return ["", "Collapsed runs, left out of every mean and gap (cause):"] + [
        f"- {r['kind']} {r['mapping']} {r['shape']} seed {r.get('seed', 0)}: "
        f"{r['cause']}"
        for r in lost
    ]


def _fmt_times(times, count: int) -> str:
    if not times:
        return f"none placed (of {count})"
    lo, hi = min(times), max(times)
    span = f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"
    return span + ("" if len(times) == count else f" ({len(times)} of {count} placed)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny grids, seconds")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--res", type=int, default=None, help="stationary grid side")
    p.add_argument(
        "--none-res",
        type=int,
        default=None,
        help='"none" grid side (default: the largest whose dense Gram fits the cap)',
    )
    p.add_argument("--shapes", type=int, default=None)
    p.add_argument("--points", type=int, default=None, help="evaluation points")
    p.add_argument("--steps", type=int, default=None, help="SGD control steps")
    p.add_argument("--mappings", default=None, help="comma list (default: all four)")
    p.add_argument("--networks", default=None, help="shape_networks_fresh output")
    p.add_argument("--rtol", type=float, default=1e-6, help="Lanczos tolerance")
    p.add_argument("--max-krylov-dim", type=int, default=1000)
    p.add_argument(
        "--max-bytes",
        type=float,
        default=None,
        help="memory cap of the dense Gram and of each Lanczos basis (default 4 GiB)",
    )
    p.add_argument(
        "--summarize-only",
        action="store_true",
        help="rebuild shape_population.md from the JSON in --out; compute nothing",
    )
    p.add_argument(
        "--grid-table",
        default="figures/shapes/shape_table.json",
        help="the grid regression's shape_table.json (fig_shape_table)",
    )
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["python -m analysis.fig_shape_population", *argv])
    if args.mappings:
        bad = sorted(set(args.mappings.split(",")) - set(ORDER))
        if bad:
            print(
                f"error: --mappings: unknown {bad}; use {list(ORDER)}", file=sys.stderr
            )
            return 2
    args.out = args.out or (
        "figures/shapes/population/quick" if args.quick else "figures/shapes/population"
    )
    if args.summarize_only:
        if not (Path(args.out) / "shape_population.json").exists():
            print(f"error: --summarize-only: no shape_population.json in {args.out}",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(summarize(args.out, args.grid_table, args.networks), end="")
        return 0
    data = run(args, command)
    summarize(args.out, args.grid_table, args.networks)
    print(f"{args.out}: shape_population.json / .png written ({data['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
