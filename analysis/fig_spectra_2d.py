"""2D spectra of the paper's mappings on a 256 x 256 grid.

Usage: ``python -m analysis.fig_spectra_2d [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main("spectra_2d", "fig_spectra_2d", __doc__, "figures/spectra", argv)


if __name__ == "__main__":
    sys.exit(main())
