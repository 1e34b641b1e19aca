r"""Eigenlearning's predicted test MSE against measured NTK regression, against n.

Domain: the 256-point grid of [0, 1) with the uniform measure. Kernel: the depth-4 ReLU
NTK on the 1D power-law mapping (b_j = j, a_j = j^-p, j = 1..16, normalised), periodic,
so the operator's eigenfunctions are the Fourier modes and its eigenvalues are
:math:`\lambda_m = \mathrm{DFT}(k(x_i, 0))_m / 256`. Target: a power-law signal of
:func:`ntkspec.data.power_law_signal` with coefficients
:math:`v_m = \mathrm{DFT}(f^*)_m / 256`. Theory: :func:`ntkspec.theory.eigenlearning`
(Simon et al. 2023). Measured: kernel ridge regression on n training points drawn
uniformly *without* replacement from the grid (the theory assumes i.i.d. draws;
duplicates would make the ridge-0 system singular), test MSE over all 256 points, mean
over random draws.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.linalg

from .. import data, mappings, theory
from ..io import save_figure
from ..kernels import ReluMLP, ntk
from ._common import write_study

__all__ = ["eigenlearning_study", "run"]


def eigenlearning_study(*, quick: bool = False, seed: int = 0, depth: int = 4) -> dict:
    """Compute predicted and measured learning curves; returns JSON-able data."""
    N = 256
    powers = (1.0,) if quick else (0.5, 1.0, 2.0)
    ns = (4, 16, 64) if quick else (2, 4, 8, 16, 32, 64, 128)
    trials = 10 if quick else 40
    rel_ridges = (0.0, 1e-1)
    x = np.arange(N)[:, None] / N
    _, f_star = data.power_law_signal(seed, num_points=N)
    v = np.fft.fft(f_star) / N
    arch = ReluMLP(depth)
    rng = np.random.default_rng(seed)
    draws = {n: [rng.choice(N, n, replace=False) for _ in range(trials)] for n in ns}
    curves = {}
    for p in powers:
        m = mappings.power_law(16, p, normalize=True)
        K = np.asarray(ntk(arch, m(x)))
        lam = np.real(np.fft.fft(K[:, 0])) / N
        k0 = float(K[0, 0])
        for rel in rel_ridges:
            ridge = rel * k0
            pred = theory.eigenlearning_curve(np.maximum(lam, 0.0), v, ns, ridge)
            measured, spread = [], []
            for n in ns:
                errs = []
                for idx in draws[n]:
                    A = K[np.ix_(idx, idx)] + ridge * np.eye(n)
                    alpha = scipy.linalg.solve(A, f_star[idx], assume_a="pos")
                    errs.append(np.mean((K[:, idx] @ alpha - f_star) ** 2))
                measured.append(float(np.mean(errs)))
                spread.append(float(np.std(errs) / np.sqrt(trials)))
            curves[f"p={p:g}, ridge={rel:g} k(0)"] = {
                "p": p,
                "ridge": ridge,
                "n": list(ns),
                "predicted_test_mse": pred["test_mse"].tolist(),
                "predicted_train_mse": pred["train_mse"].tolist(),
                "kappa": pred["kappa"].tolist(),
                "measured_test_mse": measured,
                "measured_sem": spread,
            }
    return {"grid_points": N, "trials": trials, "curves": curves}


def _plot(d: dict, path: Path) -> None:
    from ..io import agg_subplots

    fig, ax = agg_subplots(figsize=(7, 4.5))
    for k, (label, c) in enumerate(d["curves"].items()):
        ax.loglog(c["n"], c["predicted_test_mse"], "-", color=f"C{k}", label=label)
        ax.errorbar(
            c["n"],
            c["measured_test_mse"],
            yerr=c["measured_sem"],
            fmt="o",
            color=f"C{k}",
            ms=4,
            capsize=2,
        )
    ax.set_xlabel("number of training points n")
    ax.set_ylabel("test MSE")
    ax.set_title("eigenlearning prediction (lines) vs NTK regression (dots)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(
    out_dir: str | Path = "figures/regression",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Write ``eigenlearning.json`` and ``eigenlearning.png``."""
    t0 = time.perf_counter()
    d = eigenlearning_study(quick=quick, seed=seed)
    return write_study(
        out_dir,
        "eigenlearning",
        d,
        _plot,
        started=t0,
        quick=quick,
        seed=seed,
        command=command,
        description=(
            "Predicted (eigenlearning, Simon et al. 2023) vs measured test MSE of "
            "depth-4 ReLU NTK regression on a 256-point periodic 1D grid, power-law "
            "mapping and target; mean over random training sets (error bars: s.e.m.)."
        ),
    )
