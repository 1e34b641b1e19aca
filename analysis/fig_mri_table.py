"""Table 1, MRI column (3D Shepp-Logan, k-space mask) by NTK regression (issue 15).

Writes JSON and the figure under figures/mri/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main("mri_table", "fig_mri_table", __doc__, "figures/mri", argv)


if __name__ == "__main__":
    sys.exit(main())
