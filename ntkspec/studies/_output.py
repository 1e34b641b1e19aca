"""Shared tail of the studies' ``run``: stamp the data, write its JSON, plot from it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._io import write_json
from ..provenance import provenance


def write_study(
    out_dir: str | Path,
    name: str,
    data: dict,
    plot: Callable[[dict, Path], None],
    *,
    started: float,
    quick: bool,
    seed: int,
    command: str | None,
    **fields,
) -> dict:
    """Stamp ``data``, then write ``<name>.json`` and ``<name>.png`` into ``out_dir``.

    ``fields``, ``quick``, ``seconds`` and the provenance are added to ``data``; the
    figure is drawn from the data as written.

    Returns:
        ``{"json": path, "png": path, "seconds": s}``, what ``run`` returns.
    """
    out_dir = Path(out_dir)
    data.update(
        fields,
        quick=quick,
        seconds=round(time.perf_counter() - started, 2),
        provenance=provenance(command, seed),
    )
    write_json(out_dir / f"{name}.json", data)
    plot(data, out_dir / f"{name}.png")
    return {
        "json": str(out_dir / f"{name}.json"),
        "png": str(out_dir / f"{name}.png"),
        "seconds": data["seconds"],
    }


def format_stat(stat: dict | None, digits: int = 2) -> str:
    """``mean ± std (n = k)`` for a ``{"mean", "std", "per_image" | "n"}`` entry.

    One run shows ``mean (n = 1)`` (no ``± 0``); a missing or non-finite entry "–".
    """
    import math

    if not stat or not math.isfinite(float(stat.get("mean", math.nan))):
        return "–"
    n = stat.get("n", len(stat.get("per_image", [])) or None)
    text = f"{stat['mean']:.{digits}f}"
    if n != 1 and stat.get("std") is not None:
        text += f" ± {stat['std']:.{digits}f}"
    return text + (f" (n = {n})" if n else "")


def per_image_stat(values) -> dict:
    """``{"mean", "std", "per_image"}`` of per-image numbers (population std)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "per_image": v.tolist()}
