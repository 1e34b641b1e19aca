"""Train/test PSNR of NTK regression against the Gaussian scale sigma.

Writes JSON and figures under figures/regression/.
"""

from __future__ import annotations

import sys

from analysis._study import study_main


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "sigma_sweep", "fig_sigma_sweep", __doc__, "figures/regression", argv
    )


if __name__ == "__main__":
    sys.exit(main())
