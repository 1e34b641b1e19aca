r"""Tancik et al. (2020) Table 1 at the networks' training budget, by the NTK spectrum.

At :math:`t = \infty` the infinitely wide network fits every mapping about equally well
(``regression_table``); the paper's gaps appear in a *finite* budget, where the residual
along eigenvector i of the train Gram decays like :math:`(1 - \eta\lambda_i/N_y)^T`.
For each image set (natural photos and a paper-like text set, :mod:`ntkspec.data`) and
mapping (none, basic, positional, Gaussian) this study puts side by side, on the
held-out pixels ``[1::2, 1::2]`` after training on ``[::2, ::2]``:

* **theory**: the mean output of the infinitely wide depth-4 ReLU MLP (NTK
  parameterization, :math:`\sigma_w^2 = 2`, :math:`\sigma_b = 0.1`) after T full-batch
  GD steps at learning rate :math:`\eta`, :func:`ntkspec.gd_dynamics` with
  ``discrete=True``, and at :math:`t = \infty`;
* **GD networks**: finite networks of the same architecture and parameterization
  trained by full-batch GD with the same :math:`\eta` and T on the same loss
  :math:`\sum(f-y)^2/(2N_y)`, *centred*: the network reported is
  :math:`g = f(\cdot;\theta_t) - f(\cdot;\theta_0)`, trained by fitting f to
  :math:`y + f(X;\theta_0)`, which has the same gradients. Its linearisation starts at
  :math:`g_0 = 0`, the theory's mean output, so the theory applies run by run; the
  gap shrinks like :math:`\text{width}^{-1/2}` (Lee et al. 2019). Networks of several
  widths on a subset of runs show the trend;
* **Adam networks**: the paper's setup (:mod:`ntkspec.studies.table1_networks`:
  4 x 256, stax initialisation, sigmoid output, Adam);
* the paper's numbers.

**Learning rate and budget.** (This study predates the project's budget convention,
:mod:`ntkspec.studies.table1_matched`: a budget is a gradient-flow time at
:math:`\eta = 1`, equal for every mapping. Here equal T at a per-mapping
:math:`\eta` gives the mappings different flow times, 2.7-2.9x more for Gaussian
than basic.) :math:`\eta = N_y / \lambda_{\max}` for each mapping
(half the stability limit :math:`2 N_y/\lambda_{\max}`; the top mode is learned in one
step), with :math:`\lambda_{\max}` of the infinite-width train Gram (Lanczos on Grids).
After T steps the modes with :math:`\lambda_i \gtrsim \lambda_{\max}/T` are learned and
the others are not: T is the paper's 2000 at full size, fewer at the CPU sizes. The
JSON records the theory's train PSNR at T (well trained) beside its value at
:math:`t = \infty` (infinite: interpolation), i.e. not converged.

**Sizes.** The full size is the paper's task, 256 x 256 train -> 512 x 512. The CPU
sizes train on a centre crop of side ``crop`` of each 512 x 512 image at pixel pitch
1/512, so the mappings' scales mean what they mean at full size. For a Fourier mapping
the crop is passed to the theory as :class:`~ntkspec.Grid` values with the frequencies
scaled by crop/512 (the features :math:`\cos 2\pi B x` are unchanged), so
:func:`theory_curves` takes ntkspec's structured Grid paths wherever they exist (the
FFT path of the periodic basic mapping at full size; issue 12's Krylov path for the
others once it lands) and the dense path at the reduced sizes. Raw coordinates
("none") have no stationary kernel and use points; at full size their dense Gram does
not fit and that row is computed on a 128 x 128 centre crop.

**Statistics.** Every entry is a mean over images, seeds averaged within an image
first (the seed draws the Gaussian frequencies and the networks' initialisation), with
n = images and a 95 % t-interval and BCa bootstrap interval over images; gaps between
mappings are means of per-image differences with the same intervals
(:mod:`ntkspec.verdicts`, the ``verdicts`` block of the JSON). Collapsed runs
(constant or non-finite output, or a PSNR within 0.1 dB of the best constant
predictor's while the theory at the same budget predicts at least 1 dB more) are
listed with their cause and left out of the mean; a collapsed Adam run is rerun once
at a tenth of the learning rate, a diverged GD run at half of it.

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Table 1).
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from .. import data as datasets
from .. import verdicts
from ..dynamics import gd_dynamics
from ..grid import Grid
from ..io import save_figure
from ..networks import mlp, train
from ._common import (
    ARCH,
    MAPPING_NAMES,
    PAPER_TABLE1,
    RES,
    adam_learning_rate,
    budget_learning_rate,
    fit_image,
    format_stat,
    task_inputs,
    write_study,
)
from ._common import paper_mappings as set_mappings
from ._table1 import (
    collapse_cause,
    constant_psnrs,
    summarize,
    verdict_markdown,
    verdict_table,
)

__all__ = [
    "SIZES",
    "ARCH",
    "set_mappings",
    "task_inputs",
    "budget_learning_rate",
    "theory_curves",
    "train_gd",
    "table1_budget",
    "with_verdicts",
    "markdown",
    "plot",
    "run",
]

_LOG = logging.getLogger(__name__)

#: Run sizes. ``crop``: side of the centre crop of the 512 x 512 images (512: the
#: paper's task); ``images`` per set x ``seeds``; ``width`` of the GD networks of the
#: table, ``sweep_widths`` on the first image and seed (all mappings); ``steps`` = T;
#: ``none_crop``: the crop of the raw-coordinate row; ``sets``: the image sets;
#: optional ``mappings``: the rows run (default all four), ``sweep_mappings``: the
#: rows with a width sweep (default all), ``theory_max_bytes``: the dense cap of the
#: theory (default the library's).
SIZES = {
    "tiny": dict(
        crop=16,
        images=1,
        seeds=1,
        width=64,
        sweep_widths=(),
        steps=16,
        adam_steps=16,
        none_crop=16,
        sets=("natural",),
        mappings=("gaussian",),  # a smoke test of every column, in seconds
    ),
    "report": dict(  # `ntkspec report` on a 2-core CPU: about a minute
        crop=24,
        images=2,
        seeds=1,
        width=128,
        sweep_widths=(),
        steps=256,
        adam_steps=300,
        none_crop=24,
        sets=("natural", "text"),
    ),
    "quick": dict(
        crop=32,
        images=3,
        seeds=2,
        width=256,
        sweep_widths=(64, 1024),
        steps=256,
        adam_steps=500,
        none_crop=32,
        sets=("natural", "text"),
    ),
    "cpu": dict(
        crop=48,
        images=3,
        seeds=2,
        width=256,
        sweep_widths=(64, 1024),
        sweep_mappings=("positional", "gaussian"),
        steps=512,
        adam_steps=1000,
        none_crop=48,
        sets=("natural", "text"),
    ),
    "gpu": dict(
        crop=512,
        images=3,
        seeds=2,
        width=256,
        sweep_widths=(64, 1024),
        steps=2000,
        adam_steps=2000,
        none_crop=128,
        # TF32 matmuls on the GPU: about 3x faster than "highest", relative error
        # ~1e-3 per product, below the width-256 network's gap to the theory
        matmul_precision="default",
        sets=("natural", "text"),
    ),
}


def _images(image_set: str, crop: int, count: int) -> dict:
    if image_set == "natural":
        imgs = datasets.natural_set(RES, crop=crop)
        return dict(list(imgs.items())[:count])
    return datasets.text_set(RES, count=count, crop=crop)


def _points(x) -> np.ndarray:
    return x.points() if isinstance(x, Grid) else np.asarray(x)


def theory_curves(
    mapping, x_train, y_train, x_test, steps, eta, *, max_bytes=None
) -> np.ndarray:
    """Test outputs of the infinitely wide network after each step count, (T, m, c).

    The one place the theory is computed: :func:`ntkspec.gd_dynamics` (discrete GD
    from the mean output 0) on whatever ``x_train``/``x_test`` are. With the Grids of
    :func:`task_inputs` it takes the structured path when ntkspec has one for the
    mapping (FFT for periodic mappings; Krylov once issue 12 lands), else the dense
    path, which raises ValueError over its memory cap (``max_bytes``, default the
    library's).
    """
    with warnings.catch_warnings():
        # t = inf by Cholesky: an ill-conditioned Gram is expected and reported
        warnings.simplefilter("ignore", RuntimeWarning)
        _, f_test = gd_dynamics(
            ARCH,
            mapping,
            x_train,
            y_train,
            x_test,
            steps,
            eta,
            discrete=True,
            max_bytes=max_bytes,
        )
    return np.asarray(f_test, np.float64)


def train_gd(
    mapping,
    x_train,
    y_train,
    x_test,
    y_test,
    *,
    width,
    steps,
    eta,
    seed,
    matmul_precision="highest",
):
    """A centred GD network (see the module docstring); outputs at its checkpoints.

    Returns:
        ``(checkpoint steps (k,), test outputs (k, m, c) of g = f - f_0, train PSNR at
        the last step)``.
    """
    v_tr, v_te = _points(x_train), _points(x_test)
    net = mlp(ARCH, mapping, width, out_dim=y_train.shape[1])
    params = net.init(jax.random.PRNGKey(7919 * seed + width))
    f0_train = np.asarray(net.apply(params, v_tr), np.float64)
    every = max(1, steps // 4)
    with jax.default_matmul_precision(matmul_precision):
        res = train(
            net,
            params,
            v_tr,
            (y_train + f0_train).astype(np.float32),
            steps=steps,
            learning_rate=eta,
            optimizer="gd",
            eval_every=every,
            record_outputs=True,
            eval_sets={"all": (v_te, y_test.astype(np.float32))},
            progress=False,
        )
    h = res.history
    out = np.asarray(h.outputs["all"], np.float64)
    g = out - out[0]
    g_train = np.asarray(h.outputs["train"][-1], np.float64) - f0_train
    return np.asarray(h.steps), g, datasets.psnr(g_train, y_train)


def _curve_steps(steps: int) -> np.ndarray:
    grid = np.round(np.geomspace(1, 8 * steps, 40)).astype(int)
    return np.unique(np.concatenate([[0, steps], grid])).astype(float)


def _heldout(pred: np.ndarray, crop: int) -> np.ndarray:
    return pred[..., datasets.heldout_indices((crop, crop)), :]


def _gd_run(
    m_t, x_tr, x_te, y, crop, width, steps, eta, seed, ref_psnr, precision
) -> dict:
    """One centred GD network; a diverged run is rerun at half the learning rate."""
    held = datasets.heldout_indices((crop, crop))
    tr = datasets.train_indices((crop, crop))
    lr, notes = eta, []
    for _ in range(3):
        ck, g, train_psnr = train_gd(
            m_t,
            x_tr,
            y[tr],
            x_te,
            y,
            width=width,
            steps=steps,
            eta=lr,
            seed=seed,
            matmul_precision=precision,
        )
        cause = collapse_cause(g[-1][held], y[held], y[tr], reference_psnr=ref_psnr)
        if not (cause and cause.startswith("non-finite")):
            break
        notes.append(f"diverged at eta {lr:.4g} ({cause}); rerun at eta/2")
        lr /= 2
    finite = bool(np.all(np.isfinite(g)))
    return dict(
        seed=seed,
        width=width,
        learning_rate=lr,
        steps=ck.tolist(),
        psnr_checkpoints=[
            datasets.psnr(p[held], y[held]) if finite else None for p in g
        ],
        psnr_heldout=datasets.psnr(g[-1][held], y[held]) if finite else None,
        psnr_train=train_psnr if finite else None,
        collapsed=cause,
        reruns=notes,
        _final=g[-1],
    )


def _adam_run(image_set, mname, mapping, img, y, crop, cfg, seed):
    """The paper's Adam network; a collapsed run is rerun once at lr/10.

    Returns:
        ``(final run, [collapsed first attempt] or [])``.
    """
    held = datasets.heldout_indices((crop, crop))
    tr = datasets.train_indices((crop, crop))
    lr = adam_learning_rate(image_set, mname)
    tries = []
    for attempt in range(2):
        metrics, pred = fit_image(img, mapping, lr, cfg["adam_steps"], 10 + seed)
        cause = collapse_cause(pred.reshape(-1, 3)[held], y[held], y[tr])
        run = {**metrics, "seed": seed, "learning_rate": lr, "collapsed": cause}
        if cause is None or attempt == 1:
            if tries:
                run["rerun"] = (
                    f"first run at lr {tries[0]['learning_rate']:g} collapsed"
                )
            return run, tries
        tries.append(run)
        lr /= 10
    raise AssertionError("unreachable")  # pragma: no cover


def _theory(m_t, x_tr, y_tr, x_te, t_all, eta, lam, cfg):
    """:func:`theory_curves` with its time and a refusal recorded (not raised)."""
    t0 = time.perf_counter()
    try:
        f_te = theory_curves(
            m_t, x_tr, y_tr, x_te, t_all, eta, max_bytes=cfg.get("theory_max_bytes")
        )
        error = None
    except ValueError as err:  # dense path over its cap: no structured path yet
        f_te, error = None, str(err).splitlines()[0][:300]
    meta = dict(
        learning_rate=eta,
        lambda_max=lam,
        theory_seconds=round(time.perf_counter() - t0, 3),
        theory_error=error,
    )
    return f_te, meta


def _entry(image_set, mname, imgs, seeds, cfg, log) -> dict:
    """All runs of one (set, mapping): theory, GD networks, Adam networks."""
    crop = cfg["none_crop"] if mname == "none" else cfg["crop"]
    steps = cfg["steps"]
    held = datasets.heldout_indices((crop, crop))
    tr = datasets.train_indices((crop, crop))
    names = list(imgs)
    if mname == "none" and crop != cfg["crop"]:
        imgs = _images(image_set, crop, len(names))
    stack = [imgs[k].reshape(-1, 3) for k in names]
    y_all = np.concatenate(stack, axis=1)  # (m, 3 * images): one solve for all images
    t_curve = _curve_steps(steps)
    t_all = np.concatenate([t_curve, [np.inf]])
    theory_runs, gd_runs, adam_runs, sweep, meta = [], [], [], [], {}
    adam_attempts = []
    seed_dependent = mname == "gaussian"  # the seed draws B; other rows are fixed
    for s in seeds:
        mapping = set_mappings(image_set, s)[mname]
        m_t, x_tr, x_te = task_inputs(mapping, crop)
        if s != seeds[0] and not seed_dependent:
            # the same kernel as for the first seed: reuse its theory, count it once
            meta[s] = dict(meta[seeds[0]], same_as_seed=seeds[0])
        else:
            eta, lam = budget_learning_rate(m_t, x_tr, 3)
            f_te, meta[s] = _theory(m_t, x_tr, y_all[tr], x_te, t_all, eta, lam, cfg)
            log(
                f"{image_set}/{mname} seed {s}: eta {eta:.4g} theory "
                f"{meta[s]['theory_seconds']:.1f} s"
            )
        i_T = int(np.flatnonzero(t_curve == steps)[-1])
        for i, name in enumerate(names):
            y = stack[i]
            if f_te is not None:
                pred = f_te[:, :, 3 * i : 3 * i + 3]
                curve = [datasets.psnr(p[held], y[held]) for p in pred]
                ref_psnr = curve[i_T]
            else:
                ref_psnr = None
            if f_te is not None and (s == seeds[0] or seed_dependent):
                theory_runs.append(
                    dict(
                        image=name,
                        seed=s,
                        psnr_heldout=curve[i_T],
                        psnr_infinity=curve[-1],
                        psnr_train=datasets.psnr(pred[i_T][tr], y[tr]),
                        curve=curve[:-1],
                        # the theory is exact: only a constant output is flagged
                        collapsed=collapse_cause(
                            pred[i_T][held], y[held], y[tr], reference_psnr=curve[i_T]
                        ),
                        constant_psnr=constant_psnrs(y[tr], y[held]),
                    )
                )
            widths = [cfg["width"]]
            sweep_here = i == 0 and s == seeds[0] and cfg["sweep_widths"]
            sweep_here = sweep_here and mname in cfg.get("sweep_mappings", (mname,))
            if sweep_here:
                widths += [w for w in cfg["sweep_widths"] if w != cfg["width"]]
            for w in widths:
                run = _gd_run(
                    m_t,
                    x_tr,
                    x_te,
                    y,
                    crop,
                    w,
                    steps,
                    eta,
                    s,
                    ref_psnr,
                    cfg.get("matmul_precision", "highest"),
                )
                run["image"] = name
                if f_te is not None:
                    ref = f_te[np.searchsorted(t_curve, steps), :, 3 * i : 3 * i + 3]
                    g_T = run.pop("_final")
                    run["gap_to_theory"] = float(
                        np.linalg.norm(g_T - ref) / max(np.linalg.norm(ref), 1e-300)
                    )
                else:
                    run.pop("_final")
                if w == cfg["width"]:
                    gd_runs.append(run)
                if sweep_here:
                    sweep.append(run)
            final, tries = _adam_run(
                image_set, mname, mapping, imgs[name], y, crop, cfg, s
            )
            final["image"] = name
            for t in tries:
                t["image"] = name
            adam_runs.append(final)
            adam_attempts += tries
    out = dict(
        crop=crop,
        size=f"{crop // 2}x{crop // 2} train -> {crop}x{crop}",
        steps=steps,
        curve_steps=t_curve.tolist(),
        per_seed=meta,
        theory=summarize(theory_runs) if theory_runs else None,
        theory_infinity=summarize(theory_runs, "psnr_infinity")
        if theory_runs
        else None,
        theory_train=summarize(theory_runs, "psnr_train") if theory_runs else None,
        gd=summarize(gd_runs),
        gd_train=summarize(gd_runs, "psnr_train"),
        adam=summarize(adam_runs),
        theory_runs=theory_runs,
        gd_runs=gd_runs,
        width_sweep=sweep,
        adam_runs=adam_runs,
        adam_collapsed_attempts=adam_attempts,
    )
    return out


def table1_budget(*, size: str = "cpu", seed: int = 0, image_sets=None, log=None):
    """Every entry of the study (data only): set -> mapping -> :func:`_entry` dict.

    ``image_sets`` (set -> name -> crop) replaces the loading of the images.
    """
    cfg = SIZES[size]
    log = log or _LOG.info
    seeds = [seed + k for k in range(cfg["seeds"])]
    out = {}
    for image_set in cfg["sets"] if image_sets is None else image_sets:
        if image_sets is not None:
            imgs = image_sets[image_set]
        else:
            imgs = _images(image_set, cfg["crop"], cfg["images"])
        rows = {}
        for mname in cfg.get("mappings", MAPPING_NAMES):
            use = imgs
            if image_sets is not None and mname == "none":
                cfg = dict(cfg, none_crop=next(iter(imgs.values())).shape[0])
            rows[mname] = _entry(image_set, mname, use, seeds, cfg, log)
            p = PAPER_TABLE1[image_set][mname]
            rows[mname]["paper"] = {"mean": p[0], "std": p[1]}
        out[image_set] = dict(images=list(imgs), mappings=rows)
    return out


def _orderings(table: dict) -> dict:
    """Per set and column: mappings by increasing mean PSNR, and the paper's order."""
    out = {}
    for image_set, block in table.items():
        rows = block["mappings"]
        cols = {}
        for column in ("theory", "gd", "adam", "theory_infinity", "paper"):
            means = {m: (rows[m].get(column) or {}).get("mean") for m in rows}
            if any(v is None for v in means.values()):
                cols[column] = None
                continue
            order = sorted(means, key=means.get)
            cols[column] = dict(
                increasing=order,
                paper_order=order == [m for m in MAPPING_NAMES if m in rows],
            )
        out[image_set] = cols
    return out


def _cell(stat) -> dict | None:
    if not stat or stat.get("mean") is None:
        return None
    return {"mean": stat["mean"], "std": stat["std"], "n": stat["n"]}


def _gap(a, b) -> float | None:
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    return a["mean"] - b["mean"]


_PAIRS = (
    ("gaussian", "positional"),
    ("positional", "basic"),
    ("basic", "none"),
    ("gaussian", "none"),
)


def _tables(result: dict, cfg: dict, device: str) -> list[dict]:
    steps, width = cfg["steps"], cfg["width"]
    label = f"{device}, size {result['size']!r}"
    main, lrs, gaps, sweep, collapsed = [], [], [], [], []
    for image_set, block in result["table1"].items():
        rows = block["mappings"]
        for m in rows:
            e = rows[m]
            main.append(
                [
                    image_set,
                    m,
                    e["size"],
                    _cell(e["theory"]),
                    _cell(e["gd"]),
                    _cell(e["adam"]),
                    _cell(e["theory_infinity"]),
                    e["paper"],
                ]
            )
            s0 = e["per_seed"][min(e["per_seed"])]
            lrs.append(
                [
                    image_set,
                    m,
                    s0["lambda_max"],
                    s0["learning_rate"],
                    steps,
                    _cell(e["theory_train"]),
                    _cell(e["gd_train"]),
                ]
            )
            for column in ("theory", "gd", "adam"):
                runs = e[f"{column}_runs"]
                for r in runs:
                    if r.get("collapsed"):
                        collapsed.append(
                            [
                                image_set,
                                m,
                                column,
                                r["image"],
                                r["seed"],
                                r.get("psnr_heldout"),
                                r["collapsed"],
                            ]
                        )
            for r in e["adam_collapsed_attempts"]:
                collapsed.append(
                    [
                        image_set,
                        m,
                        "adam (rerun at lr/10)",
                        r["image"],
                        r["seed"],
                        r.get("psnr_heldout"),
                        r["collapsed"],
                    ]
                )
            for r in e["width_sweep"]:
                sweep.append(
                    [
                        image_set,
                        m,
                        r["image"],
                        r["width"],
                        r.get("psnr_heldout"),
                        r.get("gap_to_theory"),
                    ]
                )
        for hi, lo in _PAIRS:
            if hi not in rows or lo not in rows:
                continue
            a, b = rows[hi], rows[lo]
            pa, pb = a["paper"], b["paper"]
            gaps.append(
                [
                    image_set,
                    f"{hi} − {lo}",
                    _gap(a["theory"], b["theory"]),
                    _gap(a["gd"], b["gd"]),
                    _gap(a["adam"], b["adam"]),
                    _gap(a["theory_infinity"], b["theory_infinity"]),
                    pa["mean"] - pb["mean"],
                ]
            )
    tables = [
        dict(
            title=f"Table 1 at the training budget: held-out PSNR (dB) after T = "
            f"{steps} steps",
            columns=[
                "set",
                "mapping",
                "task",
                "NTK theory, T GD steps",
                f"GD network (width {width}, centred), T steps",
                f"Adam network (paper setup, {cfg['adam_steps']} steps)",
                "NTK theory, t = ∞",
                "paper (512², Adam)",
            ],
            rows=main,
            note=(
                f"{label}; mean ± sample std over images (n = images; seeds "
                "averaged within an image), collapsed runs "
                "left out (see the collapsed-runs table); held-out pixels "
                "[1::2, 1::2]; the theory of none / basic / positional does not "
                "depend on the seed: one value per image"
            ),
        ),
        dict(
            title="Learning rate and budget: η = N_y / λ_max "
            "(half the stability limit)",
            columns=[
                "set",
                "mapping",
                "λ_max of the train Gram (first seed)",
                "η (first seed)",
                "T (steps)",
                "theory train PSNR at T",
                "GD network train PSNR at T",
            ],
            rows=lrs,
            note="at t = ∞ the train PSNR is infinite (interpolation): T is not "
            "converged",
        ),
        dict(
            title="Gaps between mappings (difference of mean held-out PSNR, dB)",
            columns=[
                "set",
                "pair",
                "NTK theory at T",
                "GD network at T",
                "Adam network",
                "NTK theory at t = ∞",
                "paper",
            ],
            rows=gaps,
            note=label,
        ),
    ]
    if sweep:
        tables.append(
            dict(
                title="GD networks against the theory as the width grows (first image "
                "and seed)",
                columns=[
                    "set",
                    "mapping",
                    "image",
                    "width",
                    "held-out PSNR at T",
                    "‖g_T − f_T‖ / ‖f_T‖ (test outputs)",
                ],
                rows=sweep,
                note=label,
            )
        )
    tables.append(
        dict(
            title="Collapsed runs (left out of the means)",
            columns=["set", "mapping", "column", "image", "seed", "PSNR", "cause"],
            rows=collapsed or [["–", "–", "–", "–", "–", None, "none collapsed"]],
            note="collapse (ntkspec.verdicts): constant or non-finite output, or a "
            "PSNR within 0.1 dB of the best constant predictor's while the theory at "
            "the same budget predicts >= 1 dB more",
        )
    )
    return tables


def plot(result: dict, path: Path) -> None:
    """The study's figure, drawn from its data (held-out PSNR against steps)."""
    from ..io import agg_subplots, readable

    sets = list(result["table1"])
    names = list(result["table1"][sets[0]]["mappings"])
    fig, axes = agg_subplots(
        len(sets),
        len(names),
        figsize=(4.5 * len(names), 4.4 * len(sets)),
        squeeze=False,
        sharey="row",
    )
    steps = result["config"]["steps"]
    for r, image_set in enumerate(sets):
        for c, m in enumerate(names):
            ax = axes[r, c]
            e = result["table1"][image_set]["mappings"][m]
            t = np.asarray(e["curve_steps"], float)
            t_plot = np.where(t == 0, 0.5, t)
            if e["theory_runs"]:
                curves = np.asarray([q["curve"] for q in e["theory_runs"]])
                mean, std = curves.mean(0), curves.std(0)
                ax.semilogx(t_plot, mean, "k-", lw=1.5, label="NTK theory (mean ± std)")
                ax.fill_between(t_plot, mean - std, mean + std, color="k", alpha=0.12)
                inf = e["theory_infinity"]["mean"]
                ax.axhline(inf, color="k", ls=":", lw=1, label="NTK theory, t = ∞")
            runs = [q for q in e["gd_runs"] if q.get("psnr_heldout") is not None]
            if runs:
                ck = np.asarray(runs[0]["steps"], float)
                vals = np.asarray([q["psnr_checkpoints"] for q in runs], float)
                ax.errorbar(
                    np.where(ck == 0, 0.5, ck),
                    vals.mean(0),
                    yerr=vals.std(0),
                    fmt="o",
                    color="C0",
                    ms=6,
                    capsize=3,
                    label=f"GD network, width {result['config']['width']} (mean ± std)",
                )
            for k, w in enumerate(result["config"]["sweep_widths"]):
                pts = [q for q in e["width_sweep"] if q["width"] == w]
                if pts and pts[0].get("psnr_heldout") is not None:
                    ck = np.asarray(pts[0]["steps"], float)
                    ax.plot(
                        np.where(ck == 0, 0.5, ck),
                        pts[0]["psnr_checkpoints"],
                        "sD"[k % 2],
                        color=("C2", "C4")[k % 2],
                        ms=4,
                        mfc="none",
                        label=f"GD network, width {w} (first image and seed only)",
                    )
            adam = e["adam"]
            if adam.get("mean") is not None:
                ax.errorbar(
                    [result["config"]["adam_steps"]],
                    [adam["mean"]],
                    yerr=[adam["std"] or 0.0],
                    fmt="*",
                    color="C3",
                    ms=11,
                    capsize=3,
                    label="Adam network (paper setup; x = its Adam steps)",
                )
            ax.axhline(
                e["paper"]["mean"],
                color="0.5",
                ls="--",
                lw=1,
                label="paper (512², Adam)",
            )
            ax.axvline(steps, color="C0", lw=0.6, alpha=0.5)
            ax.set_title(f"{image_set} · {m} ({e['size']})", fontsize=10)
            ax.set_xlabel("training steps (0 drawn at 0.5)")
            ax.grid(alpha=0.3, which="both")
        axes[r, 0].set_ylabel("held-out PSNR (dB)")
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=min(len(handles), 4),
        fontsize=9,
        bbox_to_anchor=(0.5, 0.0),
    )
    prov = result["provenance"]
    fig.suptitle(
        f"Held-out PSNR against training time: theory curves, networks as points · "
        f"{prov['device']} · size {result['size']!r} · η = N_y/λ_max, T = {steps}",
        fontsize=10,
    )
    readable(fig, fontsize=10)
    fig.tight_layout(rect=(0, 0.07 if len(sets) > 1 else 0.12, 1, 1))
    save_figure(fig, path, dpi=90)


def markdown(result: dict) -> str:
    """``figures/.../table1_budget.md``: the verdicts, then the older main table."""
    head = ""
    if "verdicts" in result:
        head = (
            verdict_markdown(
                result["verdicts"],
                title="Table 1 at the training budget, paired verdicts",
                note=f"{result.get('size')!r} size; "
                + result["tables"][0]["note"].split(";")[0],
                labels=VERDICT_LABELS,
            )
            + "\n"
        )
    t = result["tables"][0]
    lines = [f"**{t['title']}** ({t['note']})", ""]
    lines.append("| " + " | ".join(t["columns"]) + " |")
    lines.append("|" + "---|" * len(t["columns"]))
    for row in t["rows"]:
        cells = []
        for cell in row:
            if isinstance(cell, dict):
                cells.append(format_stat(cell))
            else:
                cells.append(str(cell))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _remark(run: dict, constant: dict | None, theory: float | None) -> dict:
    """A run in the cell layout, collapse judged by :mod:`ntkspec.verdicts`.

    A cause found from the output itself (constant, non-finite) stands; a PSNR-based
    one (the old 0.05 dB rule without the theory's margin) is judged again.
    """
    old = run.get("cause") or run.get("collapsed")
    if isinstance(old, str) and old.startswith(("constant output", "non-finite")):
        collapsed, cause = True, old
    elif run.get("psnr_heldout") is None:
        collapsed, cause = True, "non-finite output (the run diverged)"
    elif constant:
        collapsed, cause = verdicts.collapse_verdict(
            run["psnr_heldout"], constant_psnr=constant, theory_psnr=theory
        )
    else:
        collapsed, cause = False, None
    return dict(
        image=run["image"],
        seed=run["seed"],
        psnr_heldout=run.get("psnr_heldout"),
        collapsed=collapsed,
        cause=cause,
    )


def with_verdicts(data: dict) -> dict:
    """``data`` with every run judged by the collapse rule and the ``verdicts`` block.

    Columns: ``theory`` (NTK after T GD steps), ``theory_infinity``, ``gd`` (centred
    GD networks, judged against the theory of the same image and seed), ``adam``
    (only a constant or non-finite output counts: the theory has no Adam budget).
    The old summaries (``theory``, ``gd``, ``adam``, ...) are recomputed from the
    runs not collapsed, seeds averaged within an image; ``tables`` is left to the
    caller unless ``data`` carries its provenance (a written file), whose tables
    are rebuilt.
    """
    table = {}
    for image_set, block in data["table1"].items():
        table[image_set] = {}
        for m, e in block["mappings"].items():
            theory = {(r["image"], r["seed"]): r for r in e["theory_runs"]}
            by_image = {r["image"]: r for r in e["theory_runs"]}

            def ref(r, theory=theory, by_image=by_image):
                t = theory.get((r["image"], r["seed"])) or by_image.get(r["image"])
                return (t or {}).get("constant_psnr"), (t or {}).get("psnr_heldout")

            cols = {
                "theory": [_remark(r, None, None) for r in e["theory_runs"]],
                "theory_infinity": [
                    _remark(dict(r, psnr_heldout=r["psnr_infinity"]), None, None)
                    for r in e["theory_runs"]
                ],
                "gd": [_remark(r, *ref(r)) for r in e["gd_runs"]],
                "adam": [_remark(r, ref(r)[0], None) for r in e["adam_runs"]],
            }
            for key in ("gd", "adam"):
                for r, v in zip(e[f"{key}_runs"], cols[key], strict=True):
                    r["collapsed"] = v["cause"]
            e["theory"] = summarize(e["theory_runs"]) if e["theory_runs"] else None
            e["theory_infinity"] = (
                summarize(e["theory_runs"], "psnr_infinity")
                if e["theory_runs"]
                else None
            )
            e["gd"] = summarize(e["gd_runs"])
            e["gd_train"] = summarize(e["gd_runs"], "psnr_train")
            e["adam"] = summarize(e["adam_runs"])
            table[image_set][m] = cols
    data["verdicts"] = verdict_table(
        table,
        rule_note="GD networks are judged against the NTK theory after the same T "
        "steps on the same image (and seed); Adam networks only by constant or "
        "non-finite output (no theory at the Adam budget); theory columns are exact.",
    )
    data["ordering"] = _orderings(data["table1"])
    if "provenance" in data:  # a written file: its tables follow the new marks
        data["tables"] = _tables(data, data["config"], data["provenance"]["device"])
    return data


VERDICT_LABELS = {
    "theory": "NTK theory, T GD steps",
    "theory_infinity": "NTK theory, t = ∞",
    "gd": "GD network, T steps",
    "adam": "Adam network",
}


def run(
    out_dir: str | Path = "figures/regression",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
) -> dict:
    """Write ``table1_budget.json``, ``.md`` and ``.png`` into ``out_dir``.

    Args:
        out_dir: output folder.
        quick: the ``"quick"`` size (when ``size`` is None).
        seed: first seed (the runs use ``seed``, ``seed + 1``, ...).
        command: command line for the provenance.
        size: ``"tiny"``, ``"quick"``, ``"cpu"`` (default without ``quick``) or
            ``"gpu"`` (the paper's 512 x 512 task).
    """
    size = size or ("quick" if quick else "cpu")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")
    t0 = time.perf_counter()
    cfg = SIZES[size]
    load_start = os.getloadavg()
    table = table1_budget(size=size, seed=seed)
    load_end = os.getloadavg()
    data = dict(
        description=(
            "Tancik et al. 2020 Table 1 at a finite training budget: infinite-width "
            "NTK after T discrete GD steps (ntkspec.gd_dynamics) beside centred "
            "finite networks trained by full-batch GD with the same eta and T (NTK "
            "parameterization), Adam networks in the paper's setup, NTK at t = inf "
            "and the paper's numbers."
        ),
        size=size,
        config={k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        architecture=dict(
            depth=ARCH.depth,
            W_std=ARCH.W_std,
            b_std=ARCH.b_std,
            parameterization=ARCH.parameterization,
        ),
        learning_rate_rule="eta = N_y / lambda_max(train Gram), N_y = 3 n (RGB)",
        table1=table,
        ordering=_orderings(table),
        load_average={
            "start": [round(v, 2) for v in load_start],
            "end": [round(v, 2) for v in load_end],
            "note": "os.getloadavg() (1, 5, 15 min) before and after the runs; "
            f"{os.cpu_count()} cores, shared",
        },
    )
    if size != "gpu":
        gpu = SIZES["gpu"]
        data["reduced_for_report"] = [
            f"centre crops of {cfg['crop']} x {cfg['crop']} pixels of the 512 x 512 "
            f"images (pixel pitch 1/512), train {cfg['crop'] // 2}^2 -> "
            f"{cfg['crop']}^2 (paper and GPU run: 256^2 -> 512^2)",
            f"T = {cfg['steps']} GD steps, Adam {cfg['adam_steps']} steps (GPU run: "
            f"{gpu['steps']} / {gpu['adam_steps']})",
            f"{cfg['images']} image(s) per set x {cfg['seeds']} seed(s); GD network "
            f"width {cfg['width']}",
            "PSNR on crops is not comparable with the paper's 512^2 numbers; the "
            "full size is `analysis/gpu_run.sh` (python -m analysis.fig_table1_budget "
            "--size gpu)",
        ]

    def _finish(d, png):
        plot(d, png)
        (png.parent / "table1_budget.md").write_text(markdown(d))

    from ..provenance import provenance

    device = provenance(command, seed)["device"]
    with_verdicts(data)
    data["tables"] = _tables(dict(data, size=size), cfg, device)
    return write_study(
        out_dir,
        "table1_budget",
        data,
        _finish,
        started=t0,
        quick=quick,
        seed=seed,
        command=command,
    )
