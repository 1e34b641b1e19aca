"""The scale_suggestion study: suggested sigma vs NTK at t = inf vs FreSh vs networks.

Writes figures/design/scale_suggestion.{json,png}; reads the network sweep
figures/design/networks_cpu.json (``python analysis/design_networks.py``).
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "scale_suggestion", "fig_scale_suggestion", __doc__, "figures/design", argv
    )


if __name__ == "__main__":
    sys.exit(main())
