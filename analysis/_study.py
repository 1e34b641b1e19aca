"""The shared command line of the figure scripts: run one study at full size."""

from __future__ import annotations

import argparse
import importlib
import json
import sys


def study_main(
    study: str, script: str, description: str, default_out: str, argv=None
) -> int:
    """Parse ``--quick --out --seed`` and call ``ntkspec.studies.<study>.run``.

    ``--quick`` without ``--out`` writes to ``<default_out>/quick`` (git-ignored), so
    a smoke run never overwrites the committed full-size results.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m analysis.{script}", description=description
    )
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    parser.add_argument(
        "--out",
        default=None,
        help=f"output folder (default: {default_out}, or its quick/ with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    command = " ".join(
        [f"python -m analysis.{script}"] + list(sys.argv[1:] if argv is None else argv)
    )
    out = args.out or (f"{default_out}/quick" if args.quick else default_out)
    module = importlib.import_module(f"ntkspec.studies.{study}")
    written = module.run(out, quick=args.quick, seed=args.seed, command=command)
    print(json.dumps(written, indent=1, default=str))
    return 0
