"""NTK of a 4-layer ReLU MLP against the coordinate offset for the paper's 2D mappings.

Tancik et al. 2020, Fig. 2 style: the kernel of each mapping as a function of the
offset,
with the plotted numbers as JSON beside the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..io import save_figure, write_json
from ..kernels import ReluMLP, ntk, profile
from ..provenance import provenance
from ._common import paper_mappings_2d

__all__ = ["paper_mappings_2d", "stationary_ntk", "ntk_profiles", "run"]


def stationary_ntk(arch: ReluMLP, mapping, delta: np.ndarray, kernel: str = "ntk"):
    """k(delta) of a Fourier mapping through the scalar profile (no features formed)."""
    m = mapping.num_freqs
    return np.asarray(
        profile(
            arch,
            mapping.sin2_half_angle(delta),
            input_var=mapping.norm_sq / (2 * m),
            input_dim=2 * m,
            kernel=kernel,
        )
    )


def ntk_profiles(
    out_dir: str | Path = "figures/profiles",
    *,
    depth: int = 4,
    num_offsets: int = 1001,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Compute and plot the NTK against the offset along the first axis.

    Stationary (Fourier) mappings use k(Delta) from the profile; "none" (raw
    coordinates,
    not stationary) uses k(v0 + Delta, v0) at the centre v0 = (0.5, 0.5). Each curve is
    also given normalised by its value at Delta = 0.

    Returns:
        The data written to ``ntk_profiles.json``.
    """
    t0 = time.perf_counter()
    arch = ReluMLP(depth)
    offsets = np.linspace(-0.5, 0.5, num_offsets)
    delta = np.stack([offsets, np.zeros_like(offsets)], axis=1)
    curves = {}
    for name, mapping in paper_mappings_2d(seed).items():
        if mapping.is_stationary:
            k = stationary_ntk(arch, mapping, delta)
        else:
            v0 = np.array([[0.5, 0.5]])
            k = np.asarray(ntk(arch, mapping(v0 + delta), mapping(v0)))[:, 0]
        curves[name] = {
            "ntk": k.tolist(),
            "ntk_normalised": (k / k[num_offsets // 2]).tolist(),
            "stationary": bool(mapping.is_stationary),
        }
    data = {
        "description": (
            "NTK of a ReLU MLP (depth Dense layers) against the coordinate offset "
            "Delta = (delta, 0) for the paper's 2D mappings; 'none' is evaluated at "
            "k(v0 + Delta, v0), v0 = (0.5, 0.5), since raw coordinates are "
            "not stationary."
        ),
        "architecture": {
            "depth": depth,
            "W_std": arch.W_std,
            "b_std": arch.b_std,
            "parameterization": arch.parameterization,
        },
        "offsets": offsets.tolist(),
        "curves": curves,
        "seconds": round(time.perf_counter() - t0, 3),
        "provenance": provenance(command, seed),
    }
    out_dir = Path(out_dir)
    write_json(out_dir / "ntk_profiles.json", data)
    _plot_profiles(data, out_dir / "ntk_profiles.png")
    return data


def _plot_profiles(data: dict, path: Path) -> None:
    from ..io import agg_subplots

    offsets = np.asarray(data["offsets"])
    fig, axes = agg_subplots(1, 2, figsize=(11, 4))
    for name, c in data["curves"].items():
        style = "--" if not c["stationary"] else "-"
        axes[0].plot(offsets, c["ntk_normalised"], style, label=name, lw=1.2)
        axes[1].plot(offsets, c["ntk_normalised"], style, label=name, lw=1.2)
    axes[0].set_title(
        f"NTK(Δ) / NTK(0), depth {data['architecture']['depth']} ReLU MLP"
    )
    axes[1].set_xlim(-0.05, 0.05)
    axes[1].set_title("zoom near Δ = 0")
    for ax in axes:
        ax.set_xlabel("offset δ along x (Δ = (δ, 0))")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("normalised NTK")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(
    out_dir: str | Path = "figures/profiles",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Write ``ntk_profiles.json`` and ``ntk_profiles.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    data = ntk_profiles(
        out_dir, seed=seed, num_offsets=401 if quick else 1001, command=command
    )
    return {
        "json": str(out_dir / "ntk_profiles.json"),
        "png": str(out_dir / "ntk_profiles.png"),
        "seconds": data["seconds"],
    }
