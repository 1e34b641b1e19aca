r"""The paper's 1D study (Tancik et al. 2020, Fig. 2): kernel and spectral falloff.

Power-law mappings :math:`b_j = j`, :math:`a_j = j^{-p}/\|a\|` (j = 1..16) with
p in {0, 0.5, 1, 1.5, 2, inf}, and no mapping (raw x - 0.5), on the paper's network (4
Dense layers, standard parameterization, width 1024, W_std = 1, b_std = 0). For each:

* the NTK against the offset on a 256-point grid (spatial domain);
* the exact eigenvalues of the Gram on the 32 training points (every 8th of 256, the
  paper's split) by integer frequency (one FFT; these are the paper's "NTK Fourier
  spectrum" of panel d, which for these periodic mappings are exact eigenvalues);
* the eigenvalues of the integral operator on the torus (continuous spectrum) up to
  frequency 128, and the fitted decay exponent over stated ranges.

No mapping gives no stationary kernel: its eigenvalues come from dense ``eigh`` and are
plotted against (rank + 1) // 2 (cos/sin pairs), since they carry no frequency label.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .. import mappings
from ..grid import Grid
from ..io import readable, save_figure, write_json
from ..kernels import ReluMLP, ntk
from ..operators import kernel_on_offsets
from ..provenance import provenance
from ..spectra import continuous_spectrum, decay_exponent, grid_spectrum, spectrum

__all__ = ["paper_arch_1d", "run"]

POWERS = (0.0, 0.5, 1.0, 1.5, 2.0, math.inf)


def paper_arch_1d() -> ReluMLP:
    """The 1D notebooks' network: 4 x 1024, standard parameterization, W_std 1, b 0."""
    return ReluMLP(4, W_std=1.0, b_std=0.0, parameterization="standard", width=1024)


def _label(p: float) -> str:
    return "p=inf" if math.isinf(p) else f"p={p:g}"


def spectra_1d(
    out_dir: str | Path,
    *,
    num_freqs: int = 16,
    fine_points: int = 256,
    train_points: int = 32,
    max_freq: int = 128,
    fit_ranges: tuple[tuple[float, float], ...] = ((1.0, 16.0), (24.0, 128.0)),
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Compute, write ``spectra_1d.json`` and plot ``spectra_1d.png``."""
    t0 = time.perf_counter()
    arch = paper_arch_1d()
    fine, train = Grid((fine_points,)), Grid((train_points,))
    offsets = np.fft.fftshift(np.fft.fftfreq(fine_points))  # Delta in [-1/2, 1/2)
    curves = {}
    table_rows = []
    for p in POWERS:
        mapping = mappings.power_law(num_freqs, p, normalize=True)
        col = np.asarray(kernel_on_offsets(arch, mapping, fine))
        gs = grid_spectrum(arch, mapping, train)
        freqs = gs.frequencies[0]
        keep = freqs >= 0
        cs = continuous_spectrum(arch, mapping, max_freq, rtol=1e-9)
        m = cs.frequencies[0]
        pos = m >= 0
        fits = {}
        for lo, hi in fit_ranges:
            fit = decay_exponent(m[pos], cs.values[pos], fit_range=(lo, hi))
            fits[f"{lo:g}-{hi:g}"] = fit.exponent
        curves[_label(p)] = {
            "stationary": True,
            "kernel_vs_offset": np.fft.fftshift(col).tolist(),
            "train_grid_frequency": freqs[keep].tolist(),
            "train_grid_eigenvalues": gs.values[keep].tolist(),
            "continuous_frequency": m[pos].tolist(),
            "continuous_eigenvalues": cs.values[pos].tolist(),
            "continuous_error_estimate": cs.error_estimate,
            "decay_exponent": fits,
        }
        table_rows.append([_label(p)] + [fits[k] for k in fits])
    # No mapping: raw coordinates x - 0.5, not stationary; dense eigenvalues.
    ident = mappings.identity(1, offset=0.5)
    x_fine = fine.points()
    origin = np.array([[0.0]])
    row = np.asarray(ntk(arch, ident(x_fine), ident(origin)))[:, 0]
    lam_none = spectrum(arch, ident, train)
    curves["none"] = {
        "stationary": False,
        "kernel_vs_x": row.tolist(),
        "kernel_note": "k(x, 0) for x in [0, 1) (raw coordinates x - 0.5: not "
        "stationary), as the paper's row k(x_i, 0); plotted against x - 1/2",
        "train_grid_eigenvalues_by_rank": lam_none.tolist(),
        "pseudo_frequency": ((np.arange(lam_none.size) + 1) // 2).tolist(),
    }
    data = {
        "description": (
            "Paper Fig. 2 style: NTK of the 1D notebooks' network for power-law "
            "mappings "
            f"b = 1..{num_freqs}, a = b^-p / ||a||, and for no mapping. Spatial kernel "
            f"on "
            f"a {fine_points}-point grid (offset in [-1/2, 1/2)); exact Gram "
            f"eigenvalues "
            f"on the {train_points} training points by |frequency| (FFT, periodic "
            "mappings); continuous (integral operator on the torus) eigenvalues up to "
            f"frequency {max_freq}. No mapping: dense eigenvalues by rank."
        ),
        "architecture": {
            "depth": arch.depth,
            "W_std": arch.W_std,
            "b_std": arch.b_std,
            "parameterization": arch.parameterization,
            "width": arch.width,
        },
        "sizes": {
            "num_freqs": num_freqs,
            "fine_points": fine_points,
            "train_points": train_points,
            "max_freq": max_freq,
        },
        "offsets": offsets.tolist(),
        "curves": curves,
        "tables": [
            {
                "title": "Decay exponent alpha of the continuous NTK spectrum, "
                "c(m) ~ m^-alpha, least squares on log-log over the stated ranges of m",
                "columns": ["mapping"]
                + [f"alpha, m in [{a:g}, {b:g}]" for a, b in fit_ranges],
                "rows": table_rows,
            }
        ],
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": provenance(command, seed),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "spectra_1d.json", data)
    _plot(data, out_dir / "spectra_1d.png")
    return data


def _plot(data: dict, path: Path) -> None:
    import matplotlib

    from ..io import agg_subplots

    offsets = np.asarray(data["offsets"])
    fig, axes = agg_subplots(1, 3, figsize=(16, 4.4))
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(POWERS)))
    names = [_label(p) for p in POWERS]
    for name, color in zip(names, colors, strict=True):
        c = data["curves"][name]
        k = np.asarray(c["kernel_vs_offset"])
        axes[0].plot(offsets, k / k.max(), color=color, label=name)
        f = np.asarray(c["train_grid_frequency"])
        axes[1].semilogy(
            f, c["train_grid_eigenvalues"], "o-", color=color, ms=3, label=name
        )
        fc = np.asarray(c["continuous_frequency"])
        axes[2].loglog(
            fc[1:], np.asarray(c["continuous_eigenvalues"])[1:], color=color, label=name
        )
    none = data["curves"]["none"]
    k = np.asarray(none["kernel_vs_x"])
    axes[0].plot(offsets, k / k.max(), "k--", label="none: k(x, 0) at x - 1/2")
    lam = np.asarray(none["train_grid_eigenvalues_by_rank"])
    big = lam > 1e-10 * lam.max()  # the rest is round-off (the Gram has low rank)
    axes[1].semilogy(
        np.asarray(none["pseudo_frequency"])[big],
        lam[big],
        "ks",
        label="none, dense, by rank (i+1)//2",
    )
    sizes = data["sizes"]
    axes[0].set(
        title=f"NTK vs offset ({sizes['fine_points']}-pt grid), normalised",
        xlabel="offset Δ",
    )
    axes[1].set(
        title=f"exact Gram eigenvalues, {sizes['train_points']} training points",
        xlabel="|frequency|",
        ylabel="eigenvalue of K",
    )
    axes[2].set(
        title="continuous spectrum (integral operator on the torus)",
        xlabel="frequency m",
        ylabel="c(m)",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    axes[0].legend(fontsize=7)
    readable(fig, fontsize=12)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(
    out_dir: str | Path = "figures/spectra",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Write ``spectra_1d.json`` and ``spectra_1d.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    data = spectra_1d(
        out_dir,
        max_freq=64 if quick else 128,
        fit_ranges=((1.0, 16.0), (24.0, 64.0))
        if quick
        else ((1.0, 16.0), (24.0, 128.0)),
        seed=seed,
        command=command,
    )
    return {
        "json": str(out_dir / "spectra_1d.json"),
        "png": str(out_dir / "spectra_1d.png"),
        "seconds": data["seconds"],
    }
