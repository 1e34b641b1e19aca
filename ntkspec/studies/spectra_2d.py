r"""2D spectra of the paper's mappings on an image grid (Tancik et al. 2020, sec. 5).

For none, basic, positional encoding (official form: 128 frequencies per axis, scale 6)
and Gaussian sigma in {1, 10, 100} (256 frequencies, one shared draw), on the network of
the 2D notebooks (4 Dense layers, standard parameterization, width 256, W_std 1, b 0):

* a 2D image by integer frequency: for the periodic basic mapping the exact eigenvalues
  of the Gram (one FFT); for non-periodic mappings the DFT of the kernel profile on the
  grid, labelled "NTK Fourier spectrum (not eigenvalues)";
* falloff curves of exact eigenvalues against the equivalent radius
  :math:`r = \sqrt{\mathrm{rank}/\pi}` (the number of integer frequencies with
  :math:`|m| \le r` is about :math:`\pi r^2`): all N for basic (FFT), the top k by block
  Lanczos on the exact Toeplitz matvec for the others, dense ``eigh`` for no mapping
  (raw coordinates give no stationary kernel) on a smaller grid, said beside it;
* radial means of each frequency image over integer shells of :math:`|m|` with a decay
  exponent fitted over a stated range.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from ..grid import Grid
from ..io import readable, save_figure, write_json
from ..kernels import ReluMLP
from ..operators import grid_operator, structure
from ..provenance import provenance
from ..spectra import (
    decay_exponent,
    fourier_spectrum,
    grid_spectrum,
    lanczos_eigenpairs,
    radial_profile,
    spectrum,
)
from ._common import paper_mappings_2d

__all__ = ["paper_arch_2d", "run"]


def paper_arch_2d() -> ReluMLP:
    """The 2D notebooks' network: 4 x 256, standard parameterization, W_std 1, b 0."""
    return ReluMLP(4, W_std=1.0, b_std=0.0, parameterization="standard", width=256)


def _curve_ranks(n: int, dense_head: int = 200, points: int = 300) -> np.ndarray:
    """Ranks kept for a falloff curve: the first ``dense_head``, then log-spaced."""
    head = np.arange(min(n, dense_head))
    tail = np.unique(np.geomspace(dense_head, n, points).astype(int) - 1)
    return np.unique(np.concatenate([head, tail[(tail >= dense_head) & (tail < n)]]))


def _dense_entry(arch, mapping, small: Grid) -> dict:
    """Exact eigenvalues, dense eigh on the small grid (not stationary: no FFT path)."""
    lam = spectrum(arch, mapping, small)
    ranks = _curve_ranks(lam.size)
    n = small.shape[0]
    return dict(
        grid=list(small.shape),
        eigenvalue_ranks=(ranks + 1).tolist(),
        eigenvalues=lam[ranks].tolist(),
        eigenvalue_kind=f"exact, dense eigh on {n}x{n} "
        "(raw coordinates: not stationary, no FFT path)",
        image_kind=None,
    )


def _stationary_entry(arch, mapping, grid: Grid, top_k, max_dim, fit_range):
    """Eigenvalues (all by FFT if periodic, else top k by Lanczos), the image's decay.

    Returns:
        ``(entry, spec, fit)``: the JSON entry, the frequency image and its radial
        decay fit.
    """
    entry: dict = {}
    size = grid.shape[0]
    if structure(mapping, grid) == "circulant":
        spec = grid_spectrum(arch, mapping, grid)
        lam = np.sort(spec.values.reshape(-1))[::-1]
        kind = f"exact, all N (FFT), {size}x{size}"
    else:
        spec = fourier_spectrum(arch, mapping, grid)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # recorded below
            info = lanczos_eigenpairs(
                grid_operator(arch, mapping, grid), top_k, max_krylov_dim=max_dim
            )
        lam = info.eigenvalues
        rel = info.residuals / np.abs(lam)
        kind = f"top {top_k} (block Lanczos), {size}x{size}"
        if not info.converged:
            kind += f", max rel. residual {rel.max():.0e}"
        entry.update(
            lanczos_converged=info.converged,
            lanczos_max_relative_residual=float(rel.max()),
            lanczos_matvecs=info.matvecs,
        )
    prof = radial_profile(spec)
    fit = decay_exponent(prof.radius, prof.mean, fit_range=fit_range)
    ranks = _curve_ranks(lam.size)
    entry.update(
        grid=list(grid.shape),
        eigenvalue_ranks=(ranks + 1).tolist(),
        eigenvalues=lam[ranks].tolist(),
        eigenvalue_kind=kind,
        image_kind=spec.kind,
        radial_radius=prof.radius.tolist(),
        radial_mean=prof.mean.tolist(),
        radial_min=prof.minimum.tolist(),
        radial_max=prof.maximum.tolist(),
        decay_exponent=fit.exponent,
    )
    return entry, spec, fit


def spectra_2d(
    out_dir: str | Path,
    *,
    size: int = 256,
    dense_size: int = 64,
    top_k: int = 100,
    max_dim: int = 1200,
    fit_range: tuple[float, float] = (16.0, 96.0),
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Compute, write ``spectra_2d.json`` and plot ``spectra_2d.png``."""
    t0 = time.perf_counter()
    arch = paper_arch_2d()
    grid = Grid((size, size))
    small = Grid((dense_size, dense_size))
    results, images, rows = {}, {}, []
    for name, mapping in paper_mappings_2d(seed).items():
        t1 = time.perf_counter()
        if structure(mapping, grid) == "points":
            entry = _dense_entry(arch, mapping, small)
        else:
            entry, spec, fit = _stationary_entry(
                arch, mapping, grid, top_k, max_dim, fit_range
            )
            images[name] = spec.centred()[0]
            rows.append([name, spec.kind, fit.exponent, fit.rms_log_residual])
        entry["seconds"] = round(time.perf_counter() - t1, 3)
        results[name] = entry
    data = {
        "description": (
            "Spectra of the NTK of the 2D notebooks' network for the paper's mappings. "
            "Images: exact eigenvalues by frequency for periodic mappings, the NTK "
            "Fourier spectrum (|DFT| of the kernel on the grid, not eigenvalues) for "
            "the others. Falloff: exact eigenvalues against sqrt(rank / pi) (all N by "
            "FFT for basic; top k by block Lanczos, whose convergence is recorded, for "
            "the others; dense on a smaller grid for no mapping); ranks beyond 200 "
            "are log-spaced samples."
        ),
        "architecture": {
            "depth": arch.depth,
            "W_std": arch.W_std,
            "b_std": arch.b_std,
            "parameterization": arch.parameterization,
            "width": arch.width,
        },
        "sizes": {
            "grid": [size, size],
            "dense_grid_for_no_mapping": [dense_size, dense_size],
            "top_k": top_k,
            "fit_range": list(fit_range),
        },
        "results": results,
        "images_npz": "spectra_2d_images.npz",
        "tables": [
            {
                "title": "Radial decay exponent of each frequency image, mean over "
                f"shells |m| in [{fit_range[0]:g}, {fit_range[1]:g}], value ~ r^-alpha",
                "columns": ["mapping", "image", "alpha", "rms log residual"],
                "rows": rows,
            }
        ],
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": provenance(command, seed),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "spectra_2d.json", data)
    _save_images(out_dir / "spectra_2d_images.npz", images)
    _plot(data, images, out_dir / "spectra_2d.png")
    return data


def _save_images(path: Path, images: dict) -> None:
    from ..io import atomic_write

    def writer(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            # float32 is ample for the log-scale images (half the file size).
            arrays = {
                k.replace(" ", "_"): np.asarray(v, np.float32)
                for k, v in images.items()
            }
            np.savez_compressed(fh, **arrays)

    atomic_write(path, writer)


def _plot(data: dict, images: dict, path: Path) -> None:
    import matplotlib

    from ..io import agg_figure

    names = list(images)
    palette = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {n: palette[i % len(palette)] for i, n in enumerate(data["results"])}
    fig = agg_figure(figsize=(4.0 * len(names), 8.2))
    gs = fig.add_gridspec(2, len(names))
    for i, name in enumerate(names):
        ax = fig.add_subplot(gs[0, i])
        img = np.asarray(images[name])
        n = img.shape[0]
        log = np.log10(np.maximum(img / img.max(), 1e-16))
        im = ax.imshow(
            log.T,
            origin="lower",
            extent=(-n // 2 - 0.5, n - n // 2 - 0.5, -n // 2 - 0.5, n - n // 2 - 0.5),
            vmin=max(log.min(), -12),
            vmax=0,
            cmap="magma",
        )
        kind = data["results"][name]["image_kind"]
        short = (
            "exact eigenvalues"
            if "exact" in kind
            else "NTK Fourier spectrum\n(not eigenvalues)"
        )
        ax.set_title(f"{name}\n{short}", fontsize=9)
        ax.set_xlabel("m1")
        ax.set_ylabel("m2")
        fig.colorbar(im, ax=ax, fraction=0.046, label="log10(value / max)")
    ax = fig.add_subplot(gs[1, : max(1, len(names) // 2)])
    for name, r in data["results"].items():
        lam = np.asarray(r["eigenvalues"])
        rad = np.sqrt(np.asarray(r["eigenvalue_ranks"]) / np.pi)
        pos = lam > 1e-13 * lam.max()
        ax.loglog(
            rad[pos],
            lam[pos] / lam[0],
            color=color[name],
            label=f"{name}: {r['eigenvalue_kind']}",
        )
    ax.set(
        xlabel="equivalent radius sqrt(rank / pi)",
        ylabel="eigenvalue / largest",
        title="exact eigenvalues of the Gram",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[1, max(1, len(names) // 2) :])
    for name in names:
        r = data["results"][name]
        mean = np.asarray(r["radial_mean"])
        lab = "eigenvalues" if "exact" in r["image_kind"] else "Fourier spectrum"
        ax.loglog(
            np.asarray(r["radial_radius"])[1:],
            mean[1:] / mean.max(),
            color=color[name],
            label=f"{name} ({lab}), alpha={r['decay_exponent']:.2f}",
        )
    lo, hi = data["sizes"]["fit_range"]
    ax.axvspan(lo, hi, color="0.9", zorder=0)
    ax.set(
        xlabel="|m| (integer shells)",
        ylabel="shell mean / max",
        title=f"radial falloff of the images (fit over |m| in [{lo:g}, {hi:g}])",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    readable(fig, fontsize=12)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(
    out_dir: str | Path = "figures/spectra",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Write ``spectra_2d.json``, ``spectra_2d_images.npz`` and ``spectra_2d.png``.

    ``quick=True`` uses a 64 x 64 grid, top 20 eigenvalues and no mapping on 24 x 24;
    the full size is 256 x 256, top 100, no mapping on 64 x 64.
    """
    out_dir = Path(out_dir)
    if quick:
        data = spectra_2d(
            out_dir,
            size=64,
            dense_size=24,
            top_k=20,
            fit_range=(4.0, 24.0),
            seed=seed,
            command=command,
        )
        data_reduced = (
            "64x64 grid, top 20, no mapping on 24x24 (full: 256x256, top 100, 64x64)"
        )
    else:
        data = spectra_2d(out_dir, seed=seed, command=command)
        data_reduced = None
    if data_reduced:
        data["reduced"] = data_reduced
        write_json(out_dir / "spectra_2d.json", data)
    return {
        "json": str(out_dir / "spectra_2d.json"),
        "png": str(out_dir / "spectra_2d.png"),
        "npz": str(out_dir / "spectra_2d_images.npz"),
        "seconds": data["seconds"],
    }
