"""Held-out PSNR against training time per mapping: ``ntkspec.studies.psnr_vs_time``.

Usage: ``python -m analysis.fig_psnr_vs_time [--quick] [--size SIZE] [--out DIR]``.
Sizes: tiny / quick (64² -> 128² crops, the report's size) / full (the paper's
256² -> 512² task, default; a few minutes on a 2-core CPU). Writes psnr_vs_time.json
and .png under figures/dynamics/.
"""

from __future__ import annotations

import argparse
import json
import sys

from ntkspec.studies.psnr_vs_time import SIZES, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 'quick' size")
    p.add_argument("--size", choices=sorted(SIZES), default=None, help="run size")
    p.add_argument(
        "--out",
        default="figures/dynamics",
        help="output folder (default: figures/dynamics)",
    )
    p.add_argument("--seed", type=int, default=0, help="Gaussian B seed (default 0)")
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    written = run(
        args.out,
        quick=args.quick,
        size=args.size,
        seed=args.seed,
        command=" ".join(["python -m analysis.fig_psnr_vs_time", *argv]),
    )
    print(json.dumps(written, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
