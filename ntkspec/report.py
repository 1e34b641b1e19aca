"""The main job (``ntkspec report``): run every study at report size into one folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_report"]


def run_report(
    out: str | Path = "figures",
    *,
    quick: bool = False,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Run each study into ``out``; return what each wrote."""
    from .studies import profiles

    out = Path(out)
    return {
        "ntk_profiles": profiles.run(
            out / "profiles", quick=quick, seed=seed, command=command
        ),
    }
