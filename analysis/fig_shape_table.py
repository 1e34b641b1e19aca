"""Table 1, 3D shape column (occupancy IoU) by NTK regression (issue 15).

Writes JSON and the figure under figures/shapes/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main("shape_table", "fig_shape_table", __doc__, "figures/shapes", argv)


if __name__ == "__main__":
    sys.exit(main())
