"""Numbers and settings of Tancik et al. (2020) that several studies compare against.

Source: the official notebook ``Experiments/2d_image_regression.ipynb`` (its "Paper
Experiments" cell output), as recorded in the project's reference notes.
"""

from __future__ import annotations

#: Table 1, 2D image regression, PSNR dB (mean, std) with trained 4 x 256 networks.
PAPER_TABLE1 = {
    "natural": {
        "none": (19.32, 2.48),
        "basic": (21.72, 2.72),
        "positional": (24.95, 3.72),
        "gaussian": (25.57, 4.19),
    },
    "text": {
        "none": (18.40, 2.34),
        "basic": (20.48, 1.96),
        "positional": (27.57, 3.07),
        "gaussian": (30.47, 2.11),
    },
}
#: Row order of Table 1.
MAPPING_NAMES = ("none", "basic", "positional", "gaussian")
#: The paper's best scales per image set: Gaussian sigma, positional-encoding scale S.
SCALES = {
    "natural": dict(sigma=10.0, pe_scale=6.0),
    "text": dict(sigma=14.0, pe_scale=5.0),
}
