r"""Convergence of the empirical NTK of finite networks to the analytic NTK with width.

For a network of hidden width n in the "ntk" parameterization the empirical NTK at
initialisation fluctuates around the infinite-width kernel with relative size
:math:`O(n^{-1/2})` (Jacot et al. 2018; Hanin & Nica 2019): the relative Frobenius error

.. math:: e(n) = \|\hat\Theta_n - \Theta\|_F / \|\Theta\|_F

should fall on a log-log line of slope -1/2. The study uses the paper's 1D setting (the
dense power-law mapping :math:`b_j = j`, :math:`a_j = j^{-1}`, j = 1..16, normalised, on
a grid of [0, 1)) and a 4-layer ReLU MLP with a bias, and reports e(n) per seed, the
mean over seeds and the fitted slope.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Hanin & Nica, "Finite Depth and Width Corrections to the Neural Tangent Kernel",
    ICLR 2020, arXiv:1909.05989.
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
from ..networks import empirical_ntk, mlp
from ..provenance import provenance
from ._common import fit_loglog_slope

__all__ = ["SIZES", "ntk_convergence", "fit_loglog_slope", "run"]

#: Sizes by run mode: widths, seeds per width, number of grid points.
SIZES = {
    "tiny": dict(widths=(16, 64), seeds=2, num_points=8),
    "quick": dict(widths=(64, 128, 256, 512, 1024), seeds=8, num_points=16),
    "full": dict(
        widths=(64, 128, 256, 512, 1024, 2048, 4096, 8192), seeds=8, num_points=32
    ),
}
SIZES["gpu"] = SIZES["full"]


def ntk_convergence(
    *,
    widths=SIZES["full"]["widths"],
    seeds: int = 3,
    num_points: int = 32,
    depth: int = 4,
    seed: int = 0,
    dtype=np.float32,
) -> dict:
    """Relative Frobenius error of the empirical NTK against width (data, no files)."""
    arch = ReluMLP(depth, W_std=math.sqrt(2.0), b_std=0.1)
    mapping = mappings.power_law(16, 1.0, normalize=True)
    v = np.linspace(0.0, 1.0, num_points, endpoint=False)[:, None]
    theory = np.asarray(ntk(arch, mapping(v)))
    norm = np.linalg.norm(theory)
    errors, seconds = [], []
    example = {}
    for width in widths:
        net = mlp(arch, mapping, int(width), dtype=dtype)
        per_seed = []
        t0 = time.perf_counter()
        for s in range(seeds):
            params = net.init(jax.random.PRNGKey(1000 * seed + s))
            k_hat = np.asarray(
                empirical_ntk(net, params, v, implementation="structured"), np.float64
            )
            per_seed.append(float(np.linalg.norm(k_hat - theory) / norm))
            if s == 0 and width in (widths[0], widths[-1]):
                example[str(width)] = k_hat[num_points // 2].tolist()
            del params
        seconds.append(time.perf_counter() - t0)
        errors.append(per_seed)
    mean = np.mean(errors, axis=1)
    slope, intercept, slope_se = fit_loglog_slope(widths, mean)
    return {
        "description": (
            "Relative Frobenius error ||K_hat - K||_F / ||K||_F of the empirical NTK "
            "of "
            "finite ReLU MLPs ('ntk' parameterization) against the analytic NTK, at "
            "initialisation, vs hidden width; theory slope -1/2."
        ),
        "architecture": {
            "depth": depth,
            "W_std": arch.W_std,
            "b_std": arch.b_std,
            "parameterization": arch.parameterization,
        },
        "mapping": "power_law(16, p=1, normalize=True) (b_j = j, a_j = 1/j)",
        "num_points": num_points,
        "network_dtype": np.dtype(dtype).name,
        "widths": [int(w) for w in widths],
        "errors": errors,
        "mean_error": mean.tolist(),
        "slope": slope,
        "slope_stderr": slope_se,
        "intercept": intercept,
        "theory_slope": -0.5,
        "kernel_row_index": num_points // 2,
        "theory_row": theory[num_points // 2].tolist(),
        "empirical_rows": example,
        "seconds_per_width": seconds,
    }


def _plot(data: dict, path: Path, label: str) -> None:
    from ..io import agg_subplots

    widths = np.asarray(data["widths"], float)
    errs = np.asarray(data["errors"])
    fig, axes = agg_subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for j in range(errs.shape[1]):
        ax.loglog(widths, errs[:, j], "o", color="C0", alpha=0.4, ms=4)
    ax.loglog(widths, data["mean_error"], "o-", color="C0", label="mean over seeds")
    fit = np.exp(data["intercept"]) * widths ** data["slope"]
    ax.loglog(
        widths,
        fit,
        "--",
        color="C1",
        label=f"fit slope {data['slope']:.3f} ± {data['slope_stderr']:.3f}",
    )
    ref = data["mean_error"][0] * (widths / widths[0]) ** -0.5
    ax.loglog(widths, ref, ":", color="k", label="slope -1/2")
    ax.set_xlabel("hidden width")
    ax.set_ylabel("||K̂ - K||_F / ||K||_F")
    ax.set_title("empirical NTK → analytic NTK")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    x = np.linspace(0, 1, data["num_points"], endpoint=False)
    ax.plot(x, data["theory_row"], "k-", lw=2, label="analytic NTK")
    for w, row in data["empirical_rows"].items():
        ax.plot(x, row, "o--", ms=3, label=f"empirical, width {w}")
    ax.set_xlabel("v'")
    ax.set_title(f"K(v = {x[data['kernel_row_index']]:.2f}, v')")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(label, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(
    out_dir: str | Path = "figures/validation",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
) -> dict:
    """Write ``ntk_convergence.json`` and ``.png`` into ``out_dir``.

    Args:
        out_dir: output folder.
        quick: reduced widths and points (``size="quick"``).
        seed: base seed of the initialisations.
        command: the command line recorded in the provenance.
        size: ``"tiny"`` / ``"quick"`` / ``"full"`` (overrides ``quick``).
    """
    size = size or ("quick" if quick else "full")
    t0 = time.perf_counter()
    # full float32 matmuls on accelerators (no TF32): the errors measured are ~1e-2
    with jax.default_matmul_precision("highest"):
        data = ntk_convergence(**SIZES[size], seed=seed)
    prov = provenance(command, seed)
    data["size"] = size
    if size != "gpu":
        data["size_note"] = (
            f"size {size!r}: widths {list(data['widths'])}, {SIZES[size]['seeds']} "
            f"seeds, {data['num_points']} points, on {prov['device']}"
        )
    errs = np.asarray(data["errors"])
    data["tables"] = [
        dict(
            title="Relative Frobenius error of the empirical NTK vs width",
            columns=["width", "error (mean ± std over seeds)"],
            rows=[
                [w, dict(mean=float(e.mean()), std=float(e.std()))]
                for w, e in zip(data["widths"], errs, strict=True)
            ],
            note=(
                f"fitted log-log slope {data['slope']:.3f} ± "
                f"{data['slope_stderr']:.3f} (theory -1/2); {prov['device']}"
            ),
        )
    ]
    data["seconds"] = round(time.perf_counter() - t0, 3)
    data["provenance"] = prov
    out_dir = Path(out_dir)
    write_json(out_dir / "ntk_convergence.json", data)
    label = f"{prov['device']} · size={size} · jax {prov['jax']}"
    _plot(data, out_dir / "ntk_convergence.png", label)
    return {
        "json": str(out_dir / "ntk_convergence.json"),
        "png": str(out_dir / "ntk_convergence.png"),
        "slope": data["slope"],
        "seconds": data["seconds"],
    }
