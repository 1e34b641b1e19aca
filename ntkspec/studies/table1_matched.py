r"""Tancik et al. (2020) Table 1 with every column on the same images: a paired study.

For each image (centre crops of ``crop`` x ``crop`` pixels of the 512 x 512 images, at
pixel pitch 1/512 so that the mappings' scales keep their meaning; train on the pixels
``[::2, ::2]``, score on the held-out ``[1::2, 1::2]``) and each mapping (none, basic,
positional, Gaussian with the paper's scales), the columns are:

* ``ntk_inf``: the infinitely wide network (depth 4, NTK parameterization,
  :math:`\sigma_w^2 = 2`, :math:`\sigma_b = 0.1`: the networks' bias, also for "none")
  at :math:`t = \infty`;
* ``ntk_budget``: the same at the budget :math:`t_B` (below);
* ``adam``: the paper's network (4 x 256, sigmoid output, stax initialisation,
  full-batch Adam, 2000 steps, learning rate 1e-2 for none / basic on natural images,
  else 1e-3), one seed per image plus a second seed on the first images of each set;
* ``ntk_at_adam_loss``: the NTK at the **loss-matched time** :math:`t^*` of each Adam
  run, the gradient-flow time at which the NTK's train MSE equals the run's
  (:mod:`ntkspec.loss_matching`);
* ``control`` and ``ntk_at_control_loss``: an Adam network the theory describes more
  closely (linear readout, NTK parameterization, the theory's architecture) and the
  NTK at its loss-matched time, on the first images of each set: if the NTK explains
  the control but not the paper's network, the sigmoid output and stax
  parameterization are what it misses; if neither, the optimiser;
* ``gd``: centred GD networks of the theory's architecture (the reported network is
  :math:`f(\cdot;\theta_t) - f(\cdot;\theta_0)`, whose linearisation starts at the
  theory's mean 0) at the theory's step size, on the first images of each set.

**Budget convention.** A budget is a gradient-flow time :math:`t` of the loss
:math:`\frac{1}{2N_y}\sum(f-y)^2` at learning rate :math:`\eta = 1` in
:func:`ntkspec.gd_dynamics`'s units (mode i of the train residual decays as
:math:`e^{-\lambda_i t/N_y}`), the same for every mapping and image, so that "at the
same budget" means the same time on the same loss. Table 1 uses
:math:`t_B = 10^4`, ``ntkspec.design.DEFAULT_TIME`` (the scale suggestion's budget).
A GD network takes step size :math:`\eta_k = N_y/\lambda_{\max,k}` (half the stability
limit of mapping k) and :math:`T_k = \lceil t_B/\eta_k \rceil` steps, so that all
mappings train for the same flow time; the step count is capped at ``gd_max_steps``
(2000 on the CPU size, the cost of one Adam run), so a capped GD network stops at the
flow time :math:`2000\,\eta_k` and is compared with the NTK at that same time (column
``ntk_at_gd_time``). (The older ``table1_budget`` study used :math:`\eta_k` and equal T
instead, which gives the mappings different flow times.)
Adam has no flow time: it is placed on this axis by its train loss (above).

**Loss-matched time in practice.** Each NTK task evaluates ``gd_dynamics`` once on a
log grid of times (12 per decade) and stores the train MSE and held-out PSNR there;
:math:`t^*` and the PSNR at it are interpolated (log MSE and PSNR linear in log t),
which the ``--quick`` run checks against the exact root of
:func:`ntkspec.loss_matching.loss_matched_prediction`.

**Statistics** (:mod:`ntkspec.verdicts`): seeds averaged within an image first; means
over images with 95 % t- and BCa intervals; gaps as means of per-image differences;
collapsed runs kept, marked and left out.

**Checkpoints.** Every finished run is one JSON file under ``<out>/runs/`` (written
atomically; its name is the task key); a later call skips the tasks whose file
exists, so a cut-off run resumes. :func:`summarize` builds the table from whatever
runs exist.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Table 1).
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .. import data as datasets
from .. import mappings as maps
from .. import verdicts
from ..io import atomic_write, write_json
from ..kernels import ReluMLP
from ._common import MAPPING_NAMES, PAPER_TABLE1, SCALES, network_scores
from ._common import crop_grid as _coords
from ._common import table1_images as _images
from ._common import table1_network_run as _network_run
from ._common import table1_ntk_run as _ntk_run
from ._common import table1_psnr as _psnr
from ._table1 import verdict_markdown, verdict_table

__all__ = [
    "ARCH",
    "SIZES",
    "BUDGET_TIME",
    "set_mappings",
    "tasks",
    "run_task",
    "run",
    "summarize",
    "NETWORK_SIZES",
    "run_networks",
    "plot",
]

#: The infinitely wide network, the control and the GD networks' architecture.
ARCH = ReluMLP(4, W_std=math.sqrt(2.0), b_std=0.1)
RES = datasets.IMAGE_RES
#: The budget: gradient-flow time at eta = 1 (ntkspec.design.DEFAULT_TIME).
BUDGET_TIME = 1e4

#: Run sizes. ``images``: per set; ``extra``: images per set (the first ones) that get
#: the second seed, the control and the GD networks; optional ``mappings``: the rows
#: run (default all four).
SIZES = {
    "quick": dict(
        crop=16,
        images=2,
        extra=1,
        steps=20,
        width=32,
        budget=1e2,
        gd_max_steps=200,
        times_per_decade=12,
    ),
    "cpu": dict(
        crop=128,
        images=6,
        extra=2,
        steps=2000,
        width=256,
        budget=BUDGET_TIME,
        gd_max_steps=2000,
        times_per_decade=12,
    ),
}


def set_mappings(image_set: str) -> dict:
    """The four Table 1 mappings with the paper's scales (Gaussian B from seed 0)."""
    sc = SCALES[image_set]
    return {
        "none": maps.identity(2),
        "basic": maps.basic(2),
        "positional": maps.positional(2, 128, scale=sc["pe_scale"]),
        "gaussian": maps.gaussian(0, 2, 256, sc["sigma"]),
    }


def adam_learning_rate(image_set: str, mapping_name: str) -> float:
    """The official notebook's: 1e-2 for none / basic on natural images, else 1e-3."""
    natural_low = image_set == "natural" and mapping_name in ("none", "basic")
    return 1e-2 if natural_low else 1e-3


def tasks(cfg: dict) -> list[dict]:
    """Every task in priority order (a cut-off run keeps the most useful ones).

    Order: per image index (sets interleaved), the Adam networks (seed 0) and the NTK
    of each mapping; then the second seeds, the controls, the GD networks.
    """
    out = []
    sets = ("natural", "text")
    names = cfg.get("mappings", MAPPING_NAMES)
    for i in range(cfg["images"]):
        for s in sets:
            for m in names:
                out.append(dict(kind="adam", set=s, index=i, mapping=m, seed=0))
                out.append(dict(kind="ntk", set=s, index=i, mapping=m, seed=0))
    for kind, seed in (("adam", 1), ("control", 0), ("gd", 0)):
        for i in range(cfg["extra"]):
            for s in sets:
                for m in names:
                    out.append(dict(kind=kind, set=s, index=i, mapping=m, seed=seed))
    return out


def _key(task: dict, image: str) -> str:
    return f"{task['kind']}__{task['set']}__{image}__{task['mapping']}__s{task['seed']}"


def _gd_run(mapping, x, y, tr, held, cfg) -> dict:
    import jax

    from ..networks import mlp, train
    from ..spectra import spectrum

    n_y = y[tr].size
    lam_max = float(np.max(spectrum(ARCH, mapping, x[tr], k=1)))
    eta = n_y / lam_max
    steps = int(math.ceil(cfg["budget"] / eta))
    capped = steps > cfg["gd_max_steps"]
    steps = min(steps, cfg["gd_max_steps"])
    net = mlp(ARCH, mapping, cfg["width"], out_dim=3)
    params = net.init(jax.random.PRNGKey(10))
    f0 = np.asarray(net.apply(params, x), np.float64)
    # centred: fit f to y + f0, report g = f - f0 (same gradients; g_0 = 0)
    result = train(
        net,
        params,
        x[tr],
        y[tr] + f0[tr],
        steps=steps,
        learning_rate=eta,
        optimizer="gd",
        eval_every=steps,
        progress=False,
        record_outputs=True,
        eval_sets={"all": (x, y + f0)},
    )
    g = np.asarray(result.history.outputs["all"][-1], np.float64) - f0
    finite = bool(np.all(np.isfinite(g)))
    return dict(
        learning_rate=eta,
        lambda_max=lam_max,
        steps=steps,
        flow_time=eta * steps,
        steps_capped=capped,
        psnr_heldout=_psnr(g[held], y[held]) if finite else None,
        psnr_train=_psnr(g[tr], y[tr]) if finite else None,
        prediction_constant=bool(finite and np.all(np.ptp(g[held], axis=0) <= 1e-6)),
        prediction_finite=finite,
    )


def run_task(task: dict, images: dict, cfg: dict, runs_dir: Path) -> Path:
    """Run one task and write its JSON (atomically); skip it when the file exists."""
    name = list(images[task["set"]])[task["index"]]
    path = runs_dir / f"{_key(task, name)}.json"
    if path.exists():
        return path
    img = images[task["set"]][name]
    crop = img.shape[0]
    x, y = _coords(crop), img.reshape(-1, 3)
    tr = datasets.train_indices((crop, crop))
    held = datasets.heldout_indices((crop, crop))
    mapping = set_mappings(task["set"])[task["mapping"]]
    load0, t0 = os.getloadavg(), time.perf_counter()
    if task["kind"] in ("adam", "control"):
        out = _network_run(task, mapping, x, y, tr, held, cfg)
    elif task["kind"] == "ntk":
        out = _ntk_run(mapping, x, y, tr, held, cfg)
    else:
        out = _gd_run(mapping, x, y, tr, held, cfg)
    record = dict(
        task,
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
    write_json(path, record)
    return path


def _loss_matched(ntk: dict, target_mse: float) -> tuple[float, float, str]:
    """(t*, NTK held-out PSNR at t*, status) by interpolation on the stored curve."""
    t = np.log(np.asarray(ntk["times"]))
    mse = np.log(np.maximum(np.asarray(ntk["train_mse"]), 1e-300))  # 0: interpolated
    psnr = np.asarray(ntk["psnr_curve"])
    if target_mse >= ntk["train_mse_0"] or target_mse >= math.exp(mse[0]):
        return float(np.exp(t[0])), float(psnr[0]), "at or above the first time"
    if target_mse <= math.exp(mse[-1]):
        return math.inf, float(ntk["psnr_inf"]), "below the last time (t = inf)"
    lt = float(np.interp(math.log(target_mse), mse[::-1], t[::-1]))
    return math.exp(lt), float(np.interp(lt, t, psnr)), "matched"


def _psnr_at_time(ntk: dict, t: float) -> float:
    """The NTK's held-out PSNR at flow time t (log-t interpolation, clamped)."""
    times = np.asarray(ntk["times"], float)
    if t >= times[-1]:
        return float(ntk["psnr_curve"][-1])
    return float(np.interp(math.log(t), np.log(times), np.asarray(ntk["psnr_curve"])))


def _columns(runs: list[dict]) -> tuple[dict, list[dict]]:
    """Runs on disk -> per set, mapping and column the marked runs; the matched.

    Returns:
        ``(table, matched)``: ``table[set][mapping][column]`` lists the runs
        (:func:`ntkspec.verdicts.mark_runs`), columns in :data:`LABELS` order;
        ``matched`` the loss-matched NTK entries of the Adam and control runs.
    """
    ntk = {(r["set"], r["image"], r["mapping"]): r for r in runs if r["kind"] == "ntk"}
    table: dict = {}
    matched = []
    for r in runs:
        cols = table.setdefault(r["set"], {}).setdefault(r["mapping"], {})
        key = (r["set"], r["image"], r["mapping"])
        base = dict(image=r["image"], seed=r["seed"])
        if r["kind"] == "ntk":
            for col, val in (
                ("ntk_inf", r["psnr_inf"]),
                ("ntk_budget", r["psnr_budget"]),
            ):
                cols.setdefault(col, []).append(dict(base, psnr_heldout=val))
            continue
        theory = None
        if r["kind"] in ("adam", "control") and key in ntk:
            t_star, p_star, status = _loss_matched(ntk[key], r["train_mse"])
            theory = p_star
            col = "ntk_at_adam_loss" if r["kind"] == "adam" else "ntk_at_control_loss"
            cols.setdefault(col, []).append(dict(base, psnr_heldout=p_star))
            matched.append(
                dict(
                    base,
                    set=r["set"],
                    mapping=r["mapping"],
                    kind=r["kind"],
                    t_star=t_star,
                    status=status,
                    network=r["psnr_heldout"],
                    ntk=p_star,
                )
            )
        elif r["kind"] == "gd" and key in ntk:
            theory = _psnr_at_time(ntk[key], r["flow_time"])
            cols.setdefault("ntk_at_gd_time", []).append(
                dict(base, psnr_heldout=theory)
            )
        run = dict(base, psnr_heldout=r["psnr_heldout"])
        if not r.get("prediction_finite", True) or r["psnr_heldout"] is None:
            run.update(collapsed=True, cause="non-finite output (the run diverged)")
        elif r.get("prediction_constant"):
            run.update(collapsed=True, cause="constant output over the held-out pixels")
        cols.setdefault(r["kind"], []).append(
            dict(run, constant_psnr=r["constant_psnr"], theory_psnr=theory)
        )
    for rows in table.values():
        for cols in rows.values():
            for c, rs in cols.items():
                cols[c] = [
                    {
                        k: v
                        for k, v in q.items()
                        if k not in ("constant_psnr", "theory_psnr")
                    }
                    for q in verdicts.mark_runs(rs)
                ]
    order = list(LABELS)
    table = {
        s: {
            m: {c: table[s][m][c] for c in order if c in table[s][m]}
            for m in MAPPING_NAMES
            if m in table[s]
        }
        for s in ("natural", "text")
        if s in table
    }
    return table, matched


def summarize(out_dir: str | Path, *, command: str | None = None) -> dict:
    """Build ``table1_matched.json`` / ``.md`` / ``.png`` from the runs on disk."""
    out_dir = Path(out_dir)
    runs = [
        json.loads(p.read_text()) for p in sorted((out_dir / "runs").glob("*.json"))
    ]
    table, matched = _columns(runs)
    v = verdict_table(
        table,
        rule_note="Adam and control networks are judged against the NTK at their "
        "loss-matched time, GD networks against the NTK at their own flow time.",
    )
    agreement = _agreement(table)
    data = dict(
        description="Table 1 with every column on the same images and crops "
        "(ntkspec.studies.table1_matched; module docstring for the conventions)",
        budget_convention=f"gradient-flow time t_B = {BUDGET_TIME:g} at eta = 1 "
        "(gd_dynamics units), equal for every mapping and image; GD networks at "
        "eta_k = N_y/lambda_max,k for min(ceil(t_B/eta_k), gd_max_steps) steps, "
        "compared with the NTK at their own flow time",
        runs_done=len(runs),
        loss_matched=matched,
        agreement=agreement,
        verdicts=v,
        paper_table1={
            k: {m: list(p) for m, p in d.items()} for k, d in PAPER_TABLE1.items()
        },
        load_average_now=[round(x, 2) for x in os.getloadavg()],
    )
    from ..provenance import provenance

    data["provenance"] = provenance(command, 0)
    write_json(out_dir / "table1_matched.json", data)
    md = verdict_markdown(
        v,
        title="Table 1, matched columns (CPU)",
        note=f"{data['provenance']['device']}; {len(runs)} runs on disk; "
        + data["budget_convention"],
        labels=LABELS,
    ) + _agreement_markdown(agreement)
    atomic_write(out_dir / "table1_matched.md", lambda tmp: Path(tmp).write_text(md))
    plot(data, out_dir / "table1_matched.png")
    return data


def plot(data: dict, path: str | Path) -> None:
    """Bars per mapping and column (mean over images, 95 % t-interval), per set."""
    from ..io import agg_subplots, save_figure

    table = data["verdicts"]["table"]
    sets = list(table) or ["natural"]
    fig, axes = agg_subplots(
        1, len(sets), figsize=(7.5 * len(sets), 4.8), squeeze=False
    )
    for ax, s in zip(axes[0], sets, strict=True):
        rows = table.get(s, {})
        cols = [c for c in LABELS if any(c in r for r in rows.values())]
        width = 0.8 / max(len(cols), 1)
        for k, c in enumerate(cols):
            xs, ys, lo, hi = [], [], [], []
            for j, m in enumerate(rows):
                summ = rows[m].get(c, {}).get("summary")
                if not summ or summ["mean"] is None:
                    continue
                iv = summ["t_interval"] or [summ["mean"], summ["mean"]]
                xs.append(j + (k - (len(cols) - 1) / 2) * width)
                ys.append(summ["mean"])
                lo.append(summ["mean"] - iv[0])
                hi.append(iv[1] - summ["mean"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=LABELS[c])
        ax.set_xticks(range(len(rows)), list(rows))
        ax.set_ylabel("held-out PSNR (dB)")
        ax.set_title(f"{s}: mean over images, 95 % t-interval", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"Table 1, matched columns · {data['provenance']['device']} · "
        f"{data['runs_done']} runs finished",
        fontsize=10,
    )
    save_figure(fig, path, dpi=90)


LABELS = {
    "ntk_inf": "NTK t=∞",
    "ntk_budget": "NTK t_B",
    "adam": "Adam (paper)",
    "ntk_at_adam_loss": "NTK at Adam's loss",
    "control": "Adam control (linear, NTK param.)",
    "ntk_at_control_loss": "NTK at control's loss",
    "gd": "GD network",
    "ntk_at_gd_time": "NTK at GD's time",
}


def _agreement(table: dict) -> dict:
    """How well the loss-matched NTK predicts each network column and its gaps."""
    from ._table1 import GAP_PAIRS

    out = {}
    for s, rows in table.items():
        out[s] = {}
        for net, ref in (
            ("adam", "ntk_at_adam_loss"),
            ("control", "ntk_at_control_loss"),
            ("gd", "ntk_at_gd_time"),
        ):
            block = {}
            for m, cols in rows.items():
                if net in cols and ref in cols:
                    block[f"{m}: network − NTK"] = verdicts.paired_gap(
                        cols[net], cols[ref]
                    )
            for a, b in GAP_PAIRS:
                if all(k in rows and net in rows[k] and ref in rows[k] for k in (a, b)):
                    # per image: (network gap) − (NTK gap)
                    na = verdicts.image_means(rows[a][net])
                    nb = verdicts.image_means(rows[b][net])
                    ta = verdicts.image_means(rows[a][ref])
                    tb = verdicts.image_means(rows[b][ref])
                    common = [i for i in na if i in nb and i in ta and i in tb]
                    d = np.asarray([(na[i] - nb[i]) - (ta[i] - tb[i]) for i in common])
                    block[f"gap {a} − {b}: network − NTK"] = dict(
                        verdicts.mean_interval(d), images=common
                    )
            out[s][net] = block
    return out


def _agreement_markdown(agreement: dict) -> str:
    lines = [
        "",
        "**Loss-matched NTK against the networks** (mean of per-image differences, "
        "dB, 95 % t-interval; 0 = the NTK at the network's train loss predicts it)",
        "",
        "| set | network | quantity | mean [t-interval] (n) |",
        "|---|---|---|---|",
    ]
    for s, by_net in agreement.items():
        for net, block in by_net.items():
            for name, g in block.items():
                if g["mean"] is None:
                    continue
                iv = g["t_interval"]
                ivs = f" [{iv[0]:+.2f}, {iv[1]:+.2f}]" if iv else ""
                lines.append(
                    f"| {s} | {net} | {name} | {g['mean']:+.2f}{ivs} (n = {g['n']}) |"
                )
    return "\n".join(lines) + "\n"


#: Sizes of the networks-only entry (the GPU's part: Adam networks of all four mappings
#: of an image and seed trained at once, :func:`ntkspec.networks.train_ensemble`).
#: Natural: every photo bundled that reaches 512 px without upsampling (5 of them).
NETWORK_SIZES = {
    "gpu": dict(crop=512, natural=8, text=8, seeds=3, steps=2000, width=256),
    "tiny": dict(crop=16, natural=2, text=2, seeds=2, steps=3, width=16),
}


def run_networks(
    out_dir: str | Path, *, size: str = "gpu", log=print, mesh=None
) -> list[Path]:
    """The Adam (paper) networks of the matched table, four mappings per call.

    Order: seed 0 over every image (sets interleaved), then seed 1, then seed 2, so
    that a cut-off run keeps whole seeds. Each finished run is one JSON file under
    ``<out_dir>/runs/`` in :func:`run_task`'s format (kind ``"adam"``), written
    atomically as soon as its call returns; existing files are skipped. The NTK
    columns are computed separately (:func:`run`) and :func:`summarize` pairs them.

    Returns:
        The paths written by this call.
    """
    import jax

    from ..networks import mlp, train_ensemble

    if size not in NETWORK_SIZES:
        raise ValueError(f"size must be one of {sorted(NETWORK_SIZES)}; got {size!r}")
    cfg = NETWORK_SIZES[size]
    runs_dir = Path(out_dir) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    crop = cfg["crop"]
    images = {
        "natural": _images("natural", crop, cfg["natural"]),
        "text": _images("text", crop, cfg["text"]),
    }
    x = _coords(crop)
    tr = datasets.train_indices((crop, crop))
    held = datasets.heldout_indices((crop, crop))
    written = []
    for seed in range(cfg["seeds"]):
        for i in range(max(len(v) for v in images.values())):
            for s in ("natural", "text"):
                if i >= len(images[s]):
                    continue
                name = list(images[s])[i]
                maps_ = set_mappings(s)
                todo = [
                    m
                    for m in MAPPING_NAMES
                    if not (runs_dir / f"adam__{s}__{name}__{m}__s{seed}.json").exists()
                ]
                if not todo:
                    continue
                y = images[s][name].reshape(-1, 3)
                nets = [
                    mlp(ReluMLP(4), maps_[m], cfg["width"], out_dim=3,
                        output="sigmoid", initialization="stax")
                    for m in todo
                ]  # fmt: skip
                params = [n.init(jax.random.PRNGKey(10 + seed)) for n in nets]
                load0, t0 = os.getloadavg(), time.perf_counter()
                res = train_ensemble(
                    nets,
                    params,
                    x[tr],
                    y[tr],
                    steps=cfg["steps"],
                    learning_rate=[adam_learning_rate(s, m) for m in todo],
                    eval_sets={"all": (x, y)},
                    mesh=mesh,
                )
                seconds = time.perf_counter() - t0
                for k, m in enumerate(todo):
                    pred = np.asarray(res.outputs["all"][k], np.float64)
                    rec = dict(
                        kind="adam", set=s, index=i, mapping=m, seed=seed, image=name,
                        crop=crop,
                        constant_psnr=verdicts.constant_psnrs(y[tr], y[held]),
                        learning_rate=adam_learning_rate(s, m), steps=cfg["steps"],
                        network="4 x 256 sigmoid output, stax initialisation, Adam "
                        "(paper); the four mappings in one train_ensemble call",
                        **network_scores(pred, y, tr, held),
                        seconds_call=round(seconds, 2),
                        members=len(todo),
                        device=str(jax.devices()[0]),
                        load_average=dict(
                            start=[round(v, 2) for v in load0],
                            end=[round(v, 2) for v in os.getloadavg()],
                        ),
                    )  # fmt: skip
                    path = runs_dir / f"adam__{s}__{name}__{m}__s{seed}.json"
                    write_json(path, rec)
                    written.append(path)
                log(f"{s}/{name} seed {seed}: {len(todo)} networks, {seconds:.1f} s")
    return written


def run(
    out_dir: str | Path = "figures/validation/table1_cpu128",
    *,
    size: str = "cpu",
    command: str | None = None,
    max_tasks: int | None = None,
    log=print,
) -> dict:
    """Run the tasks not yet on disk (priority order), then :func:`summarize`.

    Args:
        out_dir: output folder; runs go to ``<out_dir>/runs/``.
        size: ``"quick"`` (seconds) or ``"cpu"``.
        command: command line for the provenance.
        max_tasks: stop after this many new tasks (None: all).
        log: called with one line per finished task.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    cfg = SIZES[size]
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", dict(size=size, **cfg))
    images = {s: _images(s, cfg["crop"], cfg["images"]) for s in ("natural", "text")}
    done = 0
    for task in tasks(cfg):
        name = list(images[task["set"]])[task["index"]]
        if (runs_dir / f"{_key(task, name)}.json").exists():
            continue
        if max_tasks is not None and done >= max_tasks:
            break
        path = run_task(task, images, cfg, runs_dir)
        done += 1
        rec = json.loads(path.read_text())
        log(
            f"{path.name}: held-out {rec.get('psnr_heldout')} dB, "
            f"{rec['seconds']} s, load {rec['load_average']['end'][0]}"
        )
        summarize(out_dir, command=command)
    return summarize(out_dir, command=command)
