r"""Validation of :func:`ntkspec.design.suggest_scale` on natural and text images.

For 5 natural and 5 text images (:func:`ntkspec.data.natural_set`,
:func:`ntkspec.data.text_set`, downsampled to ``res``; the Gaussian mapping's
:math:`\sigma` in cycles per image side) and one Gaussian draw scaled by each
:math:`\sigma` of :data:`SIGMAS`, the study compares three choices of :math:`\sigma`:

* **suggested**: :func:`~ntkspec.design.suggest_scale` at its default budget
  (:data:`ntkspec.design.DEFAULT_TIME`), i.e. the best :math:`\sigma` by the NTK at that
  budget;
* **NTK at t = inf**: the best :math:`\sigma` of plain kernel regression, to show why a
  finite budget is needed (the curve is flat there);
* **FreSh** (Kania et al., ICLR 2025), the baseline: the :math:`\sigma` whose
  *untrained* network output has the spectrum nearest to the target's, by
  :func:`ntkspec.design.fresh_distance` on all bins (the binning of the authors' code,
  stated there; this study binned by the L1 radius :math:`|k_1| + |k_2|` until the
  FreSh code was unified, see the CHANGELOG). The network is the paper's 4 x 256 ReLU
  MLP with jax ``stax`` initialisation and a linear readout, averaged over
  :data:`FRESH_INITS` initialisations.

Each choice is scored by the PSNR it loses against the best :math:`\sigma` of trained
networks on the same image (``figures/design/networks_cpu.json``, written by
``analysis/design_networks.py``: CPU-reduced Adam networks; the GPU version is in
``analysis/gpu_run.sh``), and also against the NTK's own curve at the budget. Without
that JSON (an installed wheel, or another ``res``) only the NTK and FreSh columns are
filled.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
    Kania, Mihajlovic, Prokudin, Tabor & Spurek, "FreSh: Frequency Shifting for
    Accelerated Neural Representation Learning", ICLR 2025, arXiv:2410.05050.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from .. import data as datasets
from ..design import (
    DEFAULT_TIME,
    family_mapping,
    fresh_distance,
    predicted_psnr,
    suggest_scale,
)
from ..io import save_figure
from ..kernels import ReluMLP
from ..networks import mlp
from ._common import write_study

__all__ = [
    "SIGMAS",
    "FRESH_INITS",
    "images",
    "fresh_choice",
    "run",
]

#: The sigmas of the sweep (the suggestion, the NTK curves, FreSh and the networks).
SIGMAS = (1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0)
#: Untrained networks averaged by the FreSh criterion.
FRESH_INITS = 3
ARCH = ReluMLP(4)
NETWORKS_JSON = Path("figures/design/networks_cpu.json")


def images(res: int, count: int = 5) -> dict[str, tuple[str, np.ndarray]]:
    """``name -> (set, image)``: the first ``count`` natural and text images at res."""
    out = {}
    for name, img in list(datasets.natural_set(res).items())[:count]:
        out[name] = ("natural", img)
    for name, img in datasets.text_set(res, count=count).items():
        out[name] = ("text", img)
    return out


def fresh_choice(image, sigmas=SIGMAS, *, seed: int = 0, inits: int = FRESH_INITS):
    """(chosen sigma, distances): FreSh's criterion on untrained 4 x 256 networks."""
    h, w, c = image.shape
    pts = np.stack(
        np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij"), -1
    ).reshape(-1, 2)
    dist = []
    for s in sigmas:
        mapping = family_mapping("gaussian", float(s), seed=seed)
        net = mlp(ARCH, mapping, 256, out_dim=c, initialization="stax")
        d = []
        for k in range(inits):
            params = net.init(jax.random.PRNGKey(1000 * seed + k))
            out = np.asarray(net.apply(params, pts), dtype=np.float64)
            d.append(fresh_distance(image, out.reshape(h, w, c)))
        dist.append(float(np.mean(d)))
    return float(sigmas[int(np.argmin(dist))]), dist


def _networks(res: int, path: Path) -> dict | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("res") != res or list(data.get("sigmas", [])) != list(SIGMAS):
        return None
    return data


def _loss(curve: dict, sigma: float) -> float:
    """PSNR lost by choosing ``sigma`` instead of the curve's best."""
    best = max(curve.values())
    return float(best - curve[f"{sigma:g}"])


def run(
    out_dir,
    *,
    quick: bool = False,
    seed: int = 0,
    command=None,
    res=None,
    count=None,
    networks_json=None,
):
    """Run the study; write ``scale_suggestion.json`` and ``.png`` in ``out_dir``.

    Args:
        out_dir: output folder.
        quick: 2 + 2 images of 32 x 32 and one FreSh initialisation (a smoke test)
            instead of 5 + 5 images of 64 x 64 and :data:`FRESH_INITS`.
        seed: the Gaussian draw and the networks' initialisations.
        command: the command line, for the provenance.
        res: image side (default 32 quick, 64 otherwise).
        count: images per set (default 2 quick, 5 otherwise).
        networks_json: the trained-network sweep to score against (default
            ``figures/design/networks_cpu.json``; used only if its res and sigmas
            match).
    """
    started = time.perf_counter()
    res = res or (32 if quick else 64)
    count = count or (2 if quick else 5)
    inits = 1 if quick else FRESH_INITS
    net_path = Path(networks_json) if networks_json else NETWORKS_JSON
    nets = _networks(res, net_path)
    rows = []
    for name, (kind, img) in images(res, count).items():
        sug = suggest_scale(ARCH, img, scales=SIGMAS, seed=seed)
        inf_curve = [
            predicted_psnr(
                ARCH, family_mapping("gaussian", s, seed=seed), img, times=np.inf,
                rtol=1e-6,
            )
            for s in SIGMAS
        ]  # fmt: skip
        fresh, dist = fresh_choice(img, seed=seed, inits=inits)
        row = dict(
            image=name,
            set=kind,
            suggested=sug.scale,
            ntk_budget_psnr=dict(
                zip(map("{:g}".format, SIGMAS), sug.predicted_psnr, strict=True)
            ),
            ntk_inf_psnr=dict(zip(map("{:g}".format, SIGMAS), inf_curve, strict=True)),
            ntk_inf_best=float(SIGMAS[int(np.argmax(inf_curve))]),
            fresh=fresh,
            fresh_distance=dist,
        )
        row["ntk_budget_psnr"] = {
            k: float(v) for k, v in row["ntk_budget_psnr"].items()
        }
        row["loss_vs_ntk_budget"] = {
            k: _loss(row["ntk_budget_psnr"], row[k])
            for k in ("suggested", "fresh", "ntk_inf_best")
        }
        if nets is not None and name in nets["psnr_heldout"]:
            curve = nets["psnr_heldout"][name]
            row["networks_psnr"] = curve
            row["networks_best"] = float(max(curve, key=curve.get))
            row["loss_vs_networks"] = {
                k: _loss(curve, row[k]) for k in ("suggested", "fresh", "ntk_inf_best")
            }
        rows.append(row)
    summary = {}
    for key in ("loss_vs_ntk_budget", "loss_vs_networks"):
        have = [r[key] for r in rows if key in r]
        if have:
            summary[key] = {
                k: dict(
                    mean=float(np.mean([h[k] for h in have])),
                    max=float(np.max([h[k] for h in have])),
                    n=len(have),
                )
                for k in have[0]
            }
    data = dict(
        description="Gaussian sigma chosen by ntkspec.design.suggest_scale (NTK at a "
        "finite budget), by NTK regression at t = inf and by FreSh's spectrum-matching "
        "criterion, scored by the held-out PSNR each loses against the best sigma of "
        "trained networks (CPU-reduced) and of the NTK curve at the budget.",
        res=res,
        sigmas=list(SIGMAS),
        time=DEFAULT_TIME,
        arch="ReluMLP(4) (NTK parameterization, W_std^2 = 2, b_std = 0)",
        networks_source=str(net_path) if nets else None,
        networks_setup=nets.get("setup") if nets else None,
        target_mean_loss_db=0.5,
        images_per_set=count,
        fresh_inits=inits,
        rows=rows,
        summary=summary,
    )
    data["tables"] = _tables(rows, summary)
    reduced = [f"images downsampled to {res} x {res} (the paper: 512 x 512)"]
    if count < 5:
        reduced.append(f"{count} natural + {count} text images (report size: 5 + 5)")
    if inits < FRESH_INITS:
        reduced.append(f"FreSh: {inits} initialisation (report size: {FRESH_INITS})")
    if nets is None:
        reduced.append("no network sweep for this size: network columns empty")
    else:
        reduced.append("networks: " + str(nets.get("setup", "CPU-reduced")))
    return write_study(
        out_dir, "scale_suggestion", data, _plot, started=started, quick=quick,
        seed=seed, command=command, reduced=reduced,
    )  # fmt: skip


def _tables(rows: list, summary: dict) -> list:
    """The page's tables: the choice per image, and the mean / max PSNR lost."""
    cols = ["image", "set", "suggested", "NTK t = inf", "FreSh", "networks' best"]
    per_image = dict(
        title="Gaussian sigma chosen per image",
        columns=cols + ["lost by suggestion (dB)", "lost by FreSh (dB)"],
        rows=[
            [
                r["image"], r["set"], r["suggested"], r["ntk_inf_best"], r["fresh"],
                r.get("networks_best", "–"),
                r.get("loss_vs_networks", {}).get("suggested", "–"),
                r.get("loss_vs_networks", {}).get("fresh", "–"),
            ]
            for r in rows
        ],
        note="PSNR lost against the trained networks' best sigma on the same image.",
    )  # fmt: skip
    names = {"suggested": "suggested (NTK, budget)", "fresh": "FreSh",
             "ntk_inf_best": "NTK at t = inf"}  # fmt: skip
    lost = dict(
        title="Held-out PSNR lost against the best sigma (dB; target: mean <= 0.5)",
        columns=["choice", "vs networks: mean", "max", "vs NTK at the budget: mean"],
        rows=[
            [
                label,
                summary.get("loss_vs_networks", {}).get(key, {}).get("mean", "–"),
                summary.get("loss_vs_networks", {}).get(key, {}).get("max", "–"),
                summary["loss_vs_ntk_budget"][key]["mean"],
            ]
            for key, label in names.items()
        ],
        note="Means over the images; networks: the committed CPU-reduced sweep.",
    )
    return [lost, per_image]


def _plot(data: dict, path: Path) -> None:
    from ..io import agg_subplots

    fig, axes = agg_subplots(1, 2, figsize=(11, 4))
    rows = data["rows"]
    x = np.arange(len(rows))
    for off, key, label in (
        (-0.2, "suggested", "suggested (NTK, budget)"),
        (0.0, "fresh", "FreSh"),
        (0.2, "networks_best", "networks' best"),
    ):
        vals = [r.get(key, np.nan) for r in rows]
        axes[0].plot(x + off, vals, "o", label=label)
    axes[0].set_yscale("log", base=2)
    axes[0].set_xticks(x, [r["image"][:10] for r in rows], rotation=60, fontsize=7)
    axes[0].set_ylabel("Gaussian sigma (cycles per side)")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"choice per image ({data['res']}^2)", fontsize=10)
    sig = data["sigmas"]
    for r in rows:
        axes[1].semilogx(
            sig, [r["ntk_budget_psnr"][f"{s:g}"] for s in sig], "-",
            color="C0" if r["set"] == "natural" else "C3", alpha=0.6,
        )  # fmt: skip
    axes[1].set_xlabel("sigma")
    axes[1].set_ylabel("predicted held-out PSNR (dB)")
    axes[1].set_title(
        f"NTK at t = {data['time']:g} (blue natural, red text)", fontsize=10
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
