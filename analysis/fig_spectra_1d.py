"""Paper Fig. 2 style 1D spectra.

Usage: ``python -m analysis.fig_spectra_1d [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main("spectra_1d", "fig_spectra_1d", __doc__, "figures/spectra", argv)


if __name__ == "__main__":
    sys.exit(main())
