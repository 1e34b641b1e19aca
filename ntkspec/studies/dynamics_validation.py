r"""Finite networks trained by gradient descent against the infinite-width NTK dynamics.

Networks of growing width are trained by full-batch gradient descent on
:math:`\mathcal L = \sum (f - y)^2 / (2\,\mathrm{y.size})` and compared with
:func:`ntkspec.gd_dynamics` (discrete GD, the same learning rate and the same loss
normalisation) **started from each network's own outputs at step 0** and then left
alone: an independent prediction of the whole trajectory (the official notebook instead
restarted its theory curve from the network's current outputs at every logged step, and
mixed a sum-loss network with a mean-loss time scale). Compared: train and test losses,
train/test outputs, and the train residual projected on eigenvectors of the analytic NTK
Gram (low, middle and high frequency bands; on the 1D grid these are the Fourier modes
k = 1, 5 and 15 that Tancik et al. plot in Fig. 3). The gap must shrink as the width
grows, like :math:`\text{width}^{-1/2}` (Lee et al. 2019).

Tasks: the paper's 1D task (a power-law signal on 256 points of [0, 1), train on every
8th point, dense power-law mapping :math:`b_j = j`, :math:`a_j = 1/j`, j = 1..16,
normalised; ``ntkspec.data.signal_1d_task``) and a small 2D grid (a random band-limited
power-law field on an R x R grid, train on the pixels [::2, ::2], test on the others,
Gaussian mapping with 64 frequencies of scale 3).

References:
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Fig. 3).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import numpy as np

from .. import mappings
from ..io import save_figure, write_json
from ..kernels import ReluMLP, ntk
from ..networks import mlp, train
from ..provenance import provenance
from ._common import fit_loglog_slope, power_law_field_2d

__all__ = ["SIZES", "tasks", "linear_gd_theory", "validate_task", "run"]

SIZES = {
    "tiny": dict(widths=(32, 128), seeds=1, steps=20, eval_every=10, grid=8, depth=3),
    "quick": dict(
        widths=(64, 256, 1024), seeds=1, steps=200, eval_every=10, grid=12, depth=3
    ),
    "full": dict(
        widths=(64, 256, 1024, 4096),
        seeds=2,
        steps=500,
        eval_every=10,
        grid=16,
        depth=3,
    ),
    "gpu": dict(
        widths=(64, 256, 1024, 4096, 8192),
        seeds=3,
        steps=1000,
        eval_every=10,
        grid=32,
        depth=4,
    ),
}


def tasks(grid: int = 16, seed: int = 0) -> dict:
    """The 1D and 2D tasks: name -> dict(mapping, x_train, y_train, x_test, y_test)."""
    try:
        from ..data import signal_1d_task

        x_tr, y_tr, x_te, y_te = signal_1d_task(seed)
    except ImportError:  # pragma: no cover - ntkspec.data is part of the package
        raise
    one = dict(
        mapping=mappings.power_law(16, 1.0, normalize=True),
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        description="paper 1D task: power-law signal, 256 points, train every 8th",
    )
    field = power_law_field_2d(grid, seed, band_limited=True)
    g = np.arange(grid) / grid
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    mask = np.zeros((grid, grid), bool)
    mask[::2, ::2] = True
    mask = mask.ravel()
    two = dict(
        mapping=mappings.gaussian(seed + 1, 2, 64, 3.0),
        x_train=pts[mask],
        y_train=field.ravel()[mask],
        x_test=pts[~mask],
        y_test=field.ravel()[~mask],
        description=f"2D power-law field on a {grid}x{grid} grid, train on [::2, ::2]",
    )
    return {"1d": one, "2d": two}


def linear_gd_theory(k_train, k_test_train, y, f_train_0, f_test_0, steps, lr):
    r"""Discrete GD of the linearised network from (f_train_0, f_test_0), dense numpy.

    :math:`f_{\rm tr}(t) = y + Q(1 - \eta\Lambda/N_y)^t Q^\top(f_{\rm tr}(0) - y)`,
    :math:`f_{\rm te}(t) = f_{\rm te}(0) - K_{*X} Q \frac{1 - (1 - \eta\Lambda/N_y)^t}
    {\Lambda} Q^\top (f_{\rm tr}(0) - y)`; y of shape (n,), outputs (T, n) and (T, n*).
    Evaluated by :func:`ntkspec.dynamics.gradient_flow` on the precomputed kernels (the
    library's one implementation of linear GD), so it cross-checks the kernels that
    :func:`ntkspec.gd_dynamics` builds from the points.
    """
    from ..dynamics import gradient_flow

    return gradient_flow(
        k_train,
        y,
        k_test_train,
        np.asarray(steps, float),
        lr,
        f_train_0=f_train_0,
        f_test_0=f_test_0,
        discrete=True,
    )


def _bands(n: int) -> dict:
    """Eigen-rank ranges (descending eigenvalue) of the low/mid/high bands."""
    q = max(1, n // 4)
    return {"low": (1, 3), "mid": (q + 1, q + 3), "high": (n - 3, n - 1)}


def _band_vectors(lam_desc, Q_desc, lo, hi, rtol=1e-8):
    """Eigenvectors of ranks in [lo, hi), closed under (near-)degenerate eigenvalues."""
    sel = set(range(lo, hi))
    for i in list(sel):
        close = np.abs(lam_desc - lam_desc[i]) <= rtol * abs(lam_desc[0])
        sel.update(np.flatnonzero(close).tolist())
    idx = sorted(sel)
    return Q_desc[:, idx], idx


def _compare_run(arch, task: dict, h, lr: float, bands: dict, k_tr, k_te) -> dict:
    """One trained network's history ``h`` against the NTK theory from its init.

    Returns:
        ``{"gaps", "theory_cross_check", "train_seconds", "steps", "loss", "modes"}``.
    """
    from .. import dynamics

    mapping, x_tr, x_te = task["mapping"], task["x_train"], task["x_test"]
    y_tr = np.asarray(task["y_train"], float)
    y_te = np.asarray(task["y_test"], float)
    f_tr = h.outputs["train"][:, :, 0].astype(np.float64)
    f_te = h.outputs["test"][:, :, 0].astype(np.float64)
    th_tr, th_te = dynamics.gd_dynamics(
        arch,
        mapping,
        x_tr,
        y_tr,
        x_te,
        h.steps,
        lr,
        f_train_0=f_tr[0],
        f_test_0=f_te[0],
        discrete=True,
    )
    chk_tr, chk_te = linear_gd_theory(k_tr, k_te, y_tr, f_tr[0], f_te[0], h.steps, lr)
    cross = float(max(np.abs(chk_tr - th_tr).max(), np.abs(chk_te - th_te).max()))
    loss = dict(
        net_train=0.5 * np.mean((f_tr - y_tr) ** 2, axis=1),
        net_test=0.5 * np.mean((f_te - y_te) ** 2, axis=1),
        theory_train=0.5 * np.mean((th_tr - y_tr) ** 2, axis=1),
        theory_test=0.5 * np.mean((th_te - y_te) ** 2, axis=1),
    )
    modes = {}
    for name, b in bands.items():
        net_b = np.linalg.norm((f_tr - y_tr) @ b["vectors"], axis=1)
        th_b = np.linalg.norm((th_tr - y_tr) @ b["vectors"], axis=1)
        modes[name] = dict(
            net=net_b,
            theory=th_b,
            gap=float(np.max(np.abs(net_b - th_b)) / th_b[0]),
        )
    r0_tr = np.linalg.norm(f_tr[0] - y_tr)
    r0_te = np.linalg.norm(f_te[0] - y_te)
    gaps = dict(
        train_output=float(np.max(np.linalg.norm(f_tr - th_tr, axis=1)) / r0_tr),
        test_output=float(np.max(np.linalg.norm(f_te - th_te, axis=1)) / r0_te),
        train_loss=float(
            np.max(np.abs(loss["net_train"] - loss["theory_train"]))
            / loss["theory_train"][0]
        ),
        test_loss=float(
            np.max(np.abs(loss["net_test"] - loss["theory_test"]))
            / loss["theory_test"][0]
        ),
        **{f"mode_{k}": v["gap"] for k, v in modes.items()},
    )
    return dict(
        gaps=gaps,
        theory_cross_check=cross,
        train_seconds=h.stats["seconds"],
        steps=h.steps.tolist(),
        loss={k: v.tolist() for k, v in loss.items()},
        modes={
            k: {"net": v["net"].tolist(), "theory": v["theory"].tolist()}
            for k, v in modes.items()
        },
    )


def _gap_summary(results: list[dict], widths) -> dict:
    """Per gap: the mean over seeds per width, its log-log slope, whether it shrinks."""
    summary = {}
    for g in results[0]["gaps"]:
        per_width = [
            float(np.mean([r["gaps"][g] for r in results if r["width"] == w]))
            for w in widths
        ]
        slope = fit_loglog_slope(widths, per_width)[0] if len(widths) > 1 else None
        summary[g] = dict(
            mean_per_width=per_width,
            slope=slope,
            shrinks=bool(per_width[-1] < per_width[0]),
        )
    return summary


def validate_task(task: dict, *, widths, seeds, steps, eval_every, depth, seed=0):
    """Train networks of each width by GD, compare with the NTK theory (data only)."""
    arch = ReluMLP(depth, W_std=math.sqrt(2.0), b_std=0.1)
    mapping = task["mapping"]
    x_tr, y_tr = task["x_train"], np.asarray(task["y_train"], float)
    x_te, y_te = task["x_test"], np.asarray(task["y_test"], float)
    k_tr = np.asarray(ntk(arch, mapping(x_tr)))
    k_te = np.asarray(ntk(arch, mapping(x_te), mapping(x_tr)))
    lam, Q = np.linalg.eigh(k_tr)
    lam_d, Q_d = lam[::-1], Q[:, ::-1]
    n = y_tr.size
    lr = float(n / lam_d[0])  # the top mode is learned in one step; stable below 2x
    bands = {}
    for name, (lo, hi) in _bands(n).items():
        vecs, idx = _band_vectors(lam_d, Q_d, lo, hi)
        bands[name] = dict(vectors=vecs, ranks=idx, eigenvalues=lam_d[idx].tolist())
    results = []
    for width in widths:
        net = mlp(arch, mapping, int(width))
        for s in range(seeds):
            params = net.init(jax.random.PRNGKey(1000 * seed + 17 * s + 1))
            res = train(
                net,
                params,
                x_tr,
                y_tr,
                steps=steps,
                learning_rate=lr,
                optimizer="gd",
                eval_every=eval_every,
                record_outputs=True,
                eval_sets={"test": (x_te, y_te)},
                progress=False,
            )
            run = _compare_run(arch, task, res.history, lr, bands, k_tr, k_te)
            results.append(dict(width=int(width), seed=s, **run))
    return dict(
        description=task["description"],
        architecture=dict(
            depth=depth,
            W_std=arch.W_std,
            b_std=arch.b_std,
            parameterization=arch.parameterization,
        ),
        n_train=int(n),
        n_test=int(y_te.size),
        learning_rate=lr,
        lr_rule="n / lambda_max(Theta_train) (loss sum(f-y)^2 / (2 n))",
        widths=[int(w) for w in widths],
        seeds=seeds,
        steps=steps,
        bands={
            k: dict(ranks=v["ranks"], eigenvalues=v["eigenvalues"])
            for k, v in bands.items()
        },
        eigenvalues=lam_d.tolist(),
        gap_summary=_gap_summary(results, widths),
        runs=results,
    )


def _plot(data: dict, path: Path, label: str) -> None:
    from ..io import agg_subplots

    names = list(data["tasks"])
    fig, axes = agg_subplots(
        len(names), 3, figsize=(15, 4.2 * len(names)), squeeze=False
    )
    for row, name in enumerate(names):
        t = data["tasks"][name]
        widths = t["widths"]
        wide = [r for r in t["runs"] if r["width"] == widths[-1] and r["seed"] == 0][0]
        narrow = [r for r in t["runs"] if r["width"] == widths[0] and r["seed"] == 0][0]
        steps = np.asarray(wide["steps"])
        ax = axes[row, 0]
        for run, ls, a in ((wide, "-", 1.0), (narrow, "-", 0.35)):
            ax.semilogy(
                steps,
                run["loss"]["net_train"],
                ls,
                color="C0",
                alpha=a,
                label=f"train, net width {run['width']}",
            )
            ax.semilogy(
                steps,
                run["loss"]["net_test"],
                ls,
                color="C3",
                alpha=a,
                label=f"test, net width {run['width']}",
            )
        ax.semilogy(
            steps,
            wide["loss"]["theory_train"],
            "k--",
            lw=1,
            label="NTK theory (from step-0 outputs)",
        )
        ax.semilogy(steps, wide["loss"]["theory_test"], "k:", lw=1)
        ax.set_xlabel("GD step")
        ax.set_ylabel("loss Σ(f−y)²/(2n)")
        ax.set_title(f"{name}: losses")
        ax.legend(fontsize=7)
        ax = axes[row, 1]
        for i, (band, v) in enumerate(wide["modes"].items()):
            ax.semilogy(
                steps,
                v["net"],
                "-",
                color=f"C{i}",
                label=f"{band} (ranks {t['bands'][band]['ranks']})",
            )
            ax.semilogy(steps, v["theory"], "--", color=f"C{i}")
        ax.set_xlabel("GD step")
        ax.set_ylabel("|Q_bandᵀ (f − y)|")
        ax.set_title(
            f"{name}: residual per eigenmode band, width {widths[-1]} (dashed: theory)",
            fontsize=9,
        )
        ax.legend(fontsize=7)
        ax = axes[row, 2]
        w = np.asarray(widths, float)
        for g, v in t["gap_summary"].items():
            sl = "" if v["slope"] is None else f" (slope {v['slope']:.2f})"
            ax.loglog(w, v["mean_per_width"], "o-", ms=3, label=g + sl)
        ax.loglog(
            w,
            t["gap_summary"]["test_output"]["mean_per_width"][0] * (w / w[0]) ** -0.5,
            "k:",
            label="width^-1/2",
        )
        ax.set_xlabel("hidden width")
        ax.set_ylabel("max over steps of relative gap")
        ax.set_title(f"{name}: network − theory gap vs width")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(label, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(
    out_dir: str | Path = "figures/validation",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
) -> dict:
    """Write ``dynamics_validation.json`` and ``.png`` into ``out_dir``.

    Args:
        out_dir: output folder.
        quick: reduced sizes (``size="quick"``).
        seed: seed of the data and initialisations.
        command: command line for the provenance.
        size: ``"tiny"``, ``"quick"``, ``"full"`` (CPU-sized) or ``"gpu"``.
    """
    size = size or ("quick" if quick else "full")
    cfg = dict(SIZES[size])
    grid = cfg.pop("grid")
    t0 = time.perf_counter()
    out = {}
    # full float32 matmuls on accelerators (no TF32), so that the gaps measured are
    # those of finite width, not of reduced-precision arithmetic
    with jax.default_matmul_precision("highest"):
        for name, task in tasks(grid, seed).items():
            out[name] = validate_task(task, seed=seed, **cfg)
    prov = provenance(command, seed)
    data = dict(
        description=(
            "Full-batch GD of finite ReLU MLPs ('ntk' parameterization, float32) vs "
            "ntkspec.gd_dynamics(discrete=True) from the network's own step-0 outputs, "
            "same learning rate and loss normalisation; gaps are max over steps, "
            "relative "
            "to the initial residual (outputs, modes) or initial theory loss (losses)."
        ),
        size=size,
        config=SIZES[size],
        size_note=(
            None
            if size == "gpu"
            else f"size {size!r}: widths {list(SIZES[size]['widths'])}, "
            f"{SIZES[size]['steps']} GD steps, {SIZES[size]['seeds']} seed(s), "
            f"2D grid {grid}x{grid}, depth {SIZES[size]['depth']}, on {prov['device']}"
        ),
        tables=[
            dict(
                title=f"{name}: network - theory gap (max over steps) vs width",
                columns=["gap", *[f"width {w}" for w in t["widths"]], "slope"],
                rows=[
                    [g, *v["mean_per_width"], v["slope"]]
                    for g, v in t["gap_summary"].items()
                ],
                note=t["description"],
            )
            for name, t in out.items()
        ],
        tasks=out,
        seconds=round(time.perf_counter() - t0, 3),
        provenance=prov,
    )
    out_dir = Path(out_dir)
    write_json(out_dir / "dynamics_validation.json", data)
    _plot(
        data,
        out_dir / "dynamics_validation.png",
        f"{prov['device']} · size={size} · jax {prov['jax']}",
    )
    return {
        "json": str(out_dir / "dynamics_validation.json"),
        "png": str(out_dir / "dynamics_validation.png"),
        "test_output_gap": {
            k: v["gap_summary"]["test_output"]["mean_per_width"] for k, v in out.items()
        },
        "seconds": data["seconds"],
    }
