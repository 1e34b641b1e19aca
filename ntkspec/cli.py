"""The ``ntkspec`` console script: a thin layer that parses, calls the library, writes files.

Usage errors print one line (no traceback) and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntkspec",
        description=(
            "Spectral analysis of coordinate MLPs with Fourier-feature inputs "
            "(Tancik et al. 2020): infinite-width NTK/NNGP kernels, spectra, kernel "
            "regression, and checks against trained networks."
        ),
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "report",
        help="regenerate the headline figures and JSON on built-in defaults",
        description="Regenerate the headline figures (with the JSON of their numbers).",
    )
    r.add_argument("--out", default="figures", help="output folder (default: figures)")
    r.add_argument("--quick", action="store_true", help="reduced sizes, for a fast check")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pr = sub.add_parser(
        "profiles",
        help="plot the NTK against the coordinate offset for the paper's mappings",
    )
    pr.add_argument("--out", default="figures/profiles", help="output folder")
    pr.add_argument("--depth", type=int, default=4, help="Dense layers (default 4)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the Gaussian mapping")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    command = "ntkspec " + " ".join(argv)
    try:
        if args.command == "report":
            from .report import run_report

            written = run_report(args.out, quick=args.quick, seed=args.seed,
                                 command=command)
            for name, info in written.items():
                print(f"{name}: {info}")
        elif args.command == "profiles":
            if args.depth < 1:
                raise _UsageError(f"--depth must be >= 1; got {args.depth}")
            from .studies.profiles import ntk_profiles

            ntk_profiles(args.out, depth=args.depth, seed=args.seed, command=command)
            print(f"wrote {args.out}/ntk_profiles.png and ntk_profiles.json")
        else:
            parser.print_help()
            return 2
    except (_UsageError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"ntkspec {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
