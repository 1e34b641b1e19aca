r"""Out-of-sample validation of the scale suggestion against trained networks.

Images, crops, networks and time convention are those of the matched Table 1
(``table1_matched``): centre crops of ``crop`` x ``crop`` pixels of the 512 x 512
images at pixel pitch 1/512, train on ``[::2, ::2]``, score on the held-out
``[1::2, 1::2]``; the paper's 4 x 256 sigmoid-output network (stax initialisation,
full-batch Adam at 1e-3, 2000 steps, initial key 10 + seed); the infinitely wide
network :math:`\mathrm{ReluMLP}(4, \sigma_w^2 = 2, \sigma_b = 0.1)`; a budget is a
gradient-flow time at :math:`\eta = 1` in :func:`ntkspec.gd_dynamics`' units (mode i of
the train residual decays as :math:`e^{-\lambda_i t/N_y}`).

**The sweep.** For each image, the Gaussian mapping
:math:`B = \sigma Z` (:func:`ntkspec.mappings.gaussian`, seed 0, 256 frequencies, one
draw :math:`Z` for every :math:`\sigma`) at every :math:`\sigma` of its set's grid
(:data:`SIGMAS`, in cycles per 512 pixels; each grid holds the set's Table 1
:math:`\sigma`, so that the Table 1 Adam and NTK runs of that :math:`\sigma` are read
from its runs folder by key instead of run again): one trained network per seed and
the NTK's held-out PSNR curve over a log grid of times.

**Methods**, each choosing one :math:`\sigma` of the grid per image:

* ``fixed_loo``: the best fixed :math:`\sigma` of the set, chosen on the *other* images
  of the set (highest mean network PSNR; :func:`choose_fixed_sigma`);
* ``ntk_inf``: the best :math:`\sigma` of the NTK at :math:`t = \infty`;
* ``ntk_budget``: the best :math:`\sigma` of the NTK at the Table 1 budget
  :math:`t_B = 10^4` (``ntkspec.design.DEFAULT_TIME``);
* ``ntk_loo_budget``: the best :math:`\sigma` of the NTK at a budget chosen on the
  other images (below);
* ``suggestion``: :func:`ntkspec.design.suggest_scale` as ``ntkspec suggest`` calls it
  (``ReluMLP(4)``: no bias; default budget), on the crop with the grid's scales
  converted to the crop's own coordinates (:math:`\sigma \cdot \mathrm{crop}/512`);
* ``fresh_<n>``: FreSh (Kania et al. 2025) with spectrum size n (32, 64, 128): the
  :math:`\sigma` whose *untrained* network (the same 4 x 256 sigmoid network, mean over
  :data:`FRESH_INITS` initialisations) has the spectrum nearest to the image's
  (:func:`ntkspec.design.fresh_distance`, which states the binning and why).

**Score.** The held-out PSNR a method loses against the image's best network
:math:`\sigma`, :math:`L_i = \max_\sigma P_i(\sigma) - P_i(\hat\sigma_i)` (seeds
averaged first); mean and max over all images, and over the *informative* images,
whose best network beats the best constant predictor by at least
:data:`INFORMATIVE_DB` dB (elsewhere the best :math:`\sigma` is noise). Each method's
loss minus ``fixed_loo``'s is a mean of per-image differences with the t- and BCa
intervals of :func:`ntkspec.verdicts.paired_gap`. An image with a collapsed network
run (:func:`ntkspec.verdicts.mark_runs`, theory = the NTK at :math:`t_B`) is left out
of the scores and listed with the cause.

**Budget chosen out of sample.** For each held image, :func:`choose_budget` receives
only the other images' (NTK curve, network curve) pairs and returns the time of a grid
(1 to 1e8, 4 per decade, and :math:`\infty`) whose NTK-best :math:`\sigma` loses the
least mean network PSNR on them; the held image is scored at that time. The report
compares :math:`t = \infty` with the chosen budget on the held images.

**Checkpoints.** Every finished run is one JSON file under ``<out>/runs/`` (atomic); a
later call skips what exists, also in the reuse folder. :func:`summarize` builds the
table from what exists: every method is scored on the same images (an image missing
any of its runs, FreSh's and the suggestion's included, is left out and listed), and
the runs expected, on disk and missing are counted; while any is missing the report,
the figure and the verdict block (:func:`verdict_markdown`, also written to
``suggest_validation_verdict.md``) say PARTIAL.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739.
    Kania, Mihajlovic, Prokudin, Tabor & Spurek, "FreSh: Frequency Shifting for
    Accelerated Neural Representation Learning", ICLR 2025, arXiv:2410.05050.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .. import data as datasets
from .. import mappings as maps
from .. import verdicts
from ..design import DEFAULT_TIME, fresh_distance, suggest_scale
from ..io import atomic_write, write_json
from ..kernels import ReluMLP
from ._common import (
    ARCH,
    RES,
    SCALES,
    crop_grid,
    network_scores,
    table1_images,
    table1_network_run,
    table1_ntk_run,
    table1_psnr,
    task_inputs,
)

__all__ = [
    "SIGMAS",
    "FRESH_SIZES",
    "FRESH_INITS",
    "INFORMATIVE_DB",
    "SIZES",
    "METHODS",
    "choose_fixed_sigma",
    "loo_fixed_sigma",
    "choose_budget",
    "loo_budgets",
    "tasks",
    "run_task",
    "run",
    "run_networks",
    "summarize",
    "verdict_markdown",
    "plot",
]

#: The sigma grid per set (cycles per 512 pixels); each holds the Table 1 sigma.
SIGMAS = {
    "natural": (2.5, 3.5, 5.0, 7.0, 10.0, 14.0, 20.0),
    "text": (5.0, 7.0, 10.0, 14.0, 20.0, 28.0, 40.0),
}
#: FreSh's published spectrum sizes (leading bins of the spectrum vector kept).
FRESH_SIZES = (32, 64, 128)
#: Untrained networks averaged by the FreSh criterion.
FRESH_INITS = 10
#: dB by which the best network must beat the best constant predictor.
INFORMATIVE_DB = 3.0
#: Budget grid of the out-of-sample choice: decades and points per decade (+ inf).
BUDGET_DECADES = (0, 8)
BUDGET_PER_DECADE = 4

#: Run sizes. ``natural``/``text``: images per set; ``ntk_path``: "dense" (raw
#: coordinates, as Table 1) or "grid" (the structured path, for 512^2).
SIZES = {
    "quick": dict(
        crop=16, natural=2, text=2, seeds=1, steps=20, width=32, budget=DEFAULT_TIME,
        times_per_decade=2, fresh_sizes=(4, 8, 16), fresh_inits=2, ntk_path="dense",
        sigmas={"natural": (5.0, 10.0, 20.0), "text": (7.0, 14.0, 28.0)},
    ),
    "cpu": dict(
        crop=128, natural=6, text=6, seeds=1, steps=2000, width=256,
        budget=DEFAULT_TIME, times_per_decade=12, fresh_sizes=FRESH_SIZES,
        fresh_inits=FRESH_INITS, ntk_path="dense", sigmas=SIGMAS,
    ),
    "gpu": dict(
        crop=512, natural=8, text=11, seeds=2, steps=2000, width=256,
        budget=DEFAULT_TIME, times_per_decade=12, fresh_sizes=FRESH_SIZES,
        fresh_inits=FRESH_INITS, ntk_path="grid", sigmas=SIGMAS,
    ),
}  # fmt: skip

#: Method keys in table order (FreSh's follow, one per spectrum size).
METHODS = ("fixed_loo", "ntk_inf", "ntk_budget", "ntk_loo_budget", "suggestion")


# --------------------------------------------------------------------------------------
# Choices made on the other images (pure: they receive only what they may see).
# --------------------------------------------------------------------------------------


def choose_fixed_sigma(curves: Mapping[str, Mapping[float, float]]) -> float:
    """The sigma of the highest mean network PSNR over the images given.

    Args:
        curves: image -> {sigma: network held-out PSNR}, every image on the same
            sigmas (the images a held image's choice may see).

    Returns:
        The sigma (the smallest on a tie).

    Raises:
        ValueError: no image, or images on different sigmas.
    """
    if not curves:
        raise ValueError("curves must hold at least one image")
    sig = sorted(next(iter(curves.values())))
    if any(sorted(c) != sig for c in curves.values()):
        raise ValueError("every image of curves must have the same sigmas")
    mean = [np.mean([c[s] for c in curves.values()]) for s in sig]
    return float(sig[int(np.argmax(mean))])


def loo_fixed_sigma(
    curves: Mapping[str, Mapping[float, float]],
    *,
    select: Callable | None = None,
) -> dict[str, float]:
    """Per image, ``select`` of the *other* images' curves (leave one image out).

    ``select`` defaults to :func:`choose_fixed_sigma` (looked up at call time).
    """
    select = select or choose_fixed_sigma
    return {
        held: select({k: v for k, v in curves.items() if k != held})
        for held in curves
        if len(curves) > 1
    }


def choose_budget(curves: Mapping[str, tuple], times) -> dict:
    r"""The budget whose NTK-best sigma loses the least network PSNR on these images.

    For each time :math:`t_j`, each image's choice is
    :math:`\hat\sigma_i(t_j) = \arg\max_\sigma \mathrm{NTK}_i(\sigma, t_j)` and its loss
    :math:`\max_\sigma P_i(\sigma) - P_i(\hat\sigma_i(t_j))`; the time of the smallest
    mean loss is returned (on a tie, the middle one of the tied times in grid order).

    Args:
        curves: image -> ``(ntk, net)``: NTK held-out PSNR of shape (K, T) (sigma by
            time) and network PSNR of shape (K,), K the image's sigmas.
        times: the T times (``np.inf`` allowed), ascending.

    Returns:
        ``{"time", "index", "mean_loss"}`` (mean_loss: (T,) list).

    Raises:
        ValueError: no image, or a curve whose shape does not match ``times``.
    """
    times = np.asarray(times, np.float64)
    if not curves:
        raise ValueError("curves must hold at least one image")
    loss = np.zeros(times.size)
    for name, (ntk, net) in curves.items():
        ntk, net = np.asarray(ntk, np.float64), np.asarray(net, np.float64)
        if ntk.shape != (net.size, times.size):
            raise ValueError(
                f"curves[{name!r}]: ntk must have shape (K, T) = ({net.size}, "
                f"{times.size}); got {ntk.shape}"
            )
        loss += net.max() - net[np.argmax(ntk, axis=0)]
    loss /= len(curves)
    tied = np.flatnonzero(loss <= loss.min() + 1e-12)
    idx = int(tied[len(tied) // 2])
    return dict(time=float(times[idx]), index=idx, mean_loss=loss.tolist())


def loo_budgets(
    curves: Mapping[str, tuple], times, *, select: Callable | None = None
) -> dict[str, dict]:
    """Per image, ``select(other images' curves, times)``: the held image unseen.

    ``select`` defaults to :func:`choose_budget` (looked up at call time).
    """
    select = select or choose_budget
    return {
        held: select({k: v for k, v in curves.items() if k != held}, times)
        for held in curves
        if len(curves) > 1
    }


# --------------------------------------------------------------------------------------
# Runs.
# --------------------------------------------------------------------------------------


def _mapping_name(image_set: str, sigma: float) -> str:
    """Table 1's name at the set's Table 1 sigma (its runs are reused), else tagged."""
    return "gaussian" if sigma == SCALES[image_set]["sigma"] else f"gaussian_s{sigma:g}"


def _key(kind: str, image_set: str, image: str, sigma=None, seed: int = 0) -> str:
    if kind in ("fresh", "suggest"):
        return f"{kind}__{image_set}__{image}"
    return f"{kind}__{image_set}__{image}__{_mapping_name(image_set, sigma)}__s{seed}"


def _images(cfg: dict) -> dict:
    return {s: table1_images(s, cfg["crop"], cfg[s]) for s in ("natural", "text")}


def tasks(cfg: dict, kinds=("adam", "ntk", "fresh", "suggest")) -> list[dict]:
    """Every task, image by image (sets interleaved) so that images complete early."""
    out = []
    for i in range(max(cfg["natural"], cfg["text"])):
        for s in ("natural", "text"):
            if i >= cfg[s]:
                continue
            for sigma in cfg["sigmas"][s]:
                for seed in range(cfg["seeds"]) if "adam" in kinds else ():
                    out.append(
                        dict(kind="adam", set=s, index=i, sigma=sigma, seed=seed)
                    )
                if "ntk" in kinds:
                    out.append(dict(kind="ntk", set=s, index=i, sigma=sigma, seed=0))
            for kind in ("fresh", "suggest"):
                if kind in kinds:
                    out.append(dict(kind=kind, set=s, index=i, sigma=None, seed=0))
    return out


def _reuse_runs(reuse_dir, cfg: dict) -> Path | None:
    """The Table 1 runs folder when its configuration matches ``cfg``, else None."""
    if reuse_dir is None or not (Path(reuse_dir) / "runs").is_dir():
        return None
    conf = Path(reuse_dir) / "config.json"
    if conf.is_file():
        c = json.loads(conf.read_text())
        same = ("crop", "steps", "width", "budget", "times_per_decade")
        if any(c.get(k) != cfg[k] for k in same):
            return None
    elif cfg["width"] != 256:  # the GPU networks entry writes no config: 4 x 256
        return None
    return Path(reuse_dir) / "runs"


def _reusable(path: Path, task: dict, cfg: dict) -> bool:
    if not path.is_file():
        return False
    rec = json.loads(path.read_text())
    ok = rec.get("crop") == cfg["crop"] and rec.get("seed") == task["seed"]
    if task["kind"] == "adam":
        return ok and rec.get("steps") == cfg["steps"] and rec["learning_rate"] == 1e-3
    return ok and rec.get("budget") == cfg["budget"]


def _find(
    task: dict, name: str, runs_dir: Path, reuse: Path | None, cfg
) -> Path | None:
    key = _key(task["kind"], task["set"], name, task["sigma"], task["seed"])
    if (runs_dir / f"{key}.json").is_file():
        return runs_dir / f"{key}.json"
    if reuse is not None and _reusable(reuse / f"{key}.json", task, cfg):
        return reuse / f"{key}.json"
    return None


def _ntk_grid_run(mapping, image: np.ndarray, cfg: dict) -> dict:
    """``table1_ntk_run``'s fields by the structured (Grid, Krylov) path."""
    from ..dynamics import gd_dynamics

    crop = image.shape[0]
    scaled, x_tr, x_te = task_inputs(mapping, crop)
    y = image.reshape(-1, 3)
    tr, held = (
        datasets.train_indices(image.shape[:2]),
        datasets.heldout_indices(image.shape[:2]),
    )
    per = cfg["times_per_decade"]
    grid = np.logspace(-2, 10, 12 * per + 1)
    times = np.concatenate([[0.0], grid, [cfg["budget"], np.inf]])
    f_tr, f_te = gd_dynamics(ARCH, scaled, x_tr, y[tr], x_te, times, 1.0, rtol=1e-6)
    mse = [float(np.mean((f - y[tr]) ** 2)) for f in f_tr]
    psnr = [table1_psnr(f[held], y[held]) for f in f_te]
    return dict(
        arch=dict(depth=ARCH.depth, W_std=ARCH.W_std, b_std=ARCH.b_std),
        path="structured (Grid), rtol 1e-6",
        budget=cfg["budget"],
        times=grid.tolist(),
        train_mse=mse[1:-2],
        psnr_curve=psnr[1:-2],
        train_mse_0=mse[0],
        psnr_heldout=psnr[-2],
        psnr_budget=psnr[-2],
        psnr_inf=psnr[-1],
        train_mse_budget=mse[-2],
    )


def _fresh_run(image: np.ndarray, image_set: str, cfg: dict) -> dict:
    """FreSh's distances of the untrained networks at every sigma, per spectrum size."""
    import jax

    from ..networks import mlp

    crop = image.shape[0]
    x = crop_grid(crop)
    dist: dict = {str(n): {} for n in cfg["fresh_sizes"]}
    for sigma in cfg["sigmas"][image_set]:
        net = mlp(
            ReluMLP(4), maps.gaussian(0, 2, 256, sigma), cfg["width"], out_dim=3,
            output="sigmoid", initialization="stax",
        )  # fmt: skip
        per_init = {n: [] for n in dist}
        for k in range(cfg["fresh_inits"]):
            out = np.asarray(net.apply(net.init(jax.random.PRNGKey(10 + k)), x))
            out = out.astype(np.float64).reshape(crop, crop, 3)
            for n in dist:
                per_init[n].append(fresh_distance(image, out, size=int(n)))
        for n in dist:
            dist[n][f"{sigma:g}"] = float(np.mean(per_init[n]))
    choice = {n: float(min(d, key=d.get)) for n, d in dist.items()}
    return dict(
        distances=dist,
        choice=choice,
        inits=cfg["fresh_inits"],
        network="4 x 256 sigmoid output, stax initialisation, untrained (keys 10..)",
    )


def _suggest_run(image: np.ndarray, image_set: str, cfg: dict) -> dict:
    """``suggest_scale`` as the CLI calls it, on the grid in the crop's coordinates."""
    crop = image.shape[0]
    grid = np.asarray(sorted(cfg["sigmas"][image_set]), np.float64)
    sug = suggest_scale(ReluMLP(4), image, scales=grid * crop / RES, seed=0)
    psnr = np.asarray(sug.predicted_psnr)  # ascending scales: the grid's order
    return dict(
        choice=float(grid[int(np.argmax(psnr))]),
        predicted_psnr={f"{g:g}": float(p) for g, p in zip(grid, psnr, strict=True)},
        time=sug.time,
        arch="ReluMLP(4) (no bias), as `ntkspec suggest`",
    )


def run_task(task: dict, images: dict, cfg: dict, runs_dir: Path, reuse=None) -> Path:
    """Run one task and write its JSON atomically; skip it when a file exists."""
    name = list(images[task["set"]])[task["index"]]
    found = _find(task, name, runs_dir, reuse, cfg)
    if found is not None:
        return found
    key = _key(task["kind"], task["set"], name, task["sigma"], task["seed"])
    img = images[task["set"]][name]
    crop = img.shape[0]
    x, y = crop_grid(crop), img.reshape(-1, 3)
    tr = datasets.train_indices((crop, crop))
    held = datasets.heldout_indices((crop, crop))
    load0, t0 = os.getloadavg(), time.perf_counter()
    if task["kind"] == "adam":
        mapping = maps.gaussian(0, 2, 256, task["sigma"])
        t = dict(task, mapping=_mapping_name(task["set"], task["sigma"]))
        out = table1_network_run(t, mapping, x, y, tr, held, cfg)
    elif task["kind"] == "ntk":
        mapping = maps.gaussian(0, 2, 256, task["sigma"])
        if cfg["ntk_path"] == "dense":
            out = table1_ntk_run(mapping, x, y, tr, held, cfg)
        else:
            out = _ntk_grid_run(mapping, img, cfg)
    elif task["kind"] == "fresh":
        out = _fresh_run(img, task["set"], cfg)
    else:
        out = _suggest_run(img, task["set"], cfg)
    record = dict(
        task,
        mapping=_mapping_name(task["set"], task["sigma"]) if task["sigma"] else None,
        image=name,
        crop=crop,
        constant_psnr=verdicts.constant_psnrs(y[tr], y[held]),
        **out,
        seconds=round(time.perf_counter() - t0, 2),
        load_average=dict(
            start=[round(v, 2) for v in load0],
            end=[round(v, 2) for v in os.getloadavg()],
        ),
    )
    return write_json(runs_dir / f"{key}.json", record)


def _check_size(size: str) -> dict:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    return SIZES[size]


def run(
    out_dir: str | Path = "figures/validation/suggest_cpu128",
    *,
    size: str = "cpu",
    reuse_dir: str | Path | None = "figures/validation/table1_cpu128",
    kinds=("adam", "ntk", "fresh", "suggest"),
    command: str | None = None,
    max_tasks: int | None = None,
    log=print,
) -> dict:
    """Run the tasks not yet on disk (own folder or reusable Table 1 runs), summarize.

    Args:
        out_dir: output folder; runs go to ``<out_dir>/runs/``.
        size: a key of :data:`SIZES`.
        reuse_dir: the Table 1 study's folder whose Gaussian runs at the Table 1 sigma
            are read by key (used only when its configuration matches), or None.
        kinds: the task kinds to run ("adam", "ntk", "fresh", "suggest").
        command: command line for the provenance.
        max_tasks: stop after this many new tasks (None: all).
        log: called with one line per finished task.
    """
    cfg = _check_size(size)
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", dict(size=size, **cfg))
    reuse = _reuse_runs(reuse_dir, cfg)
    images = _images(cfg)
    done = 0
    for task in tasks(cfg, kinds):
        name = list(images[task["set"]])[task["index"]]
        if _find(task, name, runs_dir, reuse, cfg) is not None:
            continue
        if max_tasks is not None and done >= max_tasks:
            break
        path = run_task(task, images, cfg, runs_dir, reuse)
        done += 1
        rec = json.loads(path.read_text())
        log(f"{path.name}: {rec['seconds']} s, load {rec['load_average']['end'][0]}")
    return summarize(out_dir, size=size, reuse_dir=reuse_dir, command=command)


def run_networks(
    out_dir: str | Path,
    *,
    size: str = "gpu",
    reuse_dir: str | Path | None = None,
    log=print,
    mesh=None,
) -> list[Path]:
    """The Adam networks only, every sigma of an image and seed in one ensemble call.

    The GPU entry (:func:`ntkspec.networks.train_ensemble`). Order: seed by seed, image
    by image (sets interleaved), so a cut-off run keeps whole seeds. Records have
    :func:`run_task`'s format; existing files (own or reusable) are skipped.

    Returns:
        The paths written by this call.
    """
    import jax

    from ..networks import mlp, train_ensemble

    cfg = _check_size(size)
    runs_dir = Path(out_dir) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    reuse = _reuse_runs(reuse_dir, cfg)
    images = _images(cfg)
    crop = cfg["crop"]
    x = crop_grid(crop)
    tr, held = (
        datasets.train_indices((crop, crop)),
        datasets.heldout_indices((crop, crop)),
    )
    written = []
    order = [
        (s, i)
        for i in range(max(len(v) for v in images.values()))
        for s in ("natural", "text")
        if i < len(images[s])
    ]
    for seed in range(cfg["seeds"]):
        for s, i in order:
            name = list(images[s])[i]
            todo = [
                dict(kind="adam", set=s, index=i, sigma=sig, seed=seed)
                for sig in cfg["sigmas"][s]
            ]
            todo = [t for t in todo if _find(t, name, runs_dir, reuse, cfg) is None]
            if not todo:
                continue
            y = images[s][name].reshape(-1, 3)
            nets = [
                mlp(ReluMLP(4), maps.gaussian(0, 2, 256, t["sigma"]), cfg["width"],
                    out_dim=3, output="sigmoid", initialization="stax")
                for t in todo
            ]  # fmt: skip
            params = [n.init(jax.random.PRNGKey(10 + seed)) for n in nets]
            load0, t0 = os.getloadavg(), time.perf_counter()
            res = train_ensemble(
                nets, params, x[tr], y[tr], steps=cfg["steps"], learning_rate=1e-3,
                eval_sets={"all": (x, y)}, mesh=mesh,
            )  # fmt: skip
            seconds = time.perf_counter() - t0
            for k, t in enumerate(todo):
                pred = np.asarray(res.outputs["all"][k], np.float64)
                rec = dict(
                    t, mapping=_mapping_name(s, t["sigma"]), image=name, crop=crop,
                    constant_psnr=verdicts.constant_psnrs(y[tr], y[held]),
                    learning_rate=1e-3, steps=cfg["steps"],
                    network="4 x 256 sigmoid output, stax initialisation, Adam "
                    "(paper); the sigmas of an image in one train_ensemble call",
                    **network_scores(pred, y, tr, held),
                    seconds_call=round(seconds, 2), members=len(todo),
                    device=str(jax.devices()[0]),
                    load_average=dict(start=[round(v, 2) for v in load0],
                                      end=[round(v, 2) for v in os.getloadavg()]),
                )  # fmt: skip
                key = _key("adam", s, name, t["sigma"], seed)
                written.append(write_json(runs_dir / f"{key}.json", rec))
            log(f"{s}/{name} seed {seed}: {len(todo)} networks, {seconds:.1f} s")
    return written


# --------------------------------------------------------------------------------------
# Summary.
# --------------------------------------------------------------------------------------


def _budget_grid(times) -> np.ndarray:
    """Indices of the stored NTK times on the budget grid (1..1e8, 4 per decade)."""
    t = np.asarray(times)
    lo, hi = BUDGET_DECADES
    want = np.logspace(lo, hi, (hi - lo) * BUDGET_PER_DECADE + 1)
    idx = np.unique([int(np.argmin(np.abs(np.log(t) - np.log(w)))) for w in want])
    return idx


def _load(out_dir: Path, cfg: dict, reuse) -> dict:
    """The records of every task that is on disk, by task key."""
    images = _images(cfg)
    recs = {}
    for task in tasks(cfg):
        if task["index"] >= len(images[task["set"]]):
            continue
        name = list(images[task["set"]])[task["index"]]
        path = _find(task, name, out_dir / "runs", reuse, cfg)
        if path is not None:
            rec = json.loads(path.read_text())
            rec["source"] = str(path)
            recs[(task["kind"], task["set"], name, task["sigma"], task["seed"])] = rec
    return recs


def _run_counts(recs: dict, cfg: dict) -> dict:
    """Runs the size asks for, on disk and missing, in all and by kind."""
    images = _images(cfg)
    want = [t for t in tasks(cfg) if t["index"] < len(images[t["set"]])]
    kinds = list(dict.fromkeys(t["kind"] for t in want))
    expected = {k: sum(t["kind"] == k for t in want) for k in kinds}
    on_disk = {k: sum(key[0] == k for key in recs) for k in kinds}
    missing = {k: expected[k] - on_disk[k] for k in kinds}
    return dict(
        expected=len(want),
        on_disk=len(recs),
        missing=len(want) - len(recs),
        expected_by_kind=expected,
        missing_by_kind={k: v for k, v in missing.items() if v},
        complete=len(recs) == len(want),
    )


def _runs_load(recs: dict) -> dict:
    """Seconds of the runs on disk and the 1-minute load averages they recorded."""
    secs = [float(r["seconds"]) for r in recs.values() if "seconds" in r]
    calls = {  # an ensemble call's seconds once, not once per member
        (r.get("image"), r.get("seed"), r["seconds_call"])
        for r in recs.values()
        if "seconds" not in r and "seconds_call" in r
    }
    secs += [float(c[2]) for c in calls]
    loads = [
        v
        for r in recs.values()
        if isinstance(r.get("load_average"), dict)
        for v in (r["load_average"]["start"][0], r["load_average"]["end"][0])
    ]
    return dict(
        runs=len(recs),
        seconds_total=round(sum(secs), 1),
        load_1min=dict(min=min(loads), median=float(np.median(loads)), max=max(loads))
        if loads
        else None,
        note="per run, seconds and 1-minute load average at its start and end; "
        "runs of one train_ensemble call share its seconds (seconds_call)",
    )


def _per_image(recs: dict, cfg: dict) -> tuple[dict, list]:
    """Complete images -> their curves; and the images left out, with the reason."""
    images = _images(cfg)
    out, left = {}, []
    for s in ("natural", "text"):
        for name in images[s]:
            sig = cfg["sigmas"][s]
            ntk = [recs.get(("ntk", s, name, g, 0)) for g in sig]
            runs = {
                g: [recs.get(("adam", s, name, g, k)) for k in range(cfg["seeds"])]
                for g in sig
            }
            missing = [f"ntk {g:g}" for g, r in zip(sig, ntk, strict=True) if r is None]
            missing += [
                f"adam {g:g}" for g in sig for r in runs[g] if r is None
            ]  # fmt: skip
            fresh = recs.get(("fresh", s, name, None, 0))
            sug = recs.get(("suggest", s, name, None, 0))
            # every method is scored on the same images: one without its FreSh or
            # suggestion run is left out, not scored on the other methods only
            missing += [k for k, r in (("fresh", fresh), ("suggest", sug)) if r is None]
            if missing:
                left.append(
                    dict(image=name, set=s, reason="missing: " + ", ".join(missing))
                )
                continue
            marked = {}
            for g, rec in zip(sig, ntk, strict=True):
                marked[g] = verdicts.mark_runs(
                    [dict(image=name, seed=r["seed"], psnr_heldout=r["psnr_heldout"],
                          constant_psnr=r["constant_psnr"],
                          theory_psnr=rec["psnr_budget"],
                          collapsed=not r.get("prediction_finite", True)
                          or r.get("prediction_constant", False),
                          cause="constant or non-finite output"
                          if not r.get("prediction_finite", True)
                          or r.get("prediction_constant", False) else None)
                     for r in runs[g]]
                )  # fmt: skip
            net = {g: verdicts.image_means(marked[g]).get(name) for g in sig}
            causes = [
                f"sigma {g:g} seed {r['seed']}: {r['cause']}"
                for g in sig
                for r in marked[g]
                if r["collapsed"]
            ]
            if any(v is None for v in net.values()):
                left.append(
                    dict(image=name, set=s, reason="collapsed: " + "; ".join(causes))
                )
                continue
            times = ntk[0]["times"]
            out[name] = dict(
                set=s, sigmas=list(sig), net=net, collapsed_seeds=causes,
                constant_best=max(ntk[0]["constant_psnr"].values()),
                ntk_times=times,
                ntk_curve=np.asarray([r["psnr_curve"] for r in ntk]),
                ntk_inf=[r["psnr_inf"] for r in ntk],
                ntk_budget=[r["psnr_budget"] for r in ntk],
                fresh=fresh["choice"],
                fresh_distances=fresh["distances"],
                suggestion=sug["choice"],
                suggestion_curve=sug["predicted_psnr"],
                sources=sorted({r["source"] for rr in runs.values() for r in rr}
                               | {r["source"] for r in ntk}),
            )  # fmt: skip
    return out, left


def _choices(img: dict, cfg: dict) -> tuple[dict, dict]:
    """Method -> chosen sigma per image, and the out-of-sample budgets."""
    sig = {n: np.asarray(d["sigmas"]) for n, d in img.items()}
    idx = _budget_grid(next(iter(img.values()))["ntk_times"]) if img else []
    grid_t = (
        np.append(np.asarray(next(iter(img.values()))["ntk_times"])[idx], np.inf)
        if img
        else []
    )
    curves = {
        n: (np.column_stack([d["ntk_curve"][:, idx], d["ntk_inf"]]),
            np.asarray([d["net"][g] for g in d["sigmas"]]))
        for n, d in img.items()
    }  # fmt: skip
    budgets = loo_budgets(curves, grid_t)
    fixed = {}
    for s in ("natural", "text"):
        fixed.update(
            loo_fixed_sigma({n: d["net"] for n, d in img.items() if d["set"] == s})
        )
    choice = {}
    for n, d in img.items():
        c = dict(
            ntk_inf=float(sig[n][int(np.argmax(d["ntk_inf"]))]),
            ntk_budget=float(sig[n][int(np.argmax(d["ntk_budget"]))]),
        )
        if n in fixed:
            c["fixed_loo"] = fixed[n]
        if n in budgets:
            j = budgets[n]["index"]
            c["ntk_loo_budget"] = float(sig[n][int(np.argmax(curves[n][0][:, j]))])
        if d["suggestion"] is not None:
            c["suggestion"] = d["suggestion"]
        for size, v in (d["fresh"] or {}).items():
            c[f"fresh_{size}"] = v
        order = list(METHODS) + [f"fresh_{k}" for k in cfg["fresh_sizes"]]
        choice[n] = {m: c[m] for m in order if m in c}
    return choice, dict(
        grid=[float(t) for t in grid_t],
        chosen={n: b["time"] for n, b in budgets.items()},
        in_sample=choose_budget(curves, grid_t) if curves else None,
    )


def _scores(img: dict, choice: dict, cfg: dict) -> dict:
    methods = list(METHODS) + [f"fresh_{n}" for n in cfg["fresh_sizes"]]
    loss = {
        n: {m: max(d["net"].values()) - d["net"][c[m]] for m in methods if m in c}
        for n, d in img.items()
        for c in [choice[n]]
    }
    informative = [
        n for n, d in img.items()
        if max(d["net"].values()) - d["constant_best"] >= INFORMATIVE_DB
    ]  # fmt: skip
    subsets = {
        "all": list(img),
        "informative": informative,
        "natural": [n for n in img if img[n]["set"] == "natural"],
        "text": [n for n in img if img[n]["set"] == "text"],
    }
    out = {}
    for sub, names in subsets.items():
        block = {}
        for m in methods:
            vals = {n: loss[n][m] for n in names if m in loss[n]}
            if not vals:
                continue
            v = np.asarray(list(vals.values()))
            entry = dict(mean=float(v.mean()), max=float(v.max()), n=len(v),
                         images=list(vals))  # fmt: skip
            if m != "fixed_loo":
                entry["minus_fixed_loo"] = verdicts.paired_gap(
                    [dict(image=n, loss=x) for n, x in vals.items()],
                    [dict(image=n, loss=loss[n]["fixed_loo"]) for n in vals
                     if "fixed_loo" in loss[n]],
                    key="loss",
                )  # fmt: skip
            block[m] = entry
        out[sub] = block
    return dict(per_image=loss, subsets=subsets, summary=out)


def summarize(
    out_dir: str | Path,
    *,
    size: str = "cpu",
    reuse_dir: str | Path | None = "figures/validation/table1_cpu128",
    command: str | None = None,
) -> dict:
    """Build ``suggest_validation.json`` / ``.md`` / ``.png`` from the runs on disk."""
    cfg = _check_size(size)
    out_dir = Path(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    reuse = _reuse_runs(reuse_dir, cfg)
    recs = _load(out_dir, cfg, reuse)
    runs = _run_counts(recs, cfg)
    img, left = _per_image(recs, cfg)
    choice, budget = _choices(img, cfg)
    scores = _scores(img, choice, cfg)
    gap = None
    if budget["chosen"]:
        held = [n for n in budget["chosen"] if "ntk_loo_budget" in choice[n]]
        per = scores["per_image"]
        gap = verdicts.paired_gap(
            [dict(image=n, loss=per[n]["ntk_inf"]) for n in held],
            [dict(image=n, loss=per[n]["ntk_loo_budget"]) for n in held],
            key="loss",
        )
    from ..provenance import provenance

    data = dict(
        description="Gaussian sigma chosen per image by each method, scored by the "
        "held-out PSNR lost against the image's best trained network sigma "
        "(ntkspec.studies.suggest_validation; module docstring for the conventions)",
        size=size,
        config={k: v for k, v in cfg.items() if k != "sigmas"},
        sigmas={k: list(v) for k, v in cfg["sigmas"].items()},
        budget_convention=f"gradient-flow time at eta = 1 (gd_dynamics units); "
        f"Table 1 budget t_B = {cfg['budget']:g}",
        informative_db=INFORMATIVE_DB,
        runs_on_disk=len(recs),
        runs=runs,
        reused=sorted(r["source"] for r in recs.values()
                      if not str(r["source"]).startswith(str(out_dir))),
        images_left_out=left,
        choices=choice,
        set_of={n: d["set"] for n, d in img.items()},
        constant_best={n: d["constant_best"] for n, d in img.items()},
        networks={n: {f"{g:g}": v for g, v in d["net"].items()}
                  for n, d in img.items()},
        ntk_at={n: dict(inf=d["ntk_inf"], budget=d["ntk_budget"])
                for n, d in img.items()},
        collapsed_seeds={n: d["collapsed_seeds"] for n, d in img.items()
                         if d["collapsed_seeds"]},
        scores=scores,
        budget=dict(budget, inf_minus_chosen=gap),
        curves={n: dict(sigmas=d["sigmas"], times=d["ntk_times"],
                        ntk=d["ntk_curve"].tolist(),
                        suggestion=d["suggestion_curve"]) for n, d in img.items()},
        runs_load=_runs_load(recs),
        load_average_now=[round(x, 2) for x in os.getloadavg()],
        provenance=provenance(command, 0),
    )  # fmt: skip
    data["verdict_markdown"] = verdict_markdown(data)
    write_json(out_dir / "suggest_validation.json", data)
    atomic_write(
        out_dir / "suggest_validation_verdict.md",
        lambda tmp: Path(tmp).write_text(data["verdict_markdown"]),
    )
    md = _markdown(data)
    atomic_write(
        out_dir / "suggest_validation.md", lambda tmp: Path(tmp).write_text(md)
    )
    plot(data, out_dir / "suggest_validation.png")
    return data


def _fmt_gap(g) -> str:
    return verdicts.format_gap(g) if g else "–"


def _runs_line(runs: dict) -> str:
    text = f"{runs['on_disk']} of {runs['expected']} runs on disk"
    if runs["complete"]:
        return text + " (complete)"
    by = ", ".join(f"{k} {v}" for k, v in runs["missing_by_kind"].items())
    return text + f" (**PARTIAL: {runs['missing']} missing**: {by})"


def _load_line(load: dict) -> str:
    if not load["load_1min"]:
        return ""
    lo = load["load_1min"]
    return (
        f"Runs: {load['seconds_total'] / 3600:.2f} h in all, 1-minute load "
        f"{lo['min']:.1f} to {lo['max']:.1f} (median {lo['median']:.1f}). "
    )


def _label(data: dict) -> str:
    """What ran, in words: hardware class of the size, crops, images, networks."""
    c = data["config"]
    nat, txt = len(data["sigmas"]["natural"]), len(data["sigmas"]["text"])
    hw = "GPU" if data["size"] == "gpu" else "CPU-reduced"
    return (
        f"{hw}: {c['crop']}² crops, {c['natural']} natural + {c['text']} text images, "
        f"{c['seeds']} seed{'s' if c['seeds'] > 1 else ''}, 4 x {c['width']} Adam "
        f"networks ({c['steps']} steps), {nat} / {txt} sigmas per set"
    )


_NAMES = {
    "suggestion": "`ntkspec suggest` (NTK at t_B = 1e4)",
    "ntk_budget": "NTK at t_B = 1e4",
    "ntk_loo_budget": "NTK at the budget chosen on the other images",
    "ntk_inf": "NTK at t = ∞",
}


def _gap_cell(g: dict | None) -> str:
    """``+m.mm, t [lo, hi], BCa [lo, hi], n = k`` (the verdict stated separately)."""
    if not g or g["mean"] is None:
        return "–"

    def iv(i):
        return f"[{i[0]:+.2f}, {i[1]:+.2f}]" if i else "–"

    return (
        f"{g['mean']:+.2f} dB, t {iv(g['t_interval'])}, BCa {iv(g['bca_interval'])}, "
        f"n = {g['n']}"
    )


def _gap_words(g: dict | None) -> str:
    if not g or g["mean"] is None:
        return "no image"
    if g["resolved"] is None:
        return "no interval (n < 2)"
    if not g["resolved"]:
        return "not resolved"
    return "resolved: " + ("beats the fixed σ" if g["mean"] < 0 else "loses to it")


def verdict_markdown(data: dict) -> str:
    """A short markdown verdict of a summary: numbers, intervals, sizes, hardware.

    Built from :func:`summarize`'s dict only (no new numbers). A gap is the method's
    loss minus the fixed sigma's (``fixed_loo``), the mean of per-image differences
    with the t- and BCa 95 % intervals over images; it is called resolved only when
    both intervals exclude 0 (:func:`ntkspec.verdicts.paired_gap`). While runs are
    missing the block starts with a PARTIAL warning.
    """
    runs, label = data["runs"], _label(data)
    summ, subsets = data["scores"]["summary"], data["scores"]["subsets"]
    out = [f"**Scale suggestion validated out of sample (issue 26; {label}).**", ""]
    if not runs["complete"]:
        by = runs["missing_by_kind"]
        out += [
            f"> **PARTIAL, not a result:** {runs['missing']} of {runs['expected']} "
            f"runs missing ({', '.join(f'{k} {v}' for k, v in by.items())}); "
            f"{len(data['images_left_out'])} image(s) left out. Do not paste.",
            "",
        ]
    allb = summ.get("all", {})
    sug, fix = allb.get("suggestion"), allb.get("fixed_loo")
    if not sug or not fix or not sug.get("minus_fixed_loo"):
        out.append(
            "Too few images with every run (at least 2 per set for the fixed σ chosen "
            "on the other images): nothing to report."
        )
        return "\n".join(out) + "\n"
    g = sug["minus_fixed_loo"]
    head = (
        f"On {g['n']} images, the σ of `ntkspec suggest` loses {sug['mean']:.2f} dB "
        f"(max {sug['max']:.2f}) of held-out PSNR against the trained networks' best "
        f"σ; a fixed σ per set chosen on the other images loses {fix['mean']:.2f} "
        f"(max {fix['max']:.2f}). "
    )
    if g["resolved"] and g["mean"] < 0:
        head += f"The suggestion beats the fixed σ by {-g['mean']:.2f} dB"
    elif g["resolved"]:
        head += f"The suggestion loses {g['mean']:.2f} dB to the fixed σ"
    else:
        head += (
            "The suggestion does not beat the fixed σ by a margin these images resolve"
        )
    out += [head + f" (gap {_gap_cell(g)}; {_gap_words(g)}).", ""]
    out += [
        "| images | method | mean loss (dB) | max | − fixed σ (95 % t / BCa) | "
        "verdict |",
        "|---|---|---|---|---|---|",
    ]
    methods = [*_NAMES, *(k for k in allb if k.startswith("fresh_"))]
    for sub in ("all", "informative"):
        block = summ.get(sub, {})
        n = len(subsets.get(sub, []))
        name = "all" if sub == "all" else f"best net ≥ constant + {INFORMATIVE_DB:g} dB"
        if "fixed_loo" in block:
            e = block["fixed_loo"]
            out.append(
                f"| {name} ({n}) | fixed σ, other images | {e['mean']:.2f} | "
                f"{e['max']:.2f} | – | – |"
            )
        for m in methods:
            e = block.get(m)
            if not e:
                continue
            g = e.get("minus_fixed_loo")
            label_m = _NAMES[m] if m in _NAMES else f"FreSh, spectrum size {m[6:]}"
            out.append(
                f"| {name} ({n}) | {label_m} | {e['mean']:.2f} | {e['max']:.2f} | "
                f"{_gap_cell(g)} | {_gap_words(g)} |"
            )
    b = data["budget"]
    if b["chosen"]:
        t = np.asarray(list(b["chosen"].values()))
        gi = b["inf_minus_chosen"]
        words = _gap_words(gi).replace("beats the fixed σ", "t = ∞ is better")
        words = words.replace("loses to it", "the budget helps")
        out += [
            "",
            f"Budget chosen leave-one-image-out (the held image unseen): t = "
            f"{np.median(t):.3g} median over the {t.size} held images (range "
            f"{t.min():.3g} to {t.max():.3g}; on all images in sample "
            f"{b['in_sample']['time']:.3g}). How much the budget matters on the held "
            f"images, loss at t = ∞ minus loss at the chosen budget: "
            f"{_gap_cell(gi)} ({words}; positive: the chosen budget loses less).",
        ]
    out += [
        "",
        "Loss = held-out PSNR lost against the image's best network σ, seeds "
        "averaged; collapsed network runs are never averaged: "
        f"{sum(r['reason'].startswith('collapsed') for r in data['images_left_out'])}"
        " image(s) left out for them (causes in the JSON), "
        f"{len(data['collapsed_seeds'])} kept with a collapsed seed left out. "
        "t_B = 1e4 was calibrated on astronaut "
        "(512², GPU networks), which is one of these images. CLI help, one line: "
        f'"{_cli_line(data)}"',
    ]
    return "\n".join(out) + "\n"


def _cli_line(data: dict) -> str:
    sug = data["scores"]["summary"]["all"]["suggestion"]
    g = sug["minus_fixed_loo"]
    hw = "GPU" if data["size"] == "gpu" else "CPU"
    if g["resolved"] and g["mean"] < 0:
        verb = f"beats a fixed σ chosen on other images by {-g['mean']:.2f} dB"
    elif g["resolved"]:
        verb = f"loses {g['mean']:.2f} dB to a fixed σ chosen on other images"
    else:
        verb = "does not beat a fixed σ chosen on other images (gap not resolved)"
    lo, hi = g["t_interval"] or (math.nan, math.nan)
    return (
        f"validated on {g['n']} images ({hw}, {data['config']['crop']}² crops): "
        f"{verb}; {g['mean']:+.2f} dB, 95 % t [{lo:+.2f}, {hi:+.2f}]"
    )


def _markdown(data: dict) -> str:
    dev = data["provenance"]["device"]
    lines = [
        f"# Scale suggestion validated out of sample ({data['size']}, {dev})",
        "",
        _runs_line(data["runs"])
        + f"; {data['budget_convention']}. "
        + _load_line(data["runs_load"])
        + "Loss = held-out PSNR lost against the image's best network sigma (dB); "
        "gap = method's loss − fixed_loo's, mean of per-image differences with the "
        "t- and BCa 95 % intervals (negative: the method beats the fixed sigma).",
    ]
    lines += ["", "## Verdict block (generated; paste as is)", "",
              data["verdict_markdown"].rstrip()]  # fmt: skip
    for sub, block in data["scores"]["summary"].items():
        n = len(data["scores"]["subsets"][sub])
        lines += ["", f"## {sub} ({n} images)", "",
                  "| method | mean loss | max loss | n | gap vs fixed_loo |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for m, e in block.items():
            lines.append(
                f"| {m} | {e['mean']:.2f} | {e['max']:.2f} | {e['n']} | "
                f"{_fmt_gap(e.get('minus_fixed_loo'))} |"
            )
    methods = list(dict.fromkeys(m for c in data["choices"].values() for m in c))
    lines += [] if not methods else ["", "## Sigma chosen per image (loss in dB)", "",
              "| image | set | best network sigma | best − constant (dB) | "
              + " | ".join(methods) + " |",
              "|---" * (4 + len(methods)) + "|"]  # fmt: skip
    for n, c in data["choices"].items():
        net = data["networks"][n]
        best = max(net, key=net.get)
        loss = data["scores"]["per_image"][n]
        cells = [f"{c[m]:g} ({loss[m]:.2f})" if m in c else "–" for m in methods]
        lines.append(
            f"| {n} | {data['set_of'][n]} | {best} | "
            f"{net[best] - data['constant_best'][n]:.1f} | " + " | ".join(cells) + " |"
        )
    b = data["budget"]
    ins = b["in_sample"]
    lines += [
        "",
        "## Budget chosen out of sample",
        "",
        "Per held image, the budget chosen on the other images: "
        + ", ".join(f"{k} {v:g}" for k, v in b["chosen"].items())
        + (f" (in sample, on all images: {ins['time']:g})" if ins else ""),
        "",
        "Loss at t = inf minus loss at the chosen budget, on the held images: "
        + _fmt_gap(b["inf_minus_chosen"]),
    ]
    if data["images_left_out"]:
        lines += ["", "## Images left out", ""]
        lines += [
            f"- {r['set']}/{r['image']}: {r['reason']}" for r in data["images_left_out"]
        ]
    return "\n".join(lines) + "\n"


def plot(data: dict, path: str | Path) -> None:
    """Per-image loss per method; NTK vs network curves (relative), 2 images a set."""
    from ..io import agg_subplots, save_figure

    fig, axes = agg_subplots(
        1, 2, figsize=(14, 5.2), squeeze=False, gridspec_kw={"wspace": 0.45}
    )
    fig.subplots_adjust(bottom=0.2)
    ax = axes[0][0]
    loss = data["scores"]["per_image"]
    names = list(loss)
    methods = list(dict.fromkeys(m for n in names for m in loss[n]))
    for k, m in enumerate(methods):
        off = (k - (len(methods) - 1) / 2) * 0.8 / max(len(methods), 1)
        xs = [i + off for i, n in enumerate(names) if m in loss[n]]
        ys = [loss[n][m] for n in names if m in loss[n]]
        ax.plot(xs, ys, "o", ms=4, label=m)
    ax.set_xticks(range(len(names)), [n[:12] for n in names], rotation=60, fontsize=7)
    ax.set_ylabel("held-out PSNR lost vs best network sigma (dB)")
    if methods:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("loss per image and method", fontsize=10)
    ax = axes[0][1]
    few = [n for n in names if data["set_of"][n] == "natural"][:2]
    few += [n for n in names if data["set_of"][n] == "text"][:2]
    for k, n in enumerate(few):
        c = data["curves"][n]
        sig = np.asarray(c["sigmas"])
        net = np.asarray([data["networks"][n][f"{g:g}"] for g in sig])
        ax.semilogx(sig, net - net.max(), "o-", color=f"C{k}", label=f"{n} networks")
        t = data["budget"]["chosen"].get(n)
        if t is not None and math.isfinite(t):
            j = int(np.argmin(np.abs(np.log(c["times"]) - math.log(t))))
            pred = np.asarray(c["ntk"])[:, j]
            lab = f"NTK t={t:.3g}"
        else:
            pred = np.asarray(data["ntk_at"][n]["inf"])
            lab = "NTK t=inf"
        ax.semilogx(sig, pred - pred.max(), "--", color=f"C{k}", label=lab)
        sug = c.get("suggestion")
        if sug:
            p = np.asarray([sug[f"{g:g}"] for g in sig])
            ax.semilogx(sig, p - p.max(), ":", color=f"C{k}", label="suggest (t_B)")
    shown = sorted({float(g) for n in few for g in data["curves"][n]["sigmas"]})
    if shown:
        ax.set_xticks(shown, [f"{g:g}" for g in shown], fontsize=7)
        ax.set_xticks([], minor=True)
    ax.set_xlabel("sigma (cycles per 512 px)")
    ax.set_ylabel("PSNR − its max over sigma (dB)")
    if names:
        ax.legend(fontsize=6)
    ax.set_title(
        "networks (solid), NTK at the held-out budget (dashed), suggest (dotted)",
        fontsize=10,
    )
    runs = data.get("runs", {})
    partial = (
        f" · PARTIAL: {runs['missing']} of {runs['expected']} runs missing"
        if runs and not runs["complete"]
        else ""
    )
    fig.suptitle(
        f"scale suggestion, out of sample · {data['size']} · "
        f"{data['provenance']['device']}{partial}",
        fontsize=10,
    )
    save_figure(fig, path, dpi=90)
