"""The validation job (``ntkspec validate``): theory vs finite networks, trained.

Runs three studies into one folder and writes a short markdown summary with the device,
the JAX version and the timings:

1. :mod:`ntkspec.studies.ntk_convergence`: the empirical NTK tends to the analytic NTK
   with relative error ~ width^-1/2;
2. :mod:`ntkspec.studies.dynamics_validation`: GD-trained networks follow
   :func:`ntkspec.gd_dynamics` predicted from their step-0 outputs, more closely as the
   width grows;
3. :mod:`ntkspec.studies.table1_networks`: Tancik et al.'s Table 1 (2D images) with
   trained networks, the sigma sweep and reconstructions;
4. on request (``studies=(..., "mode_gap")``; the report's reduced run includes it):
   :mod:`ntkspec.studies.mode_gap`, the gap between networks and theory per eigenmode,
   split into finite-width kernel, kernel drift and float32 round-off.

Sizes: ``"quick"`` (about a minute on a 2-core CPU), ``"full"`` (CPU-sized, about 15
minutes), ``"gpu"`` (the paper's sizes; the default for a full run when JAX sees a GPU),
``"tiny"`` (tests). Every output names the device it ran on; reduced runs say so.
"""

from __future__ import annotations

import time
from pathlib import Path

from .io import atomic_write, write_json
from .provenance import provenance

__all__ = ["SIZES", "default_size", "run_validation"]

SIZES = ("tiny", "quick", "full", "gpu")


def default_size(quick: bool = False) -> str:
    """The run size: ``"quick"`` if asked, else ``"gpu"`` or ``"full"`` by device.

    ``"gpu"`` when JAX's default backend is a GPU, else ``"full"`` (the CPU-sized run).
    """
    if quick:
        return "quick"
    import jax

    return "gpu" if jax.default_backend() in ("gpu", "cuda", "rocm") else "full"


def run_validation(
    out_dir: str | Path = "figures/validation",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
    size: str | None = None,
    studies: tuple[str, ...] = ("ntk_convergence", "dynamics_validation", "table1"),
) -> dict:
    """Run the validation studies into ``out_dir``; write ``summary.md`` and JSON.

    Args:
        out_dir: output folder (created).
        quick: the reduced CPU version (``size="quick"``).
        seed: seed of data, mappings and initialisations.
        command: the command line recorded in every JSON's provenance.
        size: ``"tiny"``, ``"quick"``, ``"full"`` or ``"gpu"``; overrides ``quick``
            (default: :func:`default_size`).
        studies: which studies to run (names as in the default, and
            ``"mode_gap"``).

    Returns:
        name -> what each study wrote (paths, headline numbers, seconds), plus
        ``"summary"`` (the markdown path) and ``"seconds"``.

    Raises:
        ValueError: unknown ``size`` or study name.
    """
    from .studies import dynamics_validation, mode_gap, ntk_convergence, table1_networks

    size = size or default_size(quick)
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}")
    runners = {
        "ntk_convergence": ntk_convergence.run,
        "dynamics_validation": dynamics_validation.run,
        "table1": table1_networks.run,
        "mode_gap": mode_gap.run,
    }
    unknown = [s for s in studies if s not in runners]
    if unknown:
        raise ValueError(f"studies must be among {tuple(runners)}; got {unknown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    written = {}
    for name in studies:
        written[name] = runners[name](out_dir, seed=seed, command=command, size=size)
    prov = provenance(command, seed)
    total = round(time.perf_counter() - t0, 3)
    index = dict(
        size=size,
        device=prov["device"],
        jax=prov["jax"],
        seconds=total,
        load_average=_load_average(),
        studies={
            k: {kk: vv for kk, vv in v.items() if kk != "markdown"}
            for k, v in written.items()
        },
        provenance=prov,
    )
    write_json(out_dir / "validation.json", index)
    summary = _summary_markdown(out_dir, size, prov, written, total)
    atomic_write(out_dir / "summary.md", lambda tmp: Path(tmp).write_text(summary))
    written["summary"] = str(out_dir / "summary.md")
    written["seconds"] = total
    return written


def _load_average() -> str:
    import os

    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not available on every platform
        return "n/a"


def _summary_markdown(
    out_dir: Path, size: str, prov: dict, written: dict, total: float
) -> str:
    import json

    cpu = prov["platform"] == "cpu"
    lines = [
        "# ntkspec validation: theory against trained finite networks",
        "",
        f"- device: **{prov['device']}**"
        + (" (CPU run: all numbers are CPU numbers)" if cpu else ""),
        f"- size: `{size}`" + (" (reduced)" if size != "gpu" else ""),
        f"- JAX {prov['jax']}, ntkspec {prov['ntkspec']}, Python {prov['python']}",
        f"- machine: {prov['machine']}, {prov['cpu_cores']} CPU cores; load average "
        f"at the end {_load_average()} (timings on a shared machine vary with it)",
        f"- date: {prov['date']}; command: `{prov['command']}`",
        f"- total time: {total:.1f} s",
        "",
    ]
    if "ntk_convergence" in written:
        d = json.loads((out_dir / "ntk_convergence.json").read_text())
        lines += [
            "## Empirical NTK → analytic NTK "
            f"({written['ntk_convergence']['seconds']:.1f} s)",
            "",
            "| width | " + " | ".join(str(w) for w in d["widths"]) + " |",
            "|---|" + "---|" * len(d["widths"]),
            "| rel. Frobenius error (mean) | "
            + " | ".join(f"{e:.3g}" for e in d["mean_error"])
            + " |",
            "",
            f"Fitted log-log slope {d['slope']:.3f} ± {d['slope_stderr']:.3f} "
            "(theory −1/2).",
            "",
        ]
    if "dynamics_validation" in written:
        d = json.loads((out_dir / "dynamics_validation.json").read_text())
        lines += [
            "## GD-trained networks vs `gd_dynamics` from step-0 outputs "
            f"({written['dynamics_validation']['seconds']:.1f} s)",
            "",
        ]
        for name, t in d["tasks"].items():
            lines += [
                f"**{name}** ({t['description']}; {t['steps']} GD steps, lr "
                f"{t['learning_rate']:.4g}, depth {t['architecture']['depth']})",
                "",
                "| gap (max over steps) | "
                + " | ".join(f"w={w}" for w in t["widths"])
                + " | slope |",
                "|---|" + "---|" * (len(t["widths"]) + 1),
            ]
            for g, v in t["gap_summary"].items():
                sl = "–" if v["slope"] is None else f"{v['slope']:.2f}"
                lines.append(
                    f"| {g} | "
                    + " | ".join(f"{x:.3g}" for x in v["mean_per_width"])
                    + f" | {sl} |"
                )
            lines.append("")
    if "mode_gap" in written:
        lines += _mode_gap_markdown(out_dir, written["mode_gap"]["seconds"])
    if "table1" in written:
        d = json.loads((out_dir / "table1_networks.json").read_text())
        lines += [
            f"## Table 1 with networks ({written['table1']['seconds']:.1f} s)",
            "",
            written["table1"]["markdown"],
            "σ sweep (Gaussian mapping, "
            + d["sigma_sweep"]["image"]
            + "): "
            + ", ".join(
                f"σ={r['sigma']:g}: {r['psnr_heldout']:.2f} dB"
                for r in d["sigma_sweep"]["runs"]
            ),
            "",
        ]
    lines += [
        "Figures: " + ", ".join(sorted(p.name for p in out_dir.glob("*.png"))),
        "",
    ]
    return "\n".join(lines)


def _mode_gap_markdown(out_dir: Path, seconds: float) -> list[str]:
    import json

    d = json.loads((out_dir / "mode_gap.json").read_text())
    lines = [f"## Per-mode gap: kernel, drift, round-off ({seconds:.1f} s)", ""]
    for table in d["tables"]:
        lines += [
            f"**{table['title']}**",
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "|---" * len(table["columns"]) + "|",
        ]
        for row in table["rows"]:
            cells = [
                "–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                for v in row
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines
