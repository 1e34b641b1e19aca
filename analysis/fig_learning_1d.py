"""The 1D study: test error against p and gradient-flow training curves.

Writes JSON and figures under figures/regression/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "learning_1d", "fig_learning_1d", __doc__, "figures/regression", argv
    )


if __name__ == "__main__":
    sys.exit(main())
