r"""Held-out PSNR of the infinitely wide network against training time, per mapping.

At :math:`t = \infty` NTK regression fits the paper's mappings (none, basic,
positional, Gaussian) almost equally well (``regression_table``); what a network
learns in a *finite* budget is another matter. Under gradient flow on
:math:`\frac{1}{2N_y}\sum(f-y)^2` from the mean output :math:`f_0 = 0` the test
prediction is

.. math::

    f_t = \Theta_{*X}\,\varphi_t(\Theta)\,y, \qquad
    \varphi_t(\lambda) = \frac{1 - e^{-\eta\lambda t/N_y}}{\lambda},

so the component of y along eigenvector i of the train Gram is learned once
:math:`\eta\lambda_i t/N_y \gtrsim 1` (Tancik et al. 2020, Sec. 4). For one natural
and one text image (:func:`ntkspec.data.natural_set`, :func:`ntkspec.data.text_set`)
and each of the four Table-1 mappings with the paper's scales
(:func:`ntkspec.studies.table1_budget.set_mappings`), this study trains on the pixels
``[::2, ::2]`` and reports the PSNR on the held-out pixels ``[1::2, 1::2]`` at times
:math:`t = 10^0 \dots 10^{t_{\max}}` (half-decade grid) and :math:`t = \infty`.

Each curve is **one** :func:`ntkspec.gd_dynamics` call with all the times: on the
Grids of the Fourier mappings the Krylov path serves every finite time from one
Lanczos run (PCG at :math:`t = \infty`; the FFT path when the frequencies are integer,
i.e. the basic mapping at full size), with no dense Gram; raw coordinates ("none")
have no stationary kernel and take the dense path.

**Time and learning rate.** :math:`\eta = 1` for every mapping (one budget, as the
paper's networks share one optimiser setting), so t is the gradient-flow time in units
of GD steps at learning rate 1. Discrete GD at :math:`\eta = 1` is stable when
:math:`\lambda_{\max} < 2N_y`; the JSON records :math:`\lambda_{\max}/N_y` of each
train Gram on a Grid (by Lanczos) so the reader can check it.

**Sizes.** Centre crops of side ``crop`` of the 512 x 512 images at pixel pitch 1/512
(:func:`ntkspec.studies.table1_budget.task_inputs`: the mappings' scales mean what they
mean at full size); ``"full"`` is the paper's task, 256 x 256 -> 512 x 512. The dense
"none" row runs on its own smaller crop (``none_crop``), flagged in the table and the
JSON. One image per set, not the paper's mean over the sets.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

from .. import data as datasets
from ..dynamics import gd_dynamics
from ..grid import Grid
from ..io import save_figure
from ._common import (
    ARCH,
    MAPPING_NAMES,
    budget_learning_rate,
    task_inputs,
    write_study,
)
from ._common import paper_mappings as set_mappings

__all__ = [
    "SIZES",
    "LEARNING_RATE",
    "study_times",
    "study_images",
    "mapping_curve",
    "psnr_vs_time",
    "run",
]

#: Learning rate of every curve (t is then in units of GD steps at rate 1).
LEARNING_RATE = 1.0
#: Run sizes: ``crop`` (side of the centre crop of the 512 x 512 images; train on
#: ``[::2, ::2]`` of it), ``none_crop`` (the dense raw-coordinate row),
#: ``log10_t_max`` (largest finite time 10^k) and ``per_decade`` (times per decade).
SIZES = {
    "tiny": dict(crop=16, none_crop=16, log10_t_max=3, per_decade=1),
    "quick": dict(crop=128, none_crop=64, log10_t_max=5, per_decade=2),
    "full": dict(crop=512, none_crop=128, log10_t_max=6, per_decade=2),
}
SETS = ("natural", "text")


def study_times(cfg: dict) -> np.ndarray:
    """Finite times :math:`10^{j/p}`, j = 0 .. p t_max, then ``inf``; shape (T,)."""
    k, p = int(cfg["log10_t_max"]), int(cfg["per_decade"])
    finite = 10.0 ** (np.arange(k * p + 1) / p)
    return np.concatenate([finite, [np.inf]])


def study_images(crop: int, none_crop: int) -> dict:
    """The two images: set -> ``{"name", crop: image, none_crop: image}``.

    The natural image is the first photo of :data:`ntkspec.data.NATURAL_SET` (the
    astronaut), the text image ``text_0`` of :func:`ntkspec.data.text_set`.
    """
    out = {}
    for image_set in SETS:
        entry = {}
        for c in sorted({crop, none_crop}):
            if image_set == "natural":
                imgs = datasets.natural_set(datasets.IMAGE_RES, crop=c)
            else:
                imgs = datasets.text_set(datasets.IMAGE_RES, count=1, crop=c)
            name, img = next(iter(imgs.items()))
            entry["name"], entry[c] = name, img
        out[image_set] = entry
    return out


def mapping_curve(mapping, image: np.ndarray, times) -> dict:
    """Held-out PSNR at every time of ``times`` from one :func:`gd_dynamics` call.

    Args:
        mapping: an input mapping (a Fourier one is given Grids, see
            :func:`ntkspec.studies.table1_budget.task_inputs`).
        image: (crop, crop, c) in [0, 1], a centre crop at pixel pitch 1/512.
        times: (T,) gradient-flow times >= 0 (``inf`` allowed).

    Returns:
        ``psnr_heldout`` (T,), the path and its diagnostics (``method``,
        ``krylov_dim``, ``error_estimate``, ``converged``, ``cg_iterations``,
        ``cg_residual``), ``lambda_max_over_n_y`` (Grids only, else None),
        ``seconds`` and any warnings.
    """
    crop, c = image.shape[0], image.shape[-1]
    m_t, x_tr, x_te = task_inputs(mapping, crop)
    y = np.asarray(image, np.float64).reshape(-1, c)
    tr = datasets.train_indices((crop, crop))
    held = datasets.heldout_indices((crop, crop))
    # lambda_max by Lanczos on a Grid; the dense row skips it (one more eigh)
    lam_max = budget_learning_rate(m_t, x_tr, c)[1] if isinstance(x_tr, Grid) else None
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, f_test, info = gd_dynamics(
            ARCH, m_t, x_tr, y[tr], x_te, times, LEARNING_RATE, return_info=True
        )
    seconds = time.perf_counter() - t0
    return dict(
        crop=crop,
        size=f"{crop // 2}² → {crop}²",
        psnr_heldout=[datasets.psnr(f[held], y[held]) for f in f_test],
        method=info.method,
        krylov_dim=info.krylov_dim,
        error_estimate=info.error_estimate,
        converged=info.converged,
        cg_iterations=info.cg_iterations,
        cg_residual=info.cg_residual,
        lambda_max_over_n_y=None if lam_max is None else lam_max / y[tr].size,
        seconds=round(seconds, 3),
        warnings=[" ".join(str(w.message).split())[:300] for w in caught],
    )


def _best(curves: dict, crop: int) -> list[dict]:
    """Per time: the mapping with the highest held-out PSNR among those at ``crop``."""
    names = [m for m, e in curves.items() if e["crop"] == crop]
    out = []
    for i in range(len(curves[names[0]]["psnr_heldout"])):
        ranked = sorted(names, key=lambda m: -curves[m]["psnr_heldout"][i])
        margin = (
            curves[ranked[0]]["psnr_heldout"][i] - curves[ranked[1]]["psnr_heldout"][i]
            if len(ranked) > 1
            else None
        )
        out.append(dict(mapping=ranked[0], margin_db=margin))
    return out


def psnr_vs_time(*, size: str = "full", seed: int = 0, images=None) -> dict:
    """The study's data: set -> ``{"image", "curves": mapping -> curve, "best"}``.

    Args:
        size: a key of :data:`SIZES`.
        seed: draws the Gaussian frequencies.
        images: optional set -> ``{"name", crop: image, none_crop: image}`` replacing
            :func:`study_images` (other images or crops).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    cfg = SIZES[size]
    times = study_times(cfg)
    imgs = study_images(cfg["crop"], cfg["none_crop"]) if images is None else images
    out = {}
    for image_set, entry in imgs.items():
        curves = {}
        for name, mapping in set_mappings(image_set, seed).items():
            crop = cfg["none_crop"] if name == "none" else cfg["crop"]
            curves[name] = mapping_curve(mapping, entry[crop], times)
        out[image_set] = dict(
            image=entry["name"], curves=curves, best=_best(curves, cfg["crop"])
        )
    return out


def _time_label(t: float) -> str:
    if math.isinf(t):
        return "∞"
    k = math.log10(t)
    return f"10^{k:g}" if abs(k - round(k)) > 1e-9 else f"1e{round(k)}"


def _tables(result: dict, device: str) -> list[dict]:
    cfg, times = result["config"], result["times"]
    names = list(MAPPING_NAMES)
    main = []
    for image_set, block in result["sets"].items():
        curves = block["curves"]
        for i, t in enumerate(times):
            best = block["best"][i]
            main.append(
                [image_set, _time_label(t)]
                + [curves[m]["psnr_heldout"][i] for m in names]
                + [best["mapping"], best["margin_db"]]
            )
    none_note = (
        f"; none (raw coordinates, dense path) on a {cfg['none_crop']}² crop "
        f"({cfg['none_crop'] // 2}² → {cfg['none_crop']}²), so it is left out of "
        "'best'"
        if cfg["none_crop"] != cfg["crop"]
        else ""
    )
    paths = []
    for image_set, block in result["sets"].items():
        for m in names:
            e = block["curves"][m]
            paths.append(
                [
                    image_set,
                    m,
                    e["size"],
                    e["method"],
                    e["krylov_dim"],
                    e["error_estimate"],
                    e["cg_iterations"],
                    e["cg_residual"],
                    "yes" if e["converged"] else "NO",
                    e["lambda_max_over_n_y"],
                    e["seconds"],
                ]
            )
    return [
        dict(
            title="Held-out PSNR (dB) against gradient-flow time t (η = 1), and the "
            "best mapping at each t",
            columns=["set", "t", *names, "best", "margin over 2nd (dB)"],
            rows=main,
            note=(
                f"{device}; train {cfg['crop'] // 2}² → test {cfg['crop']}² (centre "
                f"crop at pitch 1/512), PSNR on the held-out pixels [1::2, 1::2]; "
                f"images: {', '.join(b['image'] for b in result['sets'].values())}"
                f"{none_note}"
            ),
        ),
        dict(
            title="How each curve was computed (one gd_dynamics call per curve)",
            columns=[
                "set",
                "mapping",
                "task",
                "path",
                "Krylov dim",
                "error estimate",
                "PCG its (t = ∞)",
                "PCG residual",
                "converged",
                "λ_max / N_y",
                "seconds",
            ],
            rows=paths,
            note=f"{device}; error estimate: the Lanczos a-posteriori relative error "
            "(rtol 1e-10); discrete GD at η = 1 is stable iff λ_max / N_y < 2",
        ),
    ]


_STYLE = {
    "none": dict(color="0.4", marker="x"),
    "basic": dict(color="C0", marker="o"),
    "positional": dict(color="C1", marker="s"),
    "gaussian": dict(color="C3", marker="D"),
}


def _plot(result: dict, path: Path) -> None:
    from ..io import agg_subplots, readable

    sets = list(result["sets"])
    times = np.asarray(result["times"], float)
    finite = np.isfinite(times)
    t_max = times[finite].max()
    x_inf = t_max * 10.0**1.0  # where t = inf is drawn
    fig, axes = agg_subplots(1, len(sets), figsize=(6.0 * len(sets), 4.6), sharey=False)
    axes = np.atleast_1d(axes)
    for ax, image_set in zip(axes, sets, strict=True):
        block = result["sets"][image_set]
        for m, e in block["curves"].items():
            ps = np.asarray(e["psnr_heldout"], float)
            st = _STYLE.get(m, {})
            label = f"{m} ({e['size']})"
            ax.semilogx(times[finite], ps[finite], "-", color=st.get("color"), lw=1.5,
                        label=label)  # fmt: skip
            ax.semilogx([t_max, x_inf], [ps[finite][-1], ps[~finite][0]], ":",
                        color=st.get("color"), lw=1)  # fmt: skip
            ax.plot([x_inf], [ps[~finite][0]], ls="none", ms=7, **st)
        ax.axvline(t_max * 10**0.5, color="0.7", lw=0.8)
        ticks = [t for t in 10.0 ** np.arange(0, math.log10(t_max) + 1)]
        ax.set_xticks([*ticks, x_inf])
        ax.set_xticklabels([f"$10^{{{round(math.log10(t))}}}$" for t in ticks] + ["∞"])
        ax.set_xlabel("gradient-flow time t (η = 1; GD steps at learning rate 1)")
        ax.set_ylabel("held-out PSNR (dB), pixels [1::2, 1::2]")
        ax.set_title(f"{image_set}: {block['image']}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=9, loc="upper left")
    fig.suptitle(
        f"Infinitely wide ReLU MLP (depth {result['architecture']['depth']}, NTK) "
        f"trained by gradient flow · {result['provenance']['device']} · size "
        f"{result['size']!r} (markers at the right: t = ∞)",
        fontsize=10,
    )
    readable(fig, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def run(
    out_dir: str | Path = "figures/dynamics",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
) -> dict:
    """Write ``psnr_vs_time.json`` and ``psnr_vs_time.png`` into ``out_dir``.

    Args:
        out_dir: output folder.
        quick: the ``"quick"`` size (when ``size`` is None; else ``"full"``).
        seed: draws the Gaussian frequencies.
        command: command line for the provenance.
        size: ``"tiny"``, ``"quick"`` or ``"full"`` (the paper's 256² -> 512² task).
    """
    size = size or ("quick" if quick else "full")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    t0 = time.perf_counter()
    cfg = SIZES[size]
    load_start = os.getloadavg()
    sets = psnr_vs_time(size=size, seed=seed)
    load_end = os.getloadavg()
    full = SIZES["full"]
    reduced = [
        "one image per set (natural: the first photo of NATURAL_SET; text: text_0), "
        "not the paper's mean over each set",
        f"raw coordinates ('none', dense path) on a {cfg['none_crop']}² centre crop "
        f"(train {cfg['none_crop'] // 2}²)",
    ]
    if cfg["crop"] != full["crop"]:
        reduced.insert(
            0,
            f"centre crops of {cfg['crop']}² pixels of the 512² images (pitch 1/512): "
            f"train {cfg['crop'] // 2}² -> {cfg['crop']}² (paper: 256² -> 512², the "
            "'full' size: python -m analysis.fig_psnr_vs_time)",
        )
    if cfg["log10_t_max"] != full["log10_t_max"]:
        reduced.append(
            f"finite times up to 1e{cfg['log10_t_max']} (full: 1e{full['log10_t_max']})"
        )
    data = dict(
        description=(
            "Held-out PSNR of the infinitely wide NTK network against gradient-flow "
            "time, one curve per Table-1 mapping, one natural and one text image; "
            "each curve from one ntkspec.gd_dynamics call with all times."
        ),
        size=size,
        config=dict(cfg),
        architecture=dict(
            depth=ARCH.depth,
            W_std=ARCH.W_std,
            b_std=ARCH.b_std,
            parameterization=ARCH.parameterization,
        ),
        learning_rate=LEARNING_RATE,
        times=[float(t) if math.isfinite(t) else "inf" for t in study_times(cfg)],
        sets=sets,
        reduced=reduced,
        load_average={
            "start": [round(v, 2) for v in load_start],
            "end": [round(v, 2) for v in load_end],
            "note": "os.getloadavg() (1, 5, 15 min) before and after the runs; "
            f"{os.cpu_count()} cores, shared",
        },
    )
    from ..provenance import provenance

    device = provenance(command, seed)["device"]
    view = dict(data, times=study_times(cfg).tolist())
    data["tables"] = _tables(view, device)

    def _draw(d, png):
        _plot(dict(d, times=study_times(cfg).tolist()), png)

    return write_study(
        out_dir,
        "psnr_vs_time",
        data,
        _draw,
        started=t0,
        quick=quick,
        seed=seed,
        command=command,
    )
