"""Per-mode gap between trained networks and the NTK theory: ntkspec.studies.mode_gap.

Usage::

    python -m analysis.fig_mode_gap [--size SIZE] [--quick] [--out DIR] [--seed N]
                                    [--runs-dir DIR] [--summarize-only] [--tasks 1d 2d]

Writes ``mode_gap.json`` and ``mode_gap_<task>.png`` into ``--out`` (default
figures/validation/mode_gap, or its quick/ with --quick) and one checkpoint JSON per
(task, width, key) into ``--runs-dir`` (default ``<out>/runs``): an interrupted run
resumes where it stopped; ``--summarize-only`` rebuilds the JSON and figures from the
checkpoints without training. The default size is "full" (CPU-sized).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ntkspec.studies import mode_gap

DEFAULT_OUT = "figures/validation/mode_gap"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m analysis.fig_mode_gap", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="the reduced size 'quick'")
    p.add_argument("--size", choices=tuple(mode_gap.SIZES), default=None)
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--runs-dir", default=None, help="checkpoints (default <out>/runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summarize-only", action="store_true", help="no training")
    p.add_argument("--tasks", nargs="+", choices=("1d", "2d"), default=["1d", "2d"])
    args = p.parse_args(argv)
    out = Path(args.out or (f"{DEFAULT_OUT}/quick" if args.quick else DEFAULT_OUT))
    try:
        written = mode_gap.run(
            out,
            quick=args.quick,
            size=args.size,
            seed=args.seed,
            command="python -m analysis.fig_mode_gap " + " ".join(argv),
            runs_dir=args.runs_dir or out / "runs",
            summarize_only=args.summarize_only,
            task_names=tuple(args.tasks),
            log=lambda text: print(text, flush=True),
        )
    except ValueError as err:
        print(f"fig_mode_gap: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(written, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
