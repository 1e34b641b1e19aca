"""2D spectra of the paper's mappings on a 256 x 256 grid.

Usage: ``python -m analysis.fig_spectra_2d [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="figures/spectra")
    args = parser.parse_args(argv)
    from ntkspec.studies import spectra_2d

    command = " ".join(
        ["python -m analysis.fig_spectra_2d"]
        + (argv if argv is not None else sys.argv[1:])
    )
    out = spectra_2d.run(args.out, quick=args.quick, seed=0, command=command)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
