"""The 1D study: test error against p and gradient-flow training curves.

Writes JSON and figures under figures/regression/.
"""

from __future__ import annotations

import argparse
import json
import sys

from ntkspec.studies import learning_1d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small, fast settings")
    parser.add_argument("--out", default="figures/regression", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = "python -m analysis.fig_learning_1d " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    written = learning_1d.run(
        args.out, quick=args.quick, seed=args.seed, command=command
    )
    print(json.dumps(written, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
