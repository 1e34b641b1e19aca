"""Private dense linear algebra that stays clear of a crash in threaded OpenBLAS.

The OpenBLAS bundled with NumPy 2.4 / SciPy 1.17 wheels segfaults in its threaded
Cholesky (``dpotrf_L_parallel`` -> ``dsyrk_thread``) on large matrices with two
threads: measured on this project's 2-core CPU, ``scipy.linalg.cholesky`` and
``numpy.linalg.cholesky`` both kill the process at n = 16384 (2 GiB, inside ntkspec's
4 GiB dense cap), while n = 12000 and single-threaded n = 16384 pass (cf. OpenBLAS issue
#2562). :func:`cholesky_lower` is therefore a right-looking blocked Cholesky that only
hands LAPACK diagonal blocks of at most ``block`` rows and does the updates with
triangular solves and matrix products. It does the same flops as ``potrf``; at n <=
``block`` it *is* one ``potrf`` call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cholesky_lower", "scipy"]


class _LazySciPy:
    """``scipy`` whose ``linalg`` is imported on first use, not at ``import ntkspec``.

    ``scipy.linalg`` (with the NumPy testing modules it pulls in) is slow to import
    (``docs/results/benchmarks.md``); the grid regression and spectrum paths never
    call it (issue 17). Modules write ``from ._linalg import scipy`` and then
    ``scipy.linalg.eigh(...)`` as usual.
    """

    @property
    def linalg(self):
        import scipy.linalg

        return scipy.linalg


scipy: Any = _LazySciPy()

#: Largest diagonal block passed to LAPACK's potrf (n = 12000 is safe, 16384 is not).
POTRF_BLOCK = 4096


def cholesky_lower(a: np.ndarray, *, block: int = POTRF_BLOCK) -> np.ndarray:
    """Lower Cholesky factor ``L`` of a symmetric positive definite ``a``: L L^T = a.

    Only the lower triangle of ``a`` is read.

    Raises:
        numpy.linalg.LinAlgError: ``a`` is not numerically positive definite.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    if n <= block:
        return scipy.linalg.cholesky(a, lower=True, check_finite=False)
    low = np.tril(a)
    for start in range(0, n, block):
        stop = min(start + block, n)
        low[start:stop, start:stop] = scipy.linalg.cholesky(
            low[start:stop, start:stop], lower=True, check_finite=False
        )
        if stop == n:
            break
        # panel L21 = A21 L11^{-T}, then the trailing update A22 -= L21 L21^T one block
        # column at a time (lower part only; no (n x n) temporary).
        panel = scipy.linalg.solve_triangular(
            low[start:stop, start:stop],
            low[stop:, start:stop].T,
            lower=True,
            check_finite=False,
        ).T
        low[stop:, start:stop] = panel
        for col in range(stop, n, block):
            end = min(col + block, n)
            low[col:, col:end] -= panel[col - stop :] @ panel[col - stop : end - stop].T
    return np.tril(low)
