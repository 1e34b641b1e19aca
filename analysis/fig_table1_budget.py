"""Table 1 at the networks' training budget: ``ntkspec.studies.table1_budget``.

Usage: ``python -m analysis.fig_table1_budget [--quick] [--size SIZE] [--out DIR]``.
Sizes: tiny / quick / cpu (the committed CPU run, default) / gpu (the paper's 512 x 512
task, run by ``analysis/gpu_run.sh``). Writes table1_budget.json, .md and .png under
figures/regression/ (the CPU run: figures/regression/table1_budget_cpu/).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ntkspec.studies.table1_budget import SIZES, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 'quick' size")
    p.add_argument("--size", choices=sorted(SIZES), default=None, help="run size")
    p.add_argument(
        "--out",
        default="figures/regression/table1_budget_cpu",
        help="output folder (default: figures/regression/table1_budget_cpu)",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    written = run(
        args.out,
        quick=args.quick,
        size=args.size,
        seed=args.seed,
        command=" ".join(["python -m analysis.fig_table1_budget", *argv]),
    )
    print(json.dumps(written, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
