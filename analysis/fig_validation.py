"""The validation figures (theory vs trained networks): ``ntkspec.validation``.

Usage: ``python -m analysis.fig_validation [--quick] [--size SIZE] [--out DIR]``;
the default size is "gpu" when JAX sees a GPU and the CPU-sized "full" otherwise.
"""

from __future__ import annotations

import argparse
import sys

from ntkspec.validation import SIZES, run_validation


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reduced CPU version (~1 min)")
    p.add_argument(
        "--size",
        choices=SIZES,
        default=None,
        help="tiny / quick / full (CPU-sized) / gpu (paper sizes)",
    )
    p.add_argument("--out", default="figures/validation", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    written = run_validation(
        args.out,
        quick=args.quick,
        size=args.size,
        seed=args.seed,
        command="python -m analysis.fig_validation " + " ".join(argv),
    )
    for name, info in written.items():
        if isinstance(info, dict):
            info = {k: v for k, v in info.items() if k != "markdown"}
        print(f"{name}: {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
