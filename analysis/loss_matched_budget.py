"""The loss-matched NTK against the committed Adam runs of ``table1_budget_cpu`` (CPU).

For every Adam network of ``figures/regression/table1_budget_cpu/table1_budget.json``
(48 x 48 crops at pixel pitch 1/512, 3 images per set x 2 seeds, 1000 Adam steps), the
NTK of the budget study's architecture (depth 4, NTK parameterization, sigma_b = 0.1)
is placed at the run's loss-matched time t* (``ntkspec.loss_matching``: the
gradient-flow time at which the NTK's train MSE equals the network's) and its held-out
PSNR there is compared with the network's, per run, per mapping and for each gap
(paired over images, ``ntkspec.verdicts``). Nothing is retrained.

    python -m analysis.loss_matched_budget [--json PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ntkspec import ReluMLP, data, loss_matching, mappings, verdicts

ARCH = ReluMLP(4, W_std=math.sqrt(2.0), b_std=0.1)
SCALES = {"natural": (10.0, 6.0), "text": (14.0, 5.0)}  # Gaussian sigma, PE scale S
PAIRS = (("positional", "basic"), ("gaussian", "positional"), ("gaussian", "none"))


def _mapping(image_set: str, name: str, seed: int):
    sigma, scale = SCALES[image_set]
    return {
        "none": lambda: mappings.identity(2),
        "basic": lambda: mappings.basic(2),
        "positional": lambda: mappings.positional(2, 128, scale=scale),
        "gaussian": lambda: mappings.gaussian(seed, 2, 256, sigma),
    }[name]()


def _images(image_set: str, crop: int, count: int) -> dict:
    if image_set == "natural":
        return dict(list(data.natural_set(512, crop=crop).items())[:count])
    return data.text_set(512, count=count, crop=crop)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--json", default="figures/regression/table1_budget_cpu/table1_budget.json"
    )
    p.add_argument("--out", default="figures/regression/table1_budget_cpu")
    args = p.parse_args(argv)
    blob = json.loads(Path(args.json).read_text())
    cfg = blob["config"]
    crop = cfg["crop"]
    off = (512 - crop) // 2
    g = (off + np.arange(crop)) / 512
    x = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    tr = data.train_indices((crop, crop))
    held = data.heldout_indices((crop, crop))
    load0 = os.getloadavg()
    runs, table = [], {}
    for image_set, block in blob["table1"].items():
        imgs = _images(image_set, crop, len(block["images"]))
        for m, e in block["mappings"].items():
            for r in e["adam_runs"]:
                y = imgs[r["image"]].reshape(-1, 3)
                target = 10 ** (-r["psnr_train"] / 10)
                f_te, match = loss_matching.loss_matched_prediction(
                    ARCH, _mapping(image_set, m, r["seed"]), x[tr], y[tr], x[held],
                    target,
                )  # fmt: skip
                ntk = data.psnr(f_te, y[held])
                runs.append(
                    dict(
                        set=image_set,
                        mapping=m,
                        image=r["image"],
                        seed=r["seed"],
                        network_psnr=r["psnr_heldout"],
                        network_train_psnr=r["psnr_train"],
                        t_star=match.time,
                        status=match.status,
                        ntk_psnr=ntk,
                    )
                )
                cols = table.setdefault(image_set, {}).setdefault(m, {})
                base = dict(
                    image=r["image"], seed=r["seed"], collapsed=False, cause=None
                )
                cols.setdefault("adam", []).append(
                    dict(base, psnr_heldout=r["psnr_heldout"])
                )
                cols.setdefault("ntk", []).append(dict(base, psnr_heldout=ntk))
    summary = {}
    for image_set, rows in table.items():
        out = {}
        for m, cols in rows.items():
            out[f"{m}: Adam − NTK at t*"] = verdicts.paired_gap(
                cols["adam"], cols["ntk"]
            )
        for a, b in PAIRS:
            na, nb = (verdicts.image_means(rows[k]["adam"]) for k in (a, b))
            ta, tb = (verdicts.image_means(rows[k]["ntk"]) for k in (a, b))
            common = [i for i in na if i in nb and i in ta and i in tb]
            for label, d in (
                ("Adam", [na[i] - nb[i] for i in common]),
                ("NTK at t*", [ta[i] - tb[i] for i in common]),
                ("Adam − NTK", [(na[i] - nb[i]) - (ta[i] - tb[i]) for i in common]),
            ):
                out[f"gap {a} − {b}, {label}"] = verdicts.mean_interval(np.asarray(d))
        summary[image_set] = out
    result = dict(
        description=__doc__.splitlines()[0],
        source=args.json,
        architecture="depth 4, NTK parameterization, W_std sqrt 2, b_std 0.1",
        time_axis="gradient-flow time at eta = 1 (gd_dynamics units)",
        runs=runs,
        summary=summary,
        load_average=dict(start=list(load0), end=list(os.getloadavg())),
        command=" ".join(["python -m analysis.loss_matched_budget", *(argv or [])]),
        device="CPU",
    )
    out_dir = Path(args.out)
    from ntkspec.io import atomic_write, write_json

    write_json(out_dir / "loss_matched.json", result)
    lines = [
        "**Loss-matched NTK vs the Adam networks of table1_budget_cpu** (CPU; 48² "
        "crops, 3 images per set x 2 seeds, 1000 Adam steps; mean over images of "
        "per-image differences, seeds averaged first; 95 % t-interval)",
        "",
        "| set | quantity | mean [t-interval] (n) |",
        "|---|---|---|",
    ]
    for image_set, out in summary.items():
        for name, s in out.items():
            iv = s["t_interval"]
            ivs = f" [{iv[0]:+.2f}, {iv[1]:+.2f}]" if iv else ""
            lines.append(
                f"| {image_set} | {name} | {s['mean']:+.2f}{ivs} (n = {s['n']}) |"
            )
    md = "\n".join(lines) + "\n"
    atomic_write(out_dir / "loss_matched.md", lambda tmp: Path(tmp).write_text(md))
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
