"""Private: ``scipy`` whose ``linalg`` is imported on first use.

The dense solves themselves live in :mod:`ntkspec.linalg.dense`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["scipy"]


class _LazySciPy:
    """``scipy`` whose ``linalg`` is imported on first use, not at ``import ntkspec``.

    ``scipy.linalg`` pulls in the NumPy testing modules, a noticeable share of the
    import time; the grid regression and spectrum paths never call it (issue 17).
    Modules write ``from ._linalg import scipy`` and then
    ``scipy.linalg.eigh(...)`` as usual.
    """

    @property
    def linalg(self):
        import scipy.linalg

        return scipy.linalg


scipy: Any = _LazySciPy()
