r"""The paper's 1D study (Tancik et al. 2020, Figs. 2-3) by infinite-width theory.

Signals: the random power-law signals of :func:`ntkspec.data.signal_1d_task` (256 grid
points of [0, 1), train on every 8th, test on the other 224). Mappings: the dense
power-law mapping :math:`b_j = j`, :math:`a_j = j^{-p}` (j = 1..16, normalised), p in
{0, 0.5, 1, 1.5, 2, inf}, and no mapping (the scalar x - 0.5). Architecture: the
notebook's network, ``ReluMLP(4, W_std=1, b_std=0, "standard", width=1024)``.

* Test error against p: kernel regression (t = infinity), mean +- std over signals.
* Training dynamics: :func:`ntkspec.gd_dynamics` from a zero-mean start, with the
  notebook's loss :math:`\frac12\sum(f - y)^2` and SGD step 1e-5 expressed in
  neural-tangents' normalisation (``learning_rate = 1e-5 * y.size``), times = iteration
  counts up to 50,000; train/test MSE against iterations for each p, and the magnitude
  of the training residual's DFT at indices 1, 5, 15 (Fig. 3, right).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np

from .. import data, mappings
from ..dynamics import gd_dynamics
from ..io import readable, save_figure
from ..kernels import ReluMLP
from ..regression import kernel_regression
from ._common import write_study

__all__ = ["POWERS", "paper_arch", "learning_1d", "run"]

POWERS = (0.0, 0.5, 1.0, 1.5, 2.0, math.inf)
#: the notebook's plain-SGD step on the 0.5 * sum loss, and its iteration count
SGD_LR, ITERATIONS = 1e-5, 50_000
RESIDUAL_INDICES = (1, 5, 15)


def paper_arch() -> ReluMLP:
    """The 1D notebook's network: 4 Dense layers of width 1024, standard parameters."""
    return ReluMLP(4, W_std=1.0, b_std=0.0, parameterization="standard", width=1024)


def _mapping_items():
    items = [(f"p={p:g}", mappings.power_law(16, p, normalize=True)) for p in POWERS]
    items.append(("none", mappings.identity(1, offset=0.5)))
    return items


def learning_1d(*, quick: bool = False, seed: int = 0) -> dict:
    """Compute test error vs p and the dynamics curves; returns JSON-able data."""
    n_signals = 4 if quick else 32
    tasks = [data.signal_1d_task(seed + s) for s in range(n_signals)]
    x_tr, x_te = tasks[0][0], tasks[0][2]
    Y_tr = np.stack([t[1] for t in tasks], axis=1)  # (32, S)
    Y_te = np.stack([t[3] for t in tasks], axis=1)  # (224, S)
    steps = np.concatenate(
        [[0.0], np.unique(np.round(np.logspace(0, 4.7, 40 if quick else 90)))]
    )
    arch = paper_arch()
    results = {}
    for name, m in _mapping_items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pred, info = kernel_regression(arch, m, x_tr, Y_tr, x_te, return_info=True)
            # sum-loss SGD step lr on each signal = NT normalisation with lr * y.size
            f_tr, f_te = gd_dynamics(
                arch, m, x_tr, Y_tr, x_te, steps, SGD_LR * Y_tr.size
            )
        test_mse = np.mean((pred - Y_te) ** 2, axis=0)
        resid = f_tr - Y_tr[None]
        spec = np.abs(np.fft.fft(resid[:, :, 0], axis=1))  # signal 0, (T, 32)
        results[name] = {
            "test_mse_mean": float(np.mean(test_mse)),
            "test_mse_std": float(np.std(test_mse)),
            "test_mse_per_signal": test_mse.tolist(),
            "condition": info.condition,
            "train_mse_vs_iter": np.mean(resid**2, axis=(1, 2)).tolist(),
            "test_mse_vs_iter": np.mean((f_te - Y_te[None]) ** 2, axis=(1, 2)).tolist(),
            "residual_dft_signal0": {
                str(k): spec[:, k].tolist() for k in RESIDUAL_INDICES
            },
            "warnings": sorted({str(w.message)[:200] for w in caught}),
        }
    return {
        "num_signals": n_signals,
        "iterations": steps.tolist(),
        "learning_rate_nt": SGD_LR * Y_tr.size,
        "sgd_lr_sum_loss": SGD_LR,
        "mappings": results,
    }


def _plot(d: dict, path: Path) -> None:
    from ..io import agg_subplots

    fig, axes = agg_subplots(1, 5, figsize=(22, 4))
    names = list(d["mappings"])
    ps = [n for n in names if n.startswith("p=")]
    xs = np.arange(len(ps))
    axes[0].errorbar(
        xs,
        [d["mappings"][n]["test_mse_mean"] for n in ps],
        yerr=[d["mappings"][n]["test_mse_std"] for n in ps],
        fmt="o-",
        capsize=3,
        label="power-law mapping",
    )
    none = d["mappings"]["none"]
    axes[0].axhline(none["test_mse_mean"], color="k", ls="--", label="no mapping")
    axes[0].set_xticks(xs, [n[2:] for n in ps])
    axes[0].set_xlabel("p")
    axes[0].set_ylabel("test MSE (t = inf)")
    axes[0].set_yscale("log")
    axes[0].set_title(f"kernel regression, {d['num_signals']} signals")
    axes[0].legend(fontsize=8)
    it = np.asarray(d["iterations"])
    for k, n in enumerate(names):
        c = "k" if n == "none" else f"C{k}"
        axes[1].loglog(
            it[1:], d["mappings"][n]["train_mse_vs_iter"][1:], color=c, label=n
        )
        axes[2].loglog(it[1:], d["mappings"][n]["test_mse_vs_iter"][1:], color=c)
    axes[1].set_title("train MSE (gradient flow)")
    axes[2].set_title("test MSE (gradient flow)")
    axes[1].legend(fontsize=7)
    for j, idx in enumerate(("1", "15")):
        ax = axes[3 + j]
        for k, n in enumerate(names):
            c = "k" if n == "none" else f"C{k}"
            ax.loglog(
                it[1:], d["mappings"][n]["residual_dft_signal0"][idx][1:], color=c
            )
        ax.set_title(f"|DFT of train residual| at index {idx} (signal 0)")
    for ax in axes[1:]:
        ax.set_xlabel("SGD iteration (lr 1e-5, 0.5 sum loss)")
        ax.grid(alpha=0.3)
    readable(fig, fontsize=12)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(
    out_dir: str | Path = "figures/regression",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Write ``learning_1d.json`` and ``learning_1d.png``."""
    t0 = time.perf_counter()
    d = learning_1d(quick=quick, seed=seed)
    return write_study(
        out_dir,
        "learning_1d",
        d,
        _plot,
        started=t0,
        quick=quick,
        seed=seed,
        command=command,
        description=(
            "1D power-law signals, train on every 8th of 256 points: infinite-width "
            "test MSE against the mapping power p, and gradient-flow train/test MSE "
            "against SGD iterations of the notebook's 0.5*sum loss (lr 1e-5)."
        ),
        architecture="ReluMLP(4, W_std=1, b_std=0, standard, width=1024)",
    )
