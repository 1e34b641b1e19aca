r"""Does a wide network learn each eigenmode at the NTK's rate? The gap, mode by mode.

The theory (Jacot et al. 2018; Tancik et al. 2020, Fig. 3) says that under full-batch
gradient descent on :math:`\mathcal L = \sum(f-y)^2/(2N)` the train residual's part in
the eigenspace S of the analytic NTK Gram :math:`K = \sum_s \lambda_s P_s` decays like

.. math::

    \|P_S\,r_k\| = |1 - \eta\lambda_S/N|^k\,\|P_S\,r_0\|,

independently of the other modes. For every eigenspace S (exact pairs on the symmetric
grids used here, so whole eigenspaces, :func:`ntkspec.networks.eigenspaces`) and every
recorded step k, this study compares the residual of

* **theory**: the analytic NTK, started from the network's own step-0 outputs;
* **linearised**: the network linearised at its own initial empirical NTK
  :math:`\hat\Theta_0` (:func:`ntkspec.networks.linearized_dynamics`, exact, no
  training);
* **network, float64**: the network itself, trained by full-batch GD
  (:func:`ntkspec.networks.train`) at the theory's :math:`\eta = N/\lambda_{\max}`;
* **network, float32**: the same initial parameters rounded to float32, trained alike;

and splits the network's gap from the theory into its causes, each the size of a
difference of residuals in S, relative to the initial residual there (bounded, and to
first order proportional to the kernel's perturbation) and, as ``gaps_vs_theory``,
relative to the theory's residual at that step (a rate error grows with k there):

.. math::

    g_{A,B}(S, k) = \frac{\|P_S\,(r^A_k - r^B_k)\|}{\|P_S\,r_0\|},\qquad
    g^{\rm th}_{A,B}(S, k) = \frac{\|P_S\,(r^A_k - r^B_k)\|}
        {\|P_S\,r^{\rm theory}_k\|}:

*kernel* (linearised against theory: the finite-width kernel at initialisation),
*drift* (float64 network against linearised: the kernel's movement during training),
*round-off* (float32 network against float64 network) and *total* (float64 network
against theory). Entries of :math:`g^{\rm th}` where the theory's relative residual
:math:`|1-\eta\lambda_S/N|^k` is below :data:`FLOOR` are not defined (the theory has
converged beyond what a float64 residual resolves). Bands: the eigenspaces in descending
eigenvalue split into thirds, *low* (largest eigenvalues, the low frequencies), *mid*
and *high* (smallest eigenvalues, the high frequencies); a band's gap in one run is the
median over its eigenspaces. Per band and cause the width exponent p of
:math:`g \propto \text{width}^{p}` is a least-squares line through
(log width, log mean over keys), with a Student-t interval and a bootstrap interval over
the keys (keys resampled within each width), compared with the :math:`-1/2` of the
kernel's fluctuations (Hanin & Nica 2019). The empirical NTK's eigenvalues, rank-matched
per eigenspace, give the relative eigenvalue error per mode against width.

Runs are checkpointed one per (task, width, key) as JSON (written atomically) and
skipped when present with the same settings, so a long run resumes;
``summarize_only`` rebuilds the summary JSON and the figures from the runs on disk.

Tasks: the paper's 1D signal (power-law signal, train on every 8th of 256 points of
[0, 1), dense power-law mapping :math:`b_j = j, a_j = 1/j`, j = 1..16, normalised;
:func:`ntkspec.data.signal_1d_task`) and a small 2D grid (a random power-law field on
an R x R grid of [0, 1)^2, all R^2 points trained; 32 Gaussian frequencies of scale 3
rounded to integers, so that the kernel is periodic on the grid and its eigenvalues come
in exact pairs).

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Hanin & Nica, "Finite Depth and Width Corrections to the Neural Tangent Kernel",
    ICLR 2020, arXiv:1909.05989.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Fig. 3).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from .. import mappings
from ..data import signal_1d_task
from ..io import save_figure, write_json
from ..kernels import ReluMLP, ntk
from ..networks import eigenspace_norms, eigenspaces, linearized_dynamics, mlp, train
from ..provenance import provenance
from ._common import power_law_field_2d

__all__ = [
    "SIZES",
    "CAUSES",
    "FLOOR",
    "tasks",
    "task_theory",
    "run_one",
    "summarize",
    "width_exponent",
    "decay_rate",
    "run",
]

#: Sizes: trained widths, linearised-only widths, keys per width, GD steps, evaluation
#: interval, 2D grid side, 1D points (every 8th trained), depth.
SIZES = {
    "tiny": dict(
        widths=(8, 16), linearized_widths=(32,), keys=2, steps=10, eval_every=5,
        grid=4, points_1d=32, depth=2,
    ),
    "quick": dict(
        widths=(64, 128, 256), linearized_widths=(512,), keys=4, steps=200,
        eval_every=5, grid=6, points_1d=256, depth=3,
    ),
    "full": dict(
        widths=(256, 512, 1024, 2048, 4096), linearized_widths=(8192,), keys=4,
        steps=1000, eval_every=5, grid=12, points_1d=256, depth=3,
    ),
    "gpu": dict(
        widths=(256, 512, 1024, 2048, 4096, 8192), linearized_widths=(), keys=4,
        steps=1000, eval_every=5, grid=12, points_1d=256, depth=3,
    ),
}  # fmt: skip
#: Gap name -> (curve A, curve B): what g_{A,B} compares.
CAUSES = {
    "kernel": ("linearized", "theory"),
    "drift": ("network_f64", "linearized"),
    "roundoff": ("network_f32", "network_f64"),
    "total": ("network_f64", "theory"),
}
#: Gaps are not defined where the theory's relative residual in the mode is below this.
FLOOR = 1e-10
_BANDS = ("low", "mid", "high")
_SIG = 6  # significant digits kept in the JSON


def _r(x):
    """Round floats (nested lists) to _SIG significant digits; None for non-finite."""
    if isinstance(x, list | tuple):
        return [_r(v) for v in x]
    if x is None or not math.isfinite(float(x)):
        return None
    return float(f"{float(x):.{_SIG}g}")


def tasks(*, grid: int = 12, points_1d: int = 256, seed: int = 0) -> dict:
    """The two tasks: name -> dict(mapping, x (n, d), y (n,), description)."""
    x1, y1, _, _ = signal_1d_task(seed, num_points=points_1d, stride=8)
    g = np.arange(grid) / grid
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    base = mappings.gaussian(seed + 1, 2, 32, 3.0)
    return {
        "1d": dict(
            mapping=mappings.power_law(16, 1.0, normalize=True),
            x=np.asarray(x1, np.float64),
            y=np.asarray(y1, np.float64),
            description=(
                f"paper 1D task: power-law signal, {points_1d} points of [0, 1), train "
                "on every 8th; power-law mapping b_j = j, a_j = 1/j, j = 1..16"
            ),
        ),
        "2d": dict(
            mapping=mappings.FourierMapping(
                np.round(np.asarray(base.B)), np.asarray(base.a)
            ),
            x=pts,
            y=power_law_field_2d(grid, seed, band_limited=False).ravel(),
            description=(
                f"2D power-law field on a {grid}x{grid} grid of [0, 1)^2, all points "
                "trained; 32 Gaussian frequencies (scale 3) rounded to integers"
            ),
        ),
    }


def _architecture(depth: int) -> ReluMLP:
    return ReluMLP(depth, W_std=math.sqrt(2.0), b_std=0.1)


def task_theory(arch: ReluMLP, task: dict) -> dict:
    r"""The analytic NTK Gram of a task: eigen-decomposition, eigenspaces, eta, bands.

    Returns:
        dict with ``lam`` (ascending), ``U``, ``spaces`` (an
        :class:`ntkspec.networks.Eigenspaces`), ``lr`` (:math:`N/\lambda_{\max}`),
        ``bands`` (name -> list of eigenspace indices) and ``representative`` (name ->
        the middle eigenspace of each band).
    """
    K = np.asarray(ntk(arch, task["mapping"](task["x"])), np.float64)
    lam, U = np.linalg.eigh(0.5 * (K + K.T))
    spaces = eigenspaces(lam, U)
    n_s = spaces.eigenvalues.size
    cuts = np.linspace(0, n_s, 4).round().astype(int)
    bands = {b: list(range(cuts[i], cuts[i + 1])) for i, b in enumerate(_BANDS)}
    return dict(
        lam=lam,
        U=U,
        spaces=spaces,
        lr=float(task["y"].size / lam[-1]),
        bands=bands,
        representative={b: v[len(v) // 2] for b, v in bands.items() if v},
    )


def _key(seed: int, k: int):
    return jax.random.PRNGKey(1000 * seed + k)


def _theory_residual(theory: dict, r0: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(T, n): U (1 - eta lam / N)^k U^T r0 with the analytic kernel."""
    lam, U = theory["lam"], theory["U"]
    factor = 1.0 - theory["lr"] * lam / r0.size
    decay = np.stack([factor ** float(k) for k in steps])
    return (decay * (U.T @ r0)) @ U.T


def _trained_residuals(net64, net32, params, task, theory, cfg) -> dict:
    """Train residuals (T, n) of the float64 network and its float32 copy, by GD."""
    out = {}
    params32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    for name, net, p in (
        ("network_f64", net64, params),
        ("network_f32", net32, params32),
    ):
        res = train(
            net, p, task["x"], task["y"], steps=cfg["steps"],
            learning_rate=theory["lr"], optimizer="gd", eval_every=cfg["eval_every"],
            record_outputs=True, progress=False,
        )  # fmt: skip
        f = np.asarray(res.history.outputs["train"][:, :, 0], np.float64)
        out[name] = f - task["y"]
        out[name + "_seconds"] = float(res.history.stats["seconds"])
    return out


def _eigen_errors(theory: dict, lin) -> dict:
    """Per eigenspace: rank-matched empirical eigenvalue, Rayleigh-quotient errors."""
    spaces = theory["spaces"]
    lam_hat = lin.eigenvalues[::-1]
    rank, eig_err, ray_err = 0, [], []
    for lam_s, m, V in zip(
        spaces.eigenvalues, spaces.multiplicity, spaces.bases, strict=True
    ):
        eig_err.append(abs(lam_hat[rank : rank + m].mean() - lam_s) / lam_s)
        ray = np.trace(V.T @ lin.kernel @ V) / m
        ray_err.append(abs(ray - lam_s) / lam_s)
        rank += int(m)
    return dict(eigenvalue=eig_err, rayleigh=ray_err)


def run_one(
    arch: ReluMLP, task: dict, theory: dict, width: int, k: int, cfg: dict, *, seed=0,
    trained: bool = True, nets: dict | None = None,
) -> dict:  # fmt: skip
    """One (task, width, key): per-eigenspace residuals and gaps (data, no files).

    Returns:
        A JSON-able dict: ``initial`` (S,) the per-eigenspace norms of
        :math:`r_0`; at the kept steps (``steps``, about 20, log-spaced, the reported
        ones included): ``relative`` curve -> (T, S) the residual norms relative to
        ``initial``, ``gaps`` cause -> (T, S) relative to ``initial``,
        ``gaps_vs_theory`` cause -> (T, S) relative to the theory's residual at each
        step (None where undefined); at every evaluated step (``curve_steps``)
        ``curves``: band -> curve -> the relative residual of the band's
        representative eigenspace; ``eigen_errors`` and timings. Untrained
        (linearised-only) runs have the theory and linearised curves and the kernel
        gap only.

    ``nets``: an optional dict in which the networks are kept per (width, dtype) and
    reused (a network's jit-compiled functions are cached per network value).
    """
    t0 = time.perf_counter()
    steps = np.arange(0, cfg["steps"] + 1, cfg["eval_every"])
    if steps[-1] != cfg["steps"]:
        steps = np.append(steps, cfg["steps"])
    nets = {} if nets is None else nets
    for dt in (np.float64, np.float32):
        if (int(width), dt) not in nets:
            nets[int(width), dt] = mlp(arch, task["mapping"], int(width), dtype=dt)
    net64 = nets[int(width), np.float64]
    params = net64.init(_key(seed, k))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lin = linearized_dynamics(
            net64, params, task["x"], task["y"], steps, theory["lr"], discrete=True,
            implementation="structured",
        )  # fmt: skip
        r0 = lin.initial[:, 0]
        res = {
            "theory": _theory_residual(theory, r0, steps),
            "linearized": lin.residual[..., 0],
        }
        lin_seconds = time.perf_counter() - t0
        if trained:
            net32 = nets[int(width), np.float32]
            res.update(_trained_residuals(net64, net32, params, task, theory, cfg))
    top_ratio = float(lin.eigenvalues[-1] / theory["lam"][-1])
    collapsed = [str(w.message) for w in caught]
    collapsed += [
        f"{c}: non-finite residual"
        for c in ("linearized", "network_f64", "network_f32")
        if c in res and not np.all(np.isfinite(res[c]))
    ]
    spaces = theory["spaces"]
    initial = eigenspace_norms(spaces, r0)
    th_norm = eigenspace_norms(spaces, res["theory"][..., None])
    defined = (th_norm >= FLOOR * initial) & (initial > 0)
    curves = [
        c for c in ("theory", "linearized", "network_f64", "network_f32") if c in res
    ]
    relative, gaps, gaps_th = {}, {}, {}
    with np.errstate(divide="ignore", invalid="ignore"):  # undefined entries -> NaN
        for c in curves:
            rel = eigenspace_norms(spaces, res[c][..., None]) / initial
            relative[c] = np.where(initial > 0, rel, np.nan)
        for cause, (a, b) in CAUSES.items():
            if a in res and b in res:
                diff = eigenspace_norms(spaces, (res[a] - res[b])[..., None])
                gaps[cause] = np.where(initial > 0, diff / initial, np.nan)
                gaps_th[cause] = np.where(defined, diff / th_norm, np.nan)
    timing = {c: round(res[c + "_seconds"], 3) for c in curves if c + "_seconds" in res}
    kept = _kept_steps(steps)
    rows = np.searchsorted(steps, kept)
    curves_full = {
        band: {c: _r(relative[c][:, s].tolist()) for c in curves}
        for band, s in theory["representative"].items()
    }
    return dict(
        width=int(width), key=int(k), key_seed=1000 * seed + k, trained=bool(trained),
        steps=kept.tolist(), initial=_r(initial.tolist()),
        relative={c: _r(v[rows].tolist()) for c, v in relative.items()},
        gaps={c: _r(v[rows].tolist()) for c, v in gaps.items()},
        gaps_vs_theory={c: _r(v[rows].tolist()) for c, v in gaps_th.items()},
        curve_steps=steps.tolist(), curves=curves_full,
        top_eigenvalue_ratio=top_ratio, collapsed=collapsed,
        eigen_errors={c: _r(v) for c, v in _eigen_errors(theory, lin).items()},
        seconds=dict(
            linearized=round(lin_seconds, 3),
            **timing,
            total=round(time.perf_counter() - t0, 3),
        ),
    )  # fmt: skip


def decay_rate(steps, residual, *, start: float = 0.5) -> float | None:
    r"""The late decay rate of a residual curve, per step.

    Minus the least-squares slope of :math:`\log r_k` against :math:`k` over the steps
    at or after ``start`` times the last step (positive entries only). For
    :math:`r_k = c\,q^k` it is :math:`-\log q`; the theory's rate in eigenspace
    :math:`S` is :math:`-\log\lvert 1 - \eta\lambda_S/N\rvert`. A mode's late rate
    is its own only while the slower modes do not leak into it: through a finite-width
    kernel's off-diagonal terms a fast mode's residual ends up decaying at the rate of
    the slowest ones.

    Returns:
        the rate, or ``None`` when fewer than 2 of those steps have a positive finite
        residual.

    Raises:
        ValueError: ``start`` outside [0, 1), or ``steps`` and ``residual`` of
            different lengths.
    """
    if not 0.0 <= start < 1.0:
        raise ValueError(f"start must be in [0, 1); got {start!r}")
    k = np.asarray(steps, np.float64)
    r = np.asarray(residual, np.float64)
    if k.shape != r.shape or k.ndim != 1:
        raise ValueError(
            f"steps and residual must be 1-D of one length; got {k.shape}, {r.shape}"
        )
    keep = (k >= start * k.max()) & np.isfinite(r) & (r > 0)
    if keep.sum() < 2:
        return None
    return float(-np.polyfit(k[keep], np.log(r[keep]), 1)[0])


def width_exponent(widths, values, *, n_boot: int = 2000, seed: int = 0) -> dict:
    r"""Fit :math:`g = c\,\text{width}^p` to per-key values at each width.

    The slope of the least-squares line through (log width, log mean over keys), its
    standard error and Student-t 95% interval (n - 2 degrees of freedom), and a 95%
    percentile bootstrap interval: keys resampled with replacement within each width,
    the line refitted. Widths without a positive value are left out.

    Args:
        widths: (W,) widths.
        values: W sequences of per-key values (None or non-positive entries dropped).
        n_boot: bootstrap resamples.
        seed: the bootstrap's random seed.

    Returns:
        dict: ``slope``, ``stderr``, ``t_interval``, ``bootstrap_interval`` (None
        where fewer than 3 or 2 widths remain), ``widths`` used, and
        ``contains_minus_half``: whether the bootstrap interval contains -1/2.
    """
    from scipy import stats

    kept = [
        (float(w), np.array([v for v in vals if v is not None and v > 0], float))
        for w, vals in zip(widths, values, strict=True)
    ]
    kept = [(w, v) for w, v in kept if v.size]
    out = dict(
        slope=None, stderr=None, t_interval=None, bootstrap_interval=None,
        widths=[int(w) for w, _ in kept], contains_minus_half=None,
    )  # fmt: skip
    if len(kept) < 2:
        return out
    lx = np.log([w for w, _ in kept])
    A = np.column_stack([lx, np.ones_like(lx)])
    pinv = np.linalg.pinv(A)
    ly = np.log([v.mean() for _, v in kept])
    coef = pinv @ ly
    out["slope"] = float(coef[0])
    if len(kept) > 2:
        resid = ly - A @ coef
        dof = len(kept) - 2
        cov = (resid @ resid / dof) * np.linalg.inv(A.T @ A)
        se = float(math.sqrt(max(cov[0, 0], 0.0)))
        half = float(stats.t.ppf(0.975, dof)) * se
        out["stderr"] = se
        out["t_interval"] = [coef[0] - half, coef[0] + half]
    rng = np.random.default_rng(seed)
    boot = np.stack(
        [
            np.log(v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1))
            for _, v in kept
        ],
        axis=1,
    )  # (n_boot, W)
    slopes = boot @ pinv[0]
    lo, hi = np.percentile(slopes, [2.5, 97.5])
    out["bootstrap_interval"] = [float(lo), float(hi)]
    tol = 1e-9  # an exact power law gives a zero-width interval at round-off
    out["contains_minus_half"] = bool(lo - tol <= -0.5 <= hi + tol)
    return out


def _kept_steps(steps: np.ndarray) -> np.ndarray:
    """About 20 log-spaced evaluated steps; 0, the last and the reported ones in."""
    targets = np.concatenate(
        [np.geomspace(max(steps[1], 1), steps[-1], 18), steps[-1] / np.array([100, 10])]
    )
    near = [steps[np.argmin(np.abs(steps - t))] for t in targets]
    return np.unique(np.concatenate([[steps[0], steps[-1]], near])).astype(int)


def _report_steps(steps: list[int]) -> list[int]:
    """Recorded steps nearest to steps/100, steps/10 and the last, each >= 1."""
    s = np.asarray(steps)
    picks = []
    for target in (s[-1] / 100, s[-1] / 10, s[-1]):
        cand = s[s >= 1]
        picks.append(int(cand[np.argmin(np.abs(cand - target))]))
    return sorted(set(picks))


def _band_value(gap_row, members) -> float | None:
    """Median over a band's eigenspaces of one run's gaps at one step (defined ones)."""
    vals = [gap_row[s] for s in members if gap_row[s] is not None]
    return float(np.median(vals)) if vals else None


def _mean_or_none(vals):
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def _summarize_gaps(runs, widths, bands, report_steps, field) -> tuple[dict, dict]:
    """Per cause and report step: band gaps per width (per key) with fits; per mode.

    ``field``: ``"gaps"`` or ``"gaps_vs_theory"``, which normalisation.
    """
    band_gaps, mode_gaps = {}, {}
    for cause in CAUSES:
        band_gaps[cause], mode_gaps[cause] = {}, {}
        for step in report_steps:
            per_band = {}
            for band, members in bands.items():
                per_width = []
                for w in widths:
                    rs = [r for r in runs if r["width"] == w and cause in r[field]]
                    per_width.append(
                        [
                            _band_value(
                                r[field][cause][r["steps"].index(step)], members
                            )
                            for r in rs
                        ]
                    )
                per_band[band] = dict(
                    per_key=per_width,
                    mean=[_mean_or_none(v) for v in per_width],
                    fit=width_exponent(widths, per_width),
                )
            band_gaps[cause][str(step)] = per_band
            modes = {}
            for w in widths:
                rs = [r for r in runs if r["width"] == w and cause in r[field]]
                if rs:
                    rows = [r[field][cause][r["steps"].index(step)] for r in rs]
                    modes[str(w)] = [
                        _mean_or_none(col) for col in zip(*rows, strict=True)
                    ]
            mode_gaps[cause][str(step)] = modes
    return band_gaps, mode_gaps


def _summarize_eigen(runs, widths, bands) -> dict:
    """Relative eigenvalue errors per mode (mean over keys) and per band, with fits."""
    out = {}
    for kind in ("eigenvalue", "rayleigh"):
        per_mode, per_band = {}, {}
        for w in widths:
            rows = [r["eigen_errors"][kind] for r in runs if r["width"] == w]
            if rows:
                per_mode[str(w)] = [_mean_or_none(c) for c in zip(*rows, strict=True)]
        for band, members in bands.items():
            per_width = [
                [
                    _band_value(r["eigen_errors"][kind], members)
                    for r in runs
                    if r["width"] == w
                ]
                for w in widths
            ]
            per_band[band] = dict(
                per_key=per_width,
                mean=[_mean_or_none(v) for v in per_width],
                fit=width_exponent(widths, per_width),
            )
        out[kind] = dict(per_mode=per_mode, per_band=per_band)
    return out


def _mode_residuals(runs, widths, report_steps) -> dict:
    """Per curve, step, width: relative residual per eigenspace, mean over keys."""
    out: dict = {}
    for curve in ("theory", "linearized", "network_f64", "network_f32"):
        out[curve] = {}
        for step in report_steps:
            per_w = {}
            for w in widths:
                rows = [
                    r["relative"][curve][r["steps"].index(step)]
                    for r in runs
                    if r["width"] == w and curve in r["relative"]
                ]
                if rows:
                    per_w[str(w)] = [_mean_or_none(c) for c in zip(*rows, strict=True)]
            out[curve][str(step)] = per_w
    return out


def _summarize_rates(runs, widths, meta) -> dict:
    """Late decay rate of each band's representative mode over the theory's rate."""
    eta, n = meta["learning_rate"], meta["n_train"]
    out = {}
    for band, s in meta["representative"].items():
        factor = abs(1.0 - eta * meta["eigenvalues"][s] / n)
        if not 0.0 < factor < 1.0:  # learned in one step, or not at all: no rate
            out[band] = dict(eigenspace=s, theory_rate=None, ratio={})
            continue
        theory_rate = -math.log(factor)
        per_curve = {}
        for c in ("linearized", "network_f64", "network_f32"):
            per_w = {}
            for w in widths:
                vals = [
                    decay_rate(r["curve_steps"], r["curves"][band][c])
                    for r in runs
                    if r["width"] == w and c in r["curves"][band]
                ]
                vals = [v / theory_rate for v in vals if v is not None]
                if vals:
                    per_w[str(w)] = dict(
                        per_key=_r(vals), mean=_r(float(np.mean(vals)))
                    )
            per_curve[c] = per_w
        out[band] = dict(eigenspace=s, theory_rate=_r(theory_rate), ratio=per_curve)
    return out


def summarize(meta: dict, runs: list[dict]) -> dict:
    """The per-task summary from its runs (checkpoint JSON as loaded) and task meta.

    ``meta``: what :func:`run` records per task (widths, bands, eigenvalues...).
    Returns ``meta`` with ``report_steps``, ``mode_residuals`` (the relative residual
    per eigenspace of each curve at those steps), ``band_gaps``, ``mode_gaps`` (and
    both ``_vs_theory``), ``eigen_errors``, ``top_eigenvalue_ratio`` (empirical over
    analytic largest eigenvalue, per width and key), ``runs_found``, ``missing`` and
    ``collapsed`` (runs with a warning or a non-finite residual, with the cause; left
    out of every statistic) added, and ``decay_rates``: per band, the late
    :func:`decay_rate` (second half of the run) of its representative mode for each
    curve, per width and key, divided by the theory's rate in that mode.
    """
    widths = [*meta["trained_widths"], *meta["linearized_widths"]]
    runs = sorted(runs, key=lambda r: (r["width"], r["key"]))
    found = {(r["width"], r["key"]) for r in runs}
    missing = [
        [w, k] for w in widths for k in range(meta["keys"]) if (w, k) not in found
    ]
    collapsed = [
        dict(width=r["width"], key=r["key"], cause=r["collapsed"])
        for r in runs
        if r.get("collapsed")
    ]
    runs = [r for r in runs if not r.get("collapsed")]
    steps = runs[0]["steps"] if runs else []
    report_steps = _report_steps(steps) if runs else []
    bands = meta["bands"]
    band_gaps, mode_gaps = _summarize_gaps(runs, widths, bands, report_steps, "gaps")
    band_th, mode_th = _summarize_gaps(
        runs, widths, bands, report_steps, "gaps_vs_theory"
    )
    return dict(
        meta,
        report_steps=report_steps,
        mode_residuals=_mode_residuals(runs, widths, report_steps),
        band_gaps=band_gaps,
        mode_gaps=mode_gaps,
        band_gaps_vs_theory=band_th,
        mode_gaps_vs_theory=mode_th,
        eigen_errors=_summarize_eigen(runs, widths, meta["bands"]),
        top_eigenvalue_ratio={
            str(w): [r["top_eigenvalue_ratio"] for r in runs if r["width"] == w]
            for w in widths
        },
        decay_rates=_summarize_rates(runs, widths, meta),
        runs_found=len(found),
        missing=missing,
        collapsed=collapsed,
    )


def _curves_for_plot(runs, meta, plot_widths) -> dict:
    """Key-0 relative residuals of the representative modes at the plotted widths."""
    out = {}
    for w in plot_widths:
        r = next((r for r in runs if r["width"] == w and r["key"] == 0), None)
        if r is None:
            continue
        out[str(w)] = {band: r["curves"][band] for band in meta["representative"]}
    return out


def _plot_widths(trained) -> list[int]:
    trained = list(trained)
    if len(trained) <= 3:
        return trained
    return [trained[0], trained[len(trained) // 2], trained[-1]]


_STYLE = {
    "theory": dict(color="k", ls="--", lw=1.2, label="theory (analytic NTK)"),
    "linearized": dict(color="C1", ls="-", lw=1.2, label="linearised at init"),
    "network_f64": dict(color="C0", ls="-", lw=1.0, label="network float64"),
    "network_f32": dict(color="C3", ls=":", lw=1.5, label="network float32"),
}


def _plot_task(name: str, t: dict, path: Path, label: str) -> None:
    from ..io import agg_subplots

    widths = _plot_widths(t["trained_widths"])
    fig, axes = agg_subplots(len(widths) + 1, 3, figsize=(13, 3.2 * (len(widths) + 1)),
                             squeeze=False)  # fmt: skip
    steps = np.asarray(t["curve_steps"], float)
    for i, w in enumerate(widths):
        for j, band in enumerate(_BANDS):
            ax = axes[i, j]
            curves = t["curves"].get(str(w), {}).get(band, {})
            for c, y in curves.items():
                y = np.array([np.nan if v is None else v for v in y], float)
                ax.semilogy(steps, np.where(y > 0, y, np.nan), **_STYLE[c])
            s = t["representative"].get(band)
            lam = t["eigenvalues"][s] / t["eigenvalues"][0] if s is not None else 0
            ax.set_title(
                f"{name}, width {w}: {band} mode (space {s}, λ/λ_max {lam:.2g})",
                fontsize=8,
            )
            ax.set_xlabel("GD step", fontsize=8)
            ax.set_ylabel("‖P_S r_k‖ / ‖P_S r_0‖", fontsize=8)
            ax.grid(alpha=0.3, which="both")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    rs = t["report_steps"]
    step = str(rs[len(rs) // 2]) if rs else None  # the middle reported step
    all_w = np.asarray([*t["trained_widths"], *t["linearized_widths"]], float)
    for j, band in enumerate(_BANDS):
        ax = axes[-1, j]
        if step is None:
            break
        for c, cause in enumerate(CAUSES):
            b = t["band_gaps"][cause][step][band]
            y = np.array([np.nan if v is None else v for v in b["mean"]], float)
            sl = b["fit"]["slope"]
            fit = "" if sl is None else f" (p = {sl:.2f})"
            ax.loglog(all_w, y, "o-", ms=3, color=f"C{c + 4}", label=cause + fit)
        e = t["eigen_errors"]["eigenvalue"]["per_band"][band]
        y = np.array([np.nan if v is None else v for v in e["mean"]], float)
        sl = e["fit"]["slope"]
        fit = "" if sl is None else f" (p = {sl:.2f})"
        ax.loglog(all_w, y, "s--", ms=3, color="0.4", label="eigenvalue error" + fit)
        ref = (
            np.nanmax(y) * (all_w / all_w[0]) ** -0.5
            if np.any(np.isfinite(y))
            else None
        )
        if ref is not None:
            ax.loglog(all_w, ref, "k:", lw=1, label="width^-1/2")
        ax.set_title(
            f"{name}: {band} band, |P_S(r_A - r_B)| / |P_S r_0| at step {step}",
            fontsize=8,
        )
        ax.set_xlabel("hidden width", fontsize=8)
        ax.set_xticks(all_w, [str(int(w)) for w in all_w], fontsize=7)
        ax.minorticks_off()
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.suptitle(label, fontsize=9)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.06, top=0.94, hspace=0.45)
    save_figure(fig, path, dpi=100)


def _fit_text(fit: dict) -> str:
    if fit["slope"] is None:
        return "–"
    iv = fit["bootstrap_interval"]
    return f"{fit['slope']:.2f} [{iv[0]:.2f}, {iv[1]:.2f}]"


def _tables(tasks_out: dict) -> list[dict]:
    tables = []
    kinds = (
        ("band_gaps", "relative to the initial residual in the mode"),
        ("band_gaps_vs_theory", "relative to the theory's residual at that step"),
    )
    for name, t in tasks_out.items():
        if not t["report_steps"]:
            continue
        step = str(t["report_steps"][-1])
        widths = [*t["trained_widths"], *t["linearized_widths"]]
        for field, normalisation in kinds:
            rows = []
            for band in _BANDS:
                for cause in CAUSES:
                    b = t[field][cause][step][band]
                    rows.append([band, cause, *b["mean"], _fit_text(b["fit"])])
                e = t["eigen_errors"]["eigenvalue"]["per_band"][band]
                rows.append([band, "eigenvalue error", *e["mean"], _fit_text(e["fit"])])
            tables.append(
                dict(
                    title=(
                        f"{name}: per-band gap at step {step}, {normalisation} "
                        "(median over the band's eigenspaces, mean over keys)"
                    ),
                    columns=[
                        "band",
                        "cause",
                        *[f"width {w}" for w in widths],
                        "exponent [95% bootstrap]",
                    ],
                    rows=rows,
                    note=(
                        f"{t['description']}; widths {t['linearized_widths']} "
                        "linearised only; bands by eigenvalue: low = largest; the "
                        "kernel's fluctuations give the exponent -1/2"
                    ),
                )
            )
        if t.get("decay_rates"):
            tables.append(_rate_table(name, t, widths))
    return tables


def _rate_table(name: str, t: dict, widths) -> dict:
    rows = []
    for band, b in t["decay_rates"].items():
        for c, per_w in b["ratio"].items():
            rows.append([band, c, *[per_w.get(str(w), {}).get("mean") for w in widths]])
    return dict(
        title=(
            f"{name}: late decay rate of each band's representative mode over the "
            "theory's rate (second half of the run, mean over keys)"
        ),
        columns=["band", "curve", *[f"width {w}" for w in widths]],
        rows=rows,
        note=(
            "1 = the theory's rate -log|1 - eta lambda_S / N|; a fast mode's late "
            "residual is fed by the slow modes through the finite-width kernel, so "
            "only the slowest band's ratio measures that mode's own rate"
        ),
    )


def _settings(cfg: dict, seed: int, task: str) -> dict:
    """What a checkpointed run depends on (widths and key count aside)."""
    keep = ("steps", "eval_every", "grid", "points_1d", "depth")
    return dict({k: cfg[k] for k in keep}, seed=int(seed), task=task, floor=FLOOR)


def _run_path(runs_dir: Path, task: str, width: int, k: int) -> Path:
    return runs_dir / f"{task}_w{int(width)}_k{int(k)}.json"


def _load_runs(runs_dir: Path, task: str, settings: dict) -> list[dict]:
    """Checkpointed runs of ``task`` in ``runs_dir``; ValueError on other settings."""
    runs = []
    for p in sorted(runs_dir.glob(f"{task}_w*_k*.json")):
        saved = json.loads(p.read_text())
        if saved.get("settings") != settings:
            raise ValueError(
                f"runs_dir {str(runs_dir)!r} holds {p.name} made with settings "
                f"{saved.get('settings')}, not {settings}: use another runs_dir"
            )
        runs.append(saved["run"])
    return runs


def _task_meta(name: str, task: dict, theory: dict, cfg: dict) -> dict:
    sp = theory["spaces"]
    return dict(
        description=task["description"],
        n_train=int(task["y"].size),
        learning_rate=theory["lr"],
        lr_rule="N / lambda_max of the analytic NTK Gram (loss sum(f-y)^2 / (2N))",
        eigenvalues=sp.eigenvalues.tolist(),
        multiplicity=sp.multiplicity.tolist(),
        bands=theory["bands"],
        representative=theory["representative"],
        trained_widths=[int(w) for w in cfg["widths"]],
        linearized_widths=[int(w) for w in cfg["linearized_widths"]],
        keys=int(cfg["keys"]),
    )


def _run_task(name, task, theory, arch, cfg, seed, runs_dir: Path, log) -> list[dict]:
    """Every (width, key) run of one task not yet on disk; all its runs, loaded."""
    settings = _settings(cfg, seed, name)
    _load_runs(runs_dir, name, settings)  # refuse a folder of other settings first
    plan = [(w, True) for w in cfg["widths"]] + [
        (w, False) for w in cfg["linearized_widths"]
    ]
    for w, trained in plan:
        nets: dict = {}
        for k in range(cfg["keys"]):
            path = _run_path(runs_dir, name, w, k)
            if path.exists():
                continue
            one = run_one(
                arch, task, theory, w, k, cfg, seed=seed, trained=trained, nets=nets
            )
            write_json(path, dict(settings=settings, run=one))
            if log is not None:
                log(f"mode_gap {name} width {w} key {k}: {one['seconds']['total']} s")
    return _load_runs(runs_dir, name, settings)


def run(
    out_dir: str | Path = "figures/validation/mode_gap",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
    runs_dir: str | Path | None = None,
    summarize_only: bool = False,
    task_names: tuple[str, ...] = ("1d", "2d"),
    log=None,
) -> dict:
    """Run the study; write ``mode_gap.json`` and ``mode_gap_<task>.png``.

    Args:
        out_dir: output folder.
        quick: the reduced size (``size="quick"``).
        seed: seed of the data, the 2D mapping and the keys
            (``jax.random.PRNGKey(1000 * seed + k)``, k = 0..keys-1, at every width).
        command: the command line recorded in the provenance.
        size: ``"tiny"``, ``"quick"``, ``"full"`` (CPU-sized) or ``"gpu"``.
        runs_dir: folder of the per-(task, width, key) checkpoints (default
            ``out_dir/mode_gap_runs``; ``"tiny"`` and ``"quick"`` keep none unless
            given; ``analysis/fig_mode_gap.py`` passes ``<out>/runs``).
        summarize_only: train nothing; rebuild the JSON and figures from the runs in
            ``runs_dir`` (missing runs are listed in the JSON).
        task_names: which tasks, among ``"1d"`` and ``"2d"``.
        log: optional ``log(text)`` called after each run.

    Returns:
        ``{"json", "png" (list), "seconds", "runs_dir"}``.

    Raises:
        ValueError: unknown size or task; ``runs_dir`` holding runs of other settings;
            ``summarize_only`` with no runs on disk.
    """
    size = size or ("quick" if quick else "full")
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}; got {size!r}")
    cfg = SIZES[size]
    unknown = [t for t in task_names if t not in ("1d", "2d")]
    if unknown or not task_names:
        raise ValueError(f"task_names must be among ('1d', '2d'); got {task_names!r}")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    arch = _architecture(cfg["depth"])
    load_start = _load_average()
    with contextlib.ExitStack() as stack:
        temporary = runs_dir is None and size in ("tiny", "quick")
        temporary = temporary and not summarize_only
        if temporary:
            runs_dir = stack.enter_context(tempfile.TemporaryDirectory())
        runs_path = (
            Path(runs_dir) if runs_dir is not None else out_dir / "mode_gap_runs"
        )
        if summarize_only and not runs_path.is_dir():
            raise ValueError(f"runs_dir {str(runs_path)!r} does not exist")
        runs_path.mkdir(parents=True, exist_ok=True)
        out = {}
        all_tasks = tasks(grid=cfg["grid"], points_1d=cfg["points_1d"], seed=seed)
        with jax.default_matmul_precision("highest"):
            for name in task_names:
                task = all_tasks[name]
                theory = task_theory(arch, task)
                if summarize_only:
                    runs = _load_runs(runs_path, name, _settings(cfg, seed, name))
                else:
                    runs = _run_task(
                        name, task, theory, arch, cfg, seed, runs_path, log
                    )
                meta = _task_meta(name, task, theory, cfg)
                out[name] = summarize(meta, runs)
                out[name]["curves"] = _curves_for_plot(
                    runs, meta, _plot_widths(cfg["widths"])
                )
                out[name]["curve_steps"] = runs[0]["curve_steps"] if runs else []
    if not any(t["runs_found"] for t in out.values()):
        raise ValueError(f"no runs found in runs_dir {str(runs_path)!r}")
    kept = None if temporary else str(runs_path)
    return _write(out, out_dir, size, cfg, seed, command, t0, load_start, kept)


def _load_average() -> list[float] | None:
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not available on every platform
        return None


def _write(out, out_dir: Path, size, cfg, seed, command, t0, load_start, runs_dir):
    prov = provenance(command, seed)
    cpu = prov.get("platform") == "cpu"
    data = dict(
        description=(
            "Per eigenspace of the analytic NTK Gram: the train residual of the "
            "theory, of the network linearised at its initial empirical NTK, and of "
            "the network trained by full-batch GD (float64 and float32, same initial "
            "parameters) at "
            "eta = N / lambda_max; gaps g = |P_S (r_A - r_B)| / |P_S r_0| (and "
            "/ |P_S r_theory(k)|, gaps_vs_theory) split "
            "into kernel (linearised - theory), drift (network f64 - linearised), "
            "round-off (f32 - f64) and total (network f64 - theory)."
        ),
        size=size,
        config={k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        keys=(
            f"jax.random.PRNGKey({1000 * seed} + k), k = 0..{cfg['keys'] - 1}, the "
            "same key numbers at every width and in both tasks; float32 runs start "
            "from the float64 initial parameters rounded"
        ),
        architecture=dict(
            depth=cfg["depth"], W_std=math.sqrt(2.0), b_std=0.1, parameterization="ntk"
        ),  # fmt: skip
        causes={k: f"{a} - {b}" for k, (a, b) in CAUSES.items()},
        floor=FLOOR,
        bands_rule=(
            "eigenspaces in descending eigenvalue split into thirds: low (largest "
            "eigenvalues, low frequencies), mid, high (smallest, high frequencies); "
            "band gap = median over the band's eigenspaces"
        ),
        size_note=(
            f"size {size!r}: trained widths {list(cfg['widths'])}, linearised only "
            f"{list(cfg['linearized_widths'])}, {cfg['keys']} keys, {cfg['steps']} GD "
            f"steps, 2D grid {cfg['grid']}x{cfg['grid']}, depth {cfg['depth']}, on "
            f"{prov['device']}" + (" (CPU numbers)" if cpu else "")
        ),
        tables=_tables(out),
        tasks=out,
        load_average=dict(start=load_start, end=_load_average()),
        runs_dir=runs_dir,
        seconds=round(time.perf_counter() - t0, 3),
        provenance=prov,
    )
    write_json(out_dir / "mode_gap.json", data)
    label = f"{prov['device']} · size={size} · jax {prov['jax']}"
    pngs = []
    for name, t in out.items():
        if t["runs_found"]:
            path = out_dir / f"mode_gap_{name}.png"
            _plot_task(name, t, path, label)
            pngs.append(str(path))
    return {
        "json": str(out_dir / "mode_gap.json"),
        "png": pngs,
        "seconds": data["seconds"],
        "runs_dir": data["runs_dir"],
    }
