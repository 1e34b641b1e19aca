"""Provenance of generated numbers: command, versions, device, date, seed."""

from __future__ import annotations

import datetime
import platform
import sys

__all__ = ["provenance"]


def provenance(command: str | None = None, seed: int | None = None) -> dict:
    """A JSON-able record of how and where a result was made."""
    import jax
    import numpy as np

    from . import __version__

    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", "") or platform.processor() or platform.machine()
    device = f"{dev.platform.upper()}: {kind}"
    try:
        import os

        cores = os.cpu_count()
    except Exception:  # pragma: no cover
        cores = None
    return {
        "command": command if command is not None else " ".join(sys.argv),
        "ntkspec": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": device,
        "platform": dev.platform,
        "cpu_cores": cores,
        "machine": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": seed,
    }
