r"""Residuals per eigenspace of a kernel Gram: the per-frequency view of training.

The theory says mode i of the train residual decays like
:math:`e^{-\eta\lambda_i t/N_y}` (Jacot et al. 2018; Tancik et al. 2020, Fig. 3). On
grids symmetric under :math:`x \mapsto -x` the eigenvalues of a stationary kernel's
Gram come in exact pairs (the cosine and sine of one frequency), and a degenerate
eigenvalue has no preferred eigenvector: ``eigh`` returns an arbitrary rotation within
its eigenspace, different for two Grams that differ by round-off. Single-vector
projections are therefore not comparable between runs; projections onto whole
eigenspaces are. For the eigenspace S with orthonormal basis :math:`V_S` the
residual's size there is

.. math::

    \|P_S\,r\| = \|V_S^\top r\|_F,

independent of the basis chosen within S (the Frobenius norm also sums over output
channels). :func:`eigenspaces` groups the eigenpairs of a Gram into eigenspaces by a
relative tolerance; :func:`eigenspace_norms` projects residuals onto them.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_real

__all__ = ["Eigenspaces", "eigenspaces", "eigenspace_norms"]


class Eigenspaces(NamedTuple):
    r"""Eigenspaces of a symmetric matrix, largest eigenvalue first.

    Attributes:
        eigenvalues: (S,) the mean eigenvalue of each space, descending.
        multiplicity: (S,) the dimension of each space.
        bases: S arrays (n, m_s), orthonormal columns spanning each space.
    """

    eigenvalues: np.ndarray
    multiplicity: np.ndarray
    bases: tuple


def eigenspaces(
    eigenvalues, eigenvectors, *, rtol: float = 1e-8, atol: float | None = None
) -> Eigenspaces:
    r"""Group eigenpairs into eigenspaces: eigenvalues equal within a tolerance.

    Sorted in descending order, consecutive eigenvalues :math:`\lambda_a \ge
    \lambda_b` share a space when

    .. math::

        \lambda_a - \lambda_b \le \mathrm{rtol}\cdot|\lambda_a| + \mathrm{atol},

    and chains of such neighbours form one space. ``atol`` defaults to
    :math:`16\,n\,\epsilon\,\max|\lambda|`, the size of a dense ``eigh``'s absolute
    error: eigenvalues closer than that are not resolved by the computation, and only
    the span of their eigenvectors is determined.

    Args:
        eigenvalues: (n,) real eigenvalues in any order (e.g. ``numpy.linalg.eigh``).
        eigenvectors: (n, n) or (N, n), their orthonormal eigenvectors as columns.
        rtol: relative tolerance (>= 0).
        atol: absolute tolerance (>= 0); None for the default above.

    Returns:
        An :class:`Eigenspaces`, largest eigenvalue first.

    Raises:
        ValueError: shapes that disagree, non-finite eigenvalues, negative tolerances.

    Example:
        >>> import numpy as np
        >>> spaces = eigenspaces(np.array([1.0, 3.0, 3.0]), np.eye(3))
        >>> spaces.eigenvalues.tolist(), spaces.multiplicity.tolist()
        ([3.0, 1.0], [2, 1])
    """
    lam = np.asarray(eigenvalues, np.float64)
    vecs = np.asarray(eigenvectors, np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"eigenvalues must have shape (n,); got {lam.shape}")
    if vecs.ndim != 2 or vecs.shape[1] != lam.size:
        raise ValueError(
            f"eigenvectors must have shape (N, {lam.size}) (one column per "
            f"eigenvalue); got {vecs.shape}"
        )
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues must be finite")
    check_real(rtol, "rtol", low=0.0)
    if atol is None:
        atol = 16.0 * lam.size * np.finfo(np.float64).eps * float(np.max(np.abs(lam)))
    check_real(atol, "atol", low=0.0)
    order = np.argsort(lam)[::-1]
    lam, vecs = lam[order], vecs[:, order]
    gaps = lam[:-1] - lam[1:]
    new = gaps > rtol * np.abs(lam[:-1]) + atol
    starts = np.concatenate([[0], np.flatnonzero(new) + 1, [lam.size]])
    groups = [slice(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return Eigenspaces(
        eigenvalues=np.array([lam[g].mean() for g in groups]),
        multiplicity=np.array([g.stop - g.start for g in groups]),
        bases=tuple(vecs[:, g] for g in groups),
    )


def eigenspace_norms(spaces: Eigenspaces, residual) -> np.ndarray:
    r"""The size :math:`\|V_S^\top r\|_F` of a residual in each eigenspace.

    Args:
        spaces: from :func:`eigenspaces`.
        residual: (n,), (n, c), or a sequence over time (T, n, c) of residuals
            :math:`r = f - y` on the points of the Gram.

    Returns:
        (S,) for a single residual ((n,) or (n, c)), (T, S) for (T, n, c); float64.
        Divide by the first time's value for the relative residual per mode (a
        space where the initial residual is 0 then has no relative value).

    Raises:
        ValueError: a residual whose n does not match the eigenvectors.

    Example:
        >>> import numpy as np
        >>> spaces = eigenspaces(np.array([1.0, 3.0, 3.0]), np.eye(3))
        >>> eigenspace_norms(spaces, np.array([2.0, 3.0, 4.0])).tolist()
        [5.0, 2.0]
    """
    r = np.asarray(residual, np.float64)
    n = spaces.bases[0].shape[0]
    if r.ndim not in (1, 2, 3) or r.shape[1 if r.ndim == 3 else 0] != n:
        raise ValueError(
            f"residual must have shape ({n},), ({n}, c) or (T, {n}, c); got {r.shape}"
        )
    single = r.ndim < 3
    if r.ndim == 1:
        r = r[:, None]
    if single:
        r = r[None]
    norms = [
        np.sqrt(np.sum(np.einsum("nm,tnc->tmc", V, r) ** 2, axis=(1, 2)))
        for V in spaces.bases
    ]
    out = np.stack(norms, axis=-1)
    return out[0] if single else out
