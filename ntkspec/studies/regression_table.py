"""Tancik et al. (2020) Table 1, 2D image regression, by infinite-width NTK regression.

For each image set (natural, text: see :mod:`ntkspec.data`) and mapping (none, basic,
positional encoding, Gaussian), the NTK of a depth-4 ReLU MLP (``ReluMLP(4)``, NTK
parameterisation) is fitted to the pixels ``[::2, ::2]`` with ridge 0 (the network
trained to convergence) and predicts the whole grid. PSNR (official convention, see
:func:`ntkspec.data.psnr`) on the held-out pixels ``[1::2, 1::2]`` (the official
metric) and on all non-train pixels; mean +- std over the images of a set.

Two sizes:

* full: 256 x 256 train -> 512 x 512 (the paper's task) by the structured path (exact
  FFT solve for the periodic basic mapping, PCG otherwise). Raw coordinates ("none")
  give a kernel that is not stationary, so they have no FFT path and are not run at
  this size.
* reduced: a centre crop of 128 x 128 pixels (coordinates kept as pixel/512), 64 x 64
  train -> 128 x 128, by the dense Cholesky path, for all four mappings (the "none" row
  of the table comes from here). Raw coordinates put collinear grid points on common
  rays from the origin, where the bias-free ReLU NTK has proportional rows, so its Gram
  is singular: that row uses a ridge of 1e-6 times the NTK's value at the crop centre.
  Beside it, ``none_bias``: the same with a bias (``b_std=0.1``), as the paper's trained
  networks have; the bias breaks the homogeneity and makes the raw-coordinate NTK
  usable.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from .. import data
from ..grid import Grid
from ..io import save_figure, write_json
from ..kernels import ReluMLP, ntk
from ..operators import structure
from ..provenance import provenance
from ..regression import kernel_regression
from ._common import MAPPING_NAMES, PAPER_TABLE1, format_stat, per_image_stat
from ._common import paper_mappings as set_mappings

__all__ = ["PAPER_TABLE1", "MAPPING_NAMES", "set_mappings", "table1", "run"]

#: (quick, full) settings; quick runs the reduced size for the "none" rows only.
#: "tiny" is the smoke-test size of ``ntkspec report --quick``.
SIZES = {
    "tiny": dict(res=128, crop=32, images=1, rendered=1),
    True: dict(res=256, crop=64, images=2, rendered=1),
    False: dict(res=512, crop=128, images=None, rendered=4),
}


def _images(image_set: str, res: int, limit: int | None, rendered: int) -> dict:
    imgs = (
        data.natural_images(res)
        if image_set == "natural"
        else data.text_images(res, num_rendered=rendered)
    )
    names = list(imgs)
    if limit is not None:
        # one of each kind for the text set (scan, rendered)
        names = names[:1] + names[-(limit - 1) :] if limit > 1 else names[:1]
    return {k: imgs[k] for k in names}


def _psnrs(pred: np.ndarray, imgs: list[np.ndarray], shape) -> dict:
    held, non = data.heldout_indices(shape), data.nontrain_indices(shape)
    out = {"heldout": [], "nontrain": []}
    for i, img in enumerate(imgs):
        p = pred[:, 3 * i : 3 * i + 3]
        y = img.reshape(-1, 3)
        out["heldout"].append(data.psnr(p[held], y[held]))
        out["nontrain"].append(data.psnr(p[non], y[non]))
    return out


def _run_solver(fn):
    """Call fn(), recording warnings instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
    return result, secs, sorted({str(w.message)[:300] for w in caught})


def _full_size(arch, mapping, imgs: list[np.ndarray], res: int) -> dict:
    half = res // 2
    y_tr = np.concatenate([img[::2, ::2].reshape(-1, 3) for img in imgs], axis=1)
    (pred, info), secs, warns = _run_solver(
        lambda: kernel_regression(
            arch, mapping, Grid((half, half)), y_tr, Grid((res, res)), return_info=True
        )
    )
    out = _psnrs(pred, imgs, (res, res))
    return {
        "heldout": per_image_stat(out["heldout"]),
        "nontrain": per_image_stat(out["nontrain"]),
        "solver": info.solver,
        "iterations": info.iterations,
        "residual": info.residual,
        "seconds": round(secs, 3),
        "warnings": warns,
        "size": f"{half}x{half} train -> {res}x{res} (structured)",
    }


def _reduced(arch, name, mapping, imgs: list[np.ndarray], res: int, crop: int) -> dict:
    lo = (res - crop) // 2
    lo -= lo % 2  # keep global pixel parity: train pixels stay the even ones
    idx = np.arange(lo, lo + crop)
    mesh = np.meshgrid(idx, idx, indexing="ij")
    x_all = np.stack([m.ravel() for m in mesh], axis=1) / res
    x_tr = x_all.reshape(crop, crop, 2)[::2, ::2].reshape(-1, 2)
    sub = [img[lo : lo + crop, lo : lo + crop] for img in imgs]
    y_tr = np.concatenate([s[::2, ::2].reshape(-1, 3) for s in sub], axis=1)
    ridge = 0.0
    if name == "none":
        centre = x_all[len(x_all) // 2 + crop // 2][None]
        ridge = 1e-6 * float(np.asarray(ntk(arch, mapping(centre)))[0, 0])
    (pred, info), secs, warns = _run_solver(
        lambda: kernel_regression(
            arch, mapping, x_tr, y_tr, x_all, ridge=ridge, return_info=True
        )
    )
    out = _psnrs(pred, sub, (crop, crop))
    return {
        "heldout": per_image_stat(out["heldout"]),
        "nontrain": per_image_stat(out["nontrain"]),
        "solver": info.solver,
        "ridge": ridge,
        "condition": info.condition,
        "seconds": round(secs, 3),
        "warnings": warns,
        "size": (
            f"centre crop {crop}x{crop} of the {res}x{res} image (coordinates "
            f"pixel/{res}), {crop // 2}x{crop // 2} train -> {crop}x{crop} (dense)"
        ),
    }


def table1(
    *, quick: bool = False, seed: int = 0, depth: int = 4, size: str | None = None
) -> dict:
    """Compute the Table 1 rows (both sizes) for the natural and text sets.

    ``size="tiny"`` (smoke tests) overrides ``quick``.
    """
    if size is not None and size != "tiny":
        raise ValueError(f"size must be None or 'tiny'; got {size!r}")
    quick = quick or size == "tiny"
    size = SIZES["tiny" if size == "tiny" else quick]
    arch = ReluMLP(depth)
    table, reduced, images = {}, {}, {}
    for image_set in ("natural", "text"):
        imgs = _images(image_set, size["res"], size["images"], size["rendered"])
        images[image_set] = list(imgs)
        stack = list(imgs.values())
        rows, rows_reduced = {}, {}
        for name, mapping in set_mappings(image_set, seed).items():
            if name != "none" and quick:  # quick: the reduced size only where needed
                red = None
            else:
                red = _reduced(arch, name, mapping, stack, size["res"], size["crop"])
                rows_reduced[name] = red
            if name == "none":
                rows_reduced["none_bias"] = _reduced(
                    ReluMLP(depth, b_std=0.1),
                    name,
                    mapping,
                    stack,
                    size["res"],
                    size["crop"],
                )
            if structure(mapping, Grid((size["res"],) * 2)) != "points":
                row = _full_size(arch, mapping, stack, size["res"])
            else:
                row = dict(red)
                row["note"] = (
                    "raw coordinates: no stationary kernel, no FFT path; computed "
                    "at the reduced size by the dense path ("
                    + red["size"]
                    + "); with a bias "
                    "(b_std=0.1) the same row gives "
                    f"{rows_reduced['none_bias']['heldout']['mean']:.2f} dB"
                )
            mean, std = PAPER_TABLE1[image_set][name]
            row["paper"] = {"mean": mean, "std": std}
            rows[name] = row
        table[image_set] = {"images": images[image_set], "mappings": rows}
        reduced[image_set] = {"images": images[image_set], "mappings": rows_reduced}
    return {"table1": table, "reduced": reduced, "sizes": size}


def _plot(data_: dict, path: Path) -> None:
    from ..io import agg_subplots

    fig, axes = agg_subplots(1, 2, figsize=(12, 4.2), sharey=True)
    xs = np.arange(len(MAPPING_NAMES))
    width = 0.27
    for ax, image_set in zip(axes, ("natural", "text"), strict=True):
        rows = data_["table1"][image_set]["mappings"]
        red = data_["reduced"][image_set]["mappings"]
        series = [
            ("NTK regression, full size (none: reduced)", rows, "heldout"),
            ("NTK regression, reduced crop (dense)", red, "heldout"),
        ]
        for k, (label, block, key) in enumerate(series):
            nan = {"mean": np.nan, "std": np.nan}
            mean = [block.get(m, {key: nan})[key]["mean"] for m in MAPPING_NAMES]
            std = [block.get(m, {key: nan})[key]["std"] for m in MAPPING_NAMES]
            ax.bar(xs + (k - 1) * width, mean, width, yerr=std, label=label, capsize=3)
        paper = [PAPER_TABLE1[image_set][m] for m in MAPPING_NAMES]
        ax.bar(
            xs + width,
            [p[0] for p in paper],
            width,
            yerr=[p[1] for p in paper],
            label="paper (trained 4x256 nets)",
            capsize=3,
            color="0.6",
        )
        if "none_bias" in red:
            nb = red["none_bias"]["heldout"]
            ax.errorbar(
                [xs[0]],
                [nb["mean"]],
                yerr=[nb["std"]],
                fmt="k*",
                ms=10,
                capsize=3,
                label="none with bias (b_std=0.1), reduced crop",
            )
        ax.set_xticks(xs, MAPPING_NAMES)
        ax.set_title(f"{image_set} images: PSNR on held-out pixels [1::2, 1::2]")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("PSNR (dB)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _markdown(data_: dict) -> str:
    lines = [
        "| set | mapping | held-out [1::2,1::2] | all non-train | "
        "reduced crop held-out | paper | solver |",
        "|---|---|---|---|---|---|---|",
    ]
    for image_set in ("natural", "text"):
        for m in MAPPING_NAMES:
            r = data_["table1"][image_set]["mappings"][m]
            red = data_["reduced"][image_set]["mappings"].get(m, {}).get("heldout")
            if m == "none":
                rb = data_["reduced"][image_set]["mappings"]["none_bias"]["heldout"]
                lines.append(
                    f"| {image_set} | none, b_std=0.1 | – | – | {format_stat(rb)} "
                    "| | cholesky (reduced crop) |"
                )
            lines.append(
                f"| {image_set} | {m} | {format_stat(r['heldout'])} | "
                f"{format_stat(r['nontrain'])} | {format_stat(red)} | "
                f"{r['paper']['mean']:.2f} ± {r['paper']['std']:.2f} | "
                f"{r['solver']} ({r['size']}) |"
            )
    return "\n".join(lines) + "\n"


def run(
    out_dir: str | Path = "figures/regression",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
) -> dict:
    """Write ``table1_ntk.json``, ``table1_ntk.md`` and ``table1_ntk.png``.

    ``size="tiny"`` is the smoke-test size used by ``ntkspec report --quick``.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    result = table1(quick=quick, seed=seed, size=size)
    result.update(
        description=(
            "Tancik et al. 2020 Table 1 (2D image regression) by infinite-width NTK "
            "regression of a depth-4 ReLU MLP (NTK parameterisation, W_std=sqrt 2, "
            "b_std=0), ridge 0 unless stated; PSNR = -10 log10 MSE on [0, 1] data, "
            "mean +- std over the images of each set."
        ),
        quick=quick,
        seconds=round(time.perf_counter() - t0, 2),
        provenance=provenance(command, seed),
    )
    if quick or size == "tiny":
        sizes, full = result["sizes"], SIZES[False]
        result["reduced_for_report"] = [
            f"images at {sizes['res']} x {sizes['res']} pixels (paper and full run: "
            f"{full['res']}); train {sizes['res'] // 2}^2 -> predict {sizes['res']}^2",
            f"{sizes['images']} image(s) per set (full run: every bundled image); "
            "PSNR at this size is not comparable with the paper's 512^2 numbers "
            "(run `python -m analysis fig_table1_ntk` for the full size)",
            f"no-mapping row on a centre crop of {sizes['crop']} x {sizes['crop']} "
            f"(full run: {full['crop']})",
        ]
    write_json(out_dir / "table1_ntk.json", result)
    (out_dir / "table1_ntk.md").write_text(_markdown(result))
    _plot(result, out_dir / "table1_ntk.png")
    return {
        "json": str(out_dir / "table1_ntk.json"),
        "markdown": str(out_dir / "table1_ntk.md"),
        "png": str(out_dir / "table1_ntk.png"),
        "seconds": result["seconds"],
    }
