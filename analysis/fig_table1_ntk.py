"""Table 1 (2D image regression) by infinite-width NTK regression.

Writes JSON and figures under figures/regression/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "regression_table", "fig_table1_ntk", __doc__, "figures/regression", argv
    )


if __name__ == "__main__":
    sys.exit(main())
