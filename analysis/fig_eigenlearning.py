"""Eigenlearning prediction vs measured NTK-regression test MSE against n.

Writes JSON and figures under figures/regression/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "eigenlearning", "fig_eigenlearning", __doc__, "figures/regression", argv
    )


if __name__ == "__main__":
    sys.exit(main())
