r"""Eigenvalues of NNGP/NTK Grams: dense, FFT (periodic grids), Lanczos (Toeplitz).

The spectrum of the Gram :math:`K_{ij} = k(x_i, x_j)` on N points tells which functions
a
kernel regressor (or an infinitely wide network in the NTK regime) learns and how fast:
the residual along eigenvector :math:`q_i` decays like :math:`e^{-\eta\lambda_i t}`
(Jacot et al. 2018; Tancik et al. 2020, section 3). Conventions: eigenvalues are those
of
:math:`K` itself (the operator :math:`\frac1N K` has them divided by N), real,
descending.

Paths taken by :func:`spectrum`:

* an (N, d) array of points: dense ``eigh`` in float64 (refused over the memory cap);
* a :class:`~ntkspec.Grid` with a periodic Fourier mapping (integer frequencies): the
  Gram is multilevel circulant, its eigenvectors are the Fourier modes and all N
  eigenvalues are the DFT of the kernel on the grid offsets,
  :math:`\Lambda(m) = \sum_o k(o/n)\, e^{-2\pi i\, m^\top (o / n)}` (exact, O(N log N));
* a Grid with a non-periodic Fourier mapping (Gaussian frequencies, positional encoding
  with non-integer frequencies): multilevel Toeplitz; the top k eigenpairs come from a
  block Lanczos iteration on the exact circulant-embedding matvec, run on each
  symmetry sector of the Gram (even / odd under the point reflection of the grid,
  and per-axis parities for axis-aligned mappings) and merged;
* raw coordinates (no mapping), or a mapping with ``include_input``, on a Grid: not
  stationary, dense.

Related quantities: :func:`grid_spectrum` (eigenvalues with their integer frequencies),
:func:`continuous_spectrum` (the integral operator on the torus),
:func:`fourier_spectrum` (the paper's "NTK Fourier spectrum": the DFT of the kernel
profile, not eigenvalues, for non-periodic mappings),
:func:`circulant_approximate_spectrum` (T. Chan / Strang, approximate),
:func:`radial_profile` and :func:`decay_exponent` (falloff with :math:`|m|`).

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
    Golub & Underwood, "The block Lanczos method for computing eigenvalues", 1977;
    Golub & Van Loan, "Matrix Computations", 4th ed., section 10.3.
    T. Chan, SIAM J. Sci. Stat. Comput. 9(4), 1988; Strang, Stud. Appl. Math. 74, 1986.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Literal

import jax.numpy as jnp
import numpy as np

from ._deprecation import renamed_arguments
from ._linalg import scipy  # scipy.linalg imported on first use
from ._numerics import check_dense_request, x64_scope
from ._validation import (
    as_points,
    check_coordinates,
    check_kernel,
)
from .grid import Grid
from .kernels import ReluMLP, check_arch
from .linalg.lanczos import (
    LanczosResult,
    block_diagonal_lanczos,
    block_lanczos,
    restarted_lanczos,
)
from .mappings import (
    FourierMapping,
    check_mapping,
    check_stationary_mapping,
)
from .operators import (
    GridKernelOperator,
    dense_gram,
    grid_operator,
    kernel_on_offsets,
    strang_column,
    structure,
    symmetry_sectors,
    t_chan_column,
)
from .sharding import check_mesh, shard_operator

__all__ = [
    "spectrum",
    "grid_spectrum",
    "GridSpectrum",
    "fourier_spectrum",
    "circulant_approximate_spectrum",
    "continuous_spectrum",
    "lanczos_eigenpairs",
    "LanczosResult",
    "SpectrumInfo",
    "radial_profile",
    "RadialProfile",
    "decay_exponent",
    "DecayFit",
]

KernelName = Literal["ntk", "nngp"]


# --------------------------------------------------------------------------------------
# Result values.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridSpectrum:
    r"""Values indexed by integer frequency :math:`m \in \mathbb{Z}^d`.

    Attributes:
        values: array whose axis i is indexed like ``frequencies[i]``.
        frequencies: per-axis integer frequencies (FFT order for grid spectra,
            increasing for :func:`continuous_spectrum`).
        kind: what the values are, e.g. "eigenvalues (exact, circulant)" or
            "NTK Fourier spectrum (not eigenvalues)".
        exact: True when the values are exact eigenvalues of the stated operator.
        error_estimate: estimated max absolute error (continuous spectrum), else None.
    """

    values: np.ndarray
    frequencies: tuple[np.ndarray, ...]
    kind: str
    exact: bool
    error_estimate: float | None = None

    def frequency_norms(self) -> np.ndarray:
        r""":math:`|m|`, same shape as ``values``."""
        mesh = np.meshgrid(*self.frequencies, indexing="ij")
        return np.sqrt(sum(m.astype(np.float64) ** 2 for m in mesh))

    def centred(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(values, frequencies) reordered so frequencies increase along every axis."""
        order = [np.argsort(f, kind="stable") for f in self.frequencies]
        vals = self.values[np.ix_(*order)]
        return vals, tuple(f[o] for f, o in zip(self.frequencies, order, strict=True))


@dataclasses.dataclass(frozen=True)
class RadialProfile:
    r"""Values grouped in shells :math:`r - 1/2 < |m| \le r + 1/2`, r = 0, 1, 2, ...

    Attributes:
        radius: shell radii r (integers, as float), shape (R,), empty shells dropped.
        mean: mean value per shell.
        minimum: smallest value per shell.
        maximum: largest value per shell.
        count: number of frequencies per shell.
    """

    radius: np.ndarray
    mean: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    count: np.ndarray


@dataclasses.dataclass(frozen=True)
class DecayFit:
    r"""A power law :math:`\lambda \approx C\, r^{-\alpha}` fitted in log-log space.

    Attributes:
        exponent: :math:`\alpha` (positive for a decaying spectrum).
        prefactor: :math:`C`.
        fit_range: the (low, high) range of r used (inclusive).
        num_points: number of points in the fit.
        rms_log_residual: root-mean-square residual of :math:`\ln\lambda`.
    """

    exponent: float
    prefactor: float
    fit_range: tuple[float, float]
    num_points: int
    rms_log_residual: float


@dataclasses.dataclass(frozen=True)
class SpectrumInfo:
    r"""How :func:`spectrum` computed its answer (``return_info=True``).

    Attributes:
        method: "dense" (``eigh``), "fft" (exact circulant) or "lanczos".
        converged: False only when Lanczos missed ``rtol``.
        lanczos: the :class:`LanczosResult` on the Lanczos path, else None (with
            sectors: the merged result, per-sector details in
            ``lanczos.stats["blocks"]``).
        sectors: the number of symmetry sectors the Lanczos path ran on (1: the
            whole Gram).
    """

    method: str
    converged: bool = True
    lanczos: LanczosResult | None = None
    sectors: int = 1


# --------------------------------------------------------------------------------------
# Validation helpers.
# --------------------------------------------------------------------------------------


def _check_k(k, n: int):
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be None or an integer in [1, N = {n}]; got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N = {n}] (number of points); got {k}")
    return int(k)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _check_vectors_fit(n: int, k: int, max_bytes) -> None:
    check_dense_request(
        (n, k),
        8,
        max_bytes,
        what="vectors=True: the eigenvector array",
        alternative="Ask for fewer eigenvectors with k=, or vectors=False.",
    )


def _check_mapping(mapping, d: int, where: str) -> None:
    check_mapping(mapping)
    if mapping.dim is not None and mapping.dim != d:
        raise ValueError(
            f"mapping has input dimension {mapping.dim} but {where} has dimension {d}; "
            f"mapping.dim must equal the points' dimension"
        )


_HINTS = {
    "identity": "Raw coordinates give no stationary kernel, so there is no "
    "structured path: use a smaller grid, or a Fourier mapping.",
    "include_input": "A mapping with include_input (raw coordinates beside the "
    "features) gives no stationary kernel, so there is no structured path: use a "
    "smaller grid, or the encoding with include_input=False.",
    "toeplitz": "This mapping is not periodic: ask for the top eigenvalues with k= "
    "(Lanczos on the exact FFT Toeplitz matvec), or see "
    "circulant_approximate_spectrum for an approximate full spectrum.",
    "points": "Pass the points as a ntkspec.Grid with a Fourier mapping for the "
    "structured path (exact FFT for periodic mappings, Lanczos with k= otherwise).",
}


def _spectrum_plan(arch, mapping, x, k, kernel, vectors, method, max_bytes):
    """Validate :func:`spectrum`'s arguments; return (path, k, dense hint key)."""
    check_arch(arch)
    check_kernel(kernel)
    vectors = _check_bool(vectors, "vectors")
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method must be 'auto', 'dense' or 'lanczos'; got {method!r}")
    if isinstance(x, Grid):
        _check_mapping(mapping, x.dim, "grid")
        n = x.size
    else:
        x = as_points(x, "x")
        _check_mapping(mapping, x.shape[1], "x")
        check_coordinates(x, "x", mapping)
        n = x.shape[0]
    k = _check_k(k, n)
    if not isinstance(x, Grid) and method == "lanczos":
        raise ValueError("method='lanczos' needs x to be a ntkspec.Grid")
    if vectors:
        _check_vectors_fit(n, n if k is None else k, max_bytes)
    kind = structure(mapping, x)  # the one path choice (operators)
    if kind == "points" and getattr(mapping, "include_input", False):
        if method == "lanczos":
            raise ValueError(
                "method='lanczos' needs a stationary kernel on the grid; a mapping "
                "with include_input (raw coordinates beside the features) is not "
                "stationary: use method='dense' or 'auto'"
            )
        return "dense", k, vectors, "include_input"
    if kind == "points":
        return "dense", k, vectors, "identity" if isinstance(x, Grid) else "points"
    if kind == "circulant" and method != "lanczos":
        return "fft", k, vectors, None
    if method == "dense" or (method == "auto" and k is None):
        return "dense", k, vectors, "toeplitz"
    if k is None:
        raise ValueError("method='lanczos' needs k (the number of eigenvalues)")
    return "lanczos", k, vectors, None


# --------------------------------------------------------------------------------------
# Dense path.
# --------------------------------------------------------------------------------------


def _dense_eigh(arch, mapping, points, k, kernel, vectors, max_bytes, alternative):
    n = points.shape[0]
    check_dense_request(
        (n, n),
        8,
        max_bytes,
        what=f"spectrum: the dense {kernel.upper()} Gram",
        alternative=alternative,
    )
    gram = np.array(
        dense_gram(arch, mapping, points, kernel=kernel, max_bytes=max_bytes).matrix
    )
    subset = None if k is None or k == n else [n - k, n - 1]
    if vectors:
        w, v = scipy.linalg.eigh(gram, subset_by_index=subset, overwrite_a=True)
        return w[::-1].copy(), v[:, ::-1].copy()
    w = scipy.linalg.eigh(
        gram, eigvals_only=True, subset_by_index=subset, overwrite_a=True
    )
    return w[::-1].copy(), None


# --------------------------------------------------------------------------------------
# Periodic path.
# --------------------------------------------------------------------------------------


def _fourier_modes(grid: Grid, lam: np.ndarray, k: int):
    """Top-k real Fourier eigenvectors (cos/sin pairs), shape (N, k), + values."""
    shape = grid.shape
    n = grid.size
    flat = np.arange(n)
    idx = np.unravel_index(flat, shape)
    conj = np.ravel_multi_index(
        tuple((-i) % s for i, s in zip(idx, shape, strict=True)), shape
    )
    canonical = flat <= conj
    self_conj = flat == conj
    # One cos mode per canonical frequency, one sin mode per non-self-conjugate one.
    cos_idx = flat[canonical]
    sin_idx = flat[canonical & ~self_conj]
    mode_idx = np.concatenate([cos_idx, sin_idx])
    mode_sin = np.concatenate(
        [np.zeros(cos_idx.size, bool), np.ones(sin_idx.size, bool)]
    )
    lam_flat = lam.reshape(-1)
    order = np.argsort(-lam_flat[mode_idx], kind="stable")[:k]
    sel, sel_sin = mode_idx[order], mode_sin[order]
    pts_int = np.stack(np.unravel_index(flat, shape), axis=1)  # (N, d)
    freqs = np.stack(
        [
            np.asarray(f)[i]
            for f, i in zip(
                grid.frequencies(), np.unravel_index(sel, shape), strict=True
            )
        ],
        axis=1,
    )  # (k, d)
    inv_n = np.array([1.0 / s for s in shape])
    # Phase 2 pi m.x with the product m o reduced modulo n exactly in integers.
    prod = np.mod(pts_int[:, None, :] * freqs[None, :, :], np.array(shape))
    phase = 2.0 * np.pi * (prod * inv_n).sum(axis=-1)  # (N, k)
    sc = np.where(sel_sin[None, :], np.sin(phase), np.cos(phase))
    norms = np.where(self_conj[sel], 1.0 / math.sqrt(n), math.sqrt(2.0 / n))
    return lam_flat[sel].copy(), sc * norms[None, :]


def _periodic_eigenvalues(op: GridKernelOperator) -> np.ndarray:
    r"""All eigenvalues in FFT order (``grid.shape``) from the operator's half-spectrum.

    The column is even, so :math:`\Lambda(m) = \Lambda(-m)`: the entries with last
    index :math:`j > n_d/2` are the symbol's at :math:`(-i \bmod n, n_d - j)`. Host
    indexing of the ``rfftn`` the build already computed (issue 17: no second FFT, no
    further compiled program).
    """
    sym = np.asarray(op.symbol, dtype=np.float64)
    shape = op.grid.shape
    n = shape[-1]
    j = np.arange(sym.shape[-1], n)
    tail = sym[..., n - j]
    for axis, m in enumerate(shape[:-1]):
        tail = np.take(tail, (-np.arange(m)) % m, axis=axis)
    return np.concatenate([sym, tail], axis=-1)


def _sorted_from_half_spectrum(symbol: np.ndarray, n_last: int) -> np.ndarray:
    r"""All eigenvalues, descending, from the half-spectrum: half the sorting work.

    Columns ``1 .. (n - 1) // 2`` of the half-spectrum appear twice in the full one
    (as :math:`\pm m`), columns 0 and (n even) n / 2 once: sort each set, repeat the
    first, merge the two sorted runs (stable sort: linear on two runs).
    """
    twice = np.sort(symbol[..., 1 : (n_last - 1) // 2 + 1].reshape(-1))
    once_cols = [0] + ([n_last // 2] if n_last % 2 == 0 else [])
    once = np.sort(symbol[..., once_cols].reshape(-1))
    merged = np.sort(np.concatenate([np.repeat(twice, 2), once]), kind="stable")
    return merged[::-1]


def _periodic_top(op: GridKernelOperator, k: int | None, vectors: bool):
    kk = op.grid.size if k is None else k
    if vectors:
        return _fourier_modes(op.grid, _periodic_eigenvalues(op), kk)
    sym = np.asarray(op.symbol, dtype=np.float64)
    return _sorted_from_half_spectrum(sym, op.grid.shape[-1])[:kk].copy(), None


# --------------------------------------------------------------------------------------
# Lanczos (the algorithm lives in ntkspec.solvers).
# --------------------------------------------------------------------------------------


@renamed_arguments(tol="rtol", max_dim="max_krylov_dim")
def lanczos_eigenpairs(
    operator: GridKernelOperator,
    k: int,
    *,
    vectors: bool = False,
    block_size: int | None = None,
    rtol: float = 1e-10,
    max_krylov_dim: int | None = None,
    seed: int = 0,
    max_bytes: float | None = None,
    algorithm: str = "unrestarted",
    max_restarts: int = 100,
) -> LanczosResult:
    r"""Top-k eigenpairs of a kernel operator by block Lanczos (exact matvecs).

    By default :func:`ntkspec.solvers.block_lanczos` (the basis grows up to
    ``max_krylov_dim`` rows); ``algorithm="restarted"`` runs
    :func:`ntkspec.solvers.restarted_lanczos` (thick restarts, a basis of
    ``max_krylov_dim`` rows, default 2.4 k: bounded memory), which :func:`spectrum`
    uses (timings of both in ``docs/results/benchmarks.md``).
    Both use full reorthogonalisation and Rayleigh-Ritz on :math:`V^\top K V`, and stop
    when each of the top k Ritz pairs has residual
    :math:`\|KVy - \theta Vy\| \le` ``rtol`` :math:`\cdot|\theta|`; arguments are
    checked first. Where the Krylov basis would come within a block of N (small grids,
    or k near N) both take the dense ``eigh`` of K built from N matvecs instead
    (``LanczosResult.method == "dense"``), exact to rounding.

    Args:
        operator: a :class:`~ntkspec.operators.GridKernelOperator` (or any symmetric
            operator of :mod:`ntkspec.operators`).
        k: how many eigenpairs (between 1 and N).
        vectors: whether to return the (N, k) Ritz vectors; checked against the
            memory cap first.
        block_size: see :func:`~ntkspec.solvers.block_lanczos` (default 8).
        rtol: Ritz residual tolerance relative to the eigenvalue, 0 < rtol < 1
            (``tol`` of the solvers).
        max_krylov_dim: basis rows: before a restart (``restarted_lanczos``'s
            ``krylov_dim``) or in all (``block_lanczos``'s ``max_dim``).
        seed: start block seed.
        max_bytes: memory cap of the Krylov basis and of the vectors.
        algorithm: "unrestarted" (default) or "restarted".
        max_restarts: restarts allowed (``algorithm="restarted"``).

    Returns:
        A :class:`LanczosResult` (timings in ``stats``). When the residuals miss
        ``rtol`` at ``max_krylov_dim`` a ``RuntimeWarning`` reports them and the best
        Ritz pairs are returned.

    Deprecated: ``tol=`` (now ``rtol=``) and ``max_dim=`` (now ``max_krylov_dim=``)
    still work, with a ``DeprecationWarning``, until the next minor release.
    """
    if not hasattr(operator, "matvec") or not hasattr(operator, "shape"):
        raise TypeError(
            f"operator must be a GridKernelOperator; got {type(operator).__name__}"
        )
    n = operator.shape[0]
    k = _check_k(k, n)
    vectors = _check_bool(vectors, "vectors")
    if vectors:
        _check_vectors_fit(n, k, max_bytes)
    if algorithm not in ("restarted", "unrestarted"):
        raise ValueError(
            f"algorithm must be 'restarted' or 'unrestarted'; got {algorithm!r}"
        )
    if algorithm == "restarted":
        return restarted_lanczos(
            operator,
            k,
            vectors=vectors,
            block_size=block_size,
            tol=rtol,
            krylov_dim=max_krylov_dim,
            max_restarts=max_restarts,
            seed=seed,
            max_bytes=max_bytes,
        )
    return block_lanczos(
        operator,
        k,
        vectors=vectors,
        block_size=block_size,
        tol=rtol,
        max_dim=max_krylov_dim,
        seed=seed,
        max_bytes=max_bytes,
    )


# --------------------------------------------------------------------------------------
# Public entry points.
# --------------------------------------------------------------------------------------


@renamed_arguments(tol="rtol")
def spectrum(
    arch: ReluMLP,
    mapping,
    x,
    k: int | None = None,
    kernel: KernelName = "ntk",
    vectors: bool = False,
    *,
    method: str = "auto",
    rtol: float = 1e-10,
    max_bytes: float | None = None,
    seed: int = 0,
    return_info: bool = False,
    mesh=None,
    sectors: bool = True,
):
    r"""Eigenvalues (optionally eigenvectors) of the kernel Gram :math:`K` on points.

    :math:`K_{ij} = k(\gamma(x_i), \gamma(x_j))` with :math:`\gamma` = ``mapping``;
    eigenvalues of :math:`K` itself (those of the operator :math:`K/N` are divided by
    N), float64, descending. Paths (module docstring): dense ``eigh`` for arrays and
    raw coordinates; exact FFT for a :class:`~ntkspec.Grid` with a periodic mapping
    (:math:`\Lambda(m) = \sum_o k(o/n) e^{-2\pi i m^\top o/n}`, eigenvectors the real
    Fourier modes :math:`\sqrt{2/N}\cos(2\pi m^\top x)`, :math:`\sqrt{2/N}\sin(\cdot)`);
    thick-restart block Lanczos (:func:`lanczos_eigenpairs` with
    ``algorithm="restarted"``) on the exact Toeplitz matvec for a Grid with a
    non-periodic mapping when k is given (dense when k is None and it fits), run on
    each symmetry sector of the Gram (``sectors=True``; the kernel is even, so the
    Gram commutes with the point reflection of the grid) and merged.

    Args:
        arch: a :class:`~ntkspec.ReluMLP`.
        mapping: a Fourier mapping, or ``ntkspec.mappings.identity()`` (raw
            coordinates).
        x: points, an (N, d) array or a :class:`~ntkspec.Grid`.
        k: number of top eigenvalues (1 <= k <= N); None for all N.
        kernel: "ntk" or "nngp".
        vectors: also return eigenvectors, shape (N, k) (N columns when k is None).
        method: "auto", or force "dense" or "lanczos" (non-periodic grids).
        rtol: relative residual tolerance of the Lanczos path.
        max_bytes: dense memory cap (default 4 GiB or ``NTKSPEC_MAX_DENSE_BYTES``).
        seed: seed of the Lanczos start block.
        return_info: also return a :class:`SpectrumInfo` (last element).
        mesh: None or a 1-D ``jax.sharding.Mesh``: the Lanczos path runs on the FFT
            matvec spread over its devices (:mod:`ntkspec.sharding`); the dense and
            exact FFT paths ignore it.
        sectors: on the Lanczos path without ``mesh``, split the Gram into its exact
            symmetry sectors (:func:`ntkspec.operators.symmetry_sectors`: even and
            odd under the point reflection of the grid, and per-axis parities where
            the mapping is even in single axes) and run Lanczos on each, with a
            per-sector k certified afterwards
            (:func:`ntkspec.linalg.lanczos.block_diagonal_lanczos`); False runs it on
            the whole Gram.

    Returns:
        ``eigenvalues`` (float64 NumPy array, shape (k,) or (N,), descending), or
        ``(eigenvalues, eigenvectors)`` when ``vectors=True``; with ``return_info``
        the :class:`SpectrumInfo` is appended. Degenerate eigenvalues (the
        :math:`\pm m` Fourier pairs) have an arbitrary basis of their eigenspace.

    Raises:
        TypeError, ValueError: bad arguments (each message names the argument); a dense
            request over the memory cap (the message points to Grid / k); a non-periodic
            Grid too large for dense with k=None (asks for k).

    Deprecated: ``tol=`` (now ``rtol=``) still works, with a ``DeprecationWarning``,
    until the next minor release.

    Example:
        >>> import ntkspec
        >>> lam = ntkspec.spectrum(ntkspec.ReluMLP(2), ntkspec.mappings.basic(1),
        ...                        ntkspec.Grid((4,)))
        >>> lam.round(6).tolist()
        [2.63662, 2.0, 2.0, 1.36338]
    """
    mesh = check_mesh(mesh)
    sectors = _check_bool(sectors, "sectors")
    path, k, vectors, hint = _spectrum_plan(
        arch, mapping, x, k, kernel, vectors, method, max_bytes
    )
    info = SpectrumInfo(path)
    if path == "dense":
        pts = x.points() if isinstance(x, Grid) else np.asarray(x, np.float64)
        args = (arch, mapping, pts, k, kernel, vectors, max_bytes, _HINTS[hint])
        values, vecs = _dense_eigh(*args)
    elif path == "fft":
        op = grid_operator(arch, mapping, x, kernel=kernel)
        values, vecs = _periodic_top(op, k, vectors)
    else:
        op = grid_operator(arch, mapping, x, kernel=kernel)
        parts = symmetry_sectors(op) if sectors and mesh is None else ()
        if len(parts) > 1:
            res = block_diagonal_lanczos(
                parts, k, vectors=vectors, tol=rtol, seed=seed, max_bytes=max_bytes
            )
        else:
            res = lanczos_eigenpairs(
                shard_operator(op, mesh),
                k,
                vectors=vectors,
                rtol=rtol,
                seed=seed,
                max_bytes=max_bytes,
                algorithm="restarted",
            )
        values, vecs = res.eigenvalues, res.eigenvectors
        info = SpectrumInfo(path, res.converged, res, max(len(parts), 1))
    out = (values, vecs) if vectors else (values,)
    out = out + (info,) if return_info else out
    return out if len(out) > 1 else out[0]


def grid_spectrum(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    *,
    kernel: KernelName = "ntk",
) -> GridSpectrum:
    r"""All N exact eigenvalues of a periodic kernel's Gram on a grid, by frequency.

    :math:`\Lambda(m) = \sum_o k(o/n)\, e^{-2\pi i\, m^\top(o/n)}` for the integer
    frequencies :math:`m` of ``grid.frequencies()`` (FFT order); the eigenvector of
    :math:`\Lambda(m)` is the Fourier mode :math:`e^{2\pi i m^\top x}` on the grid.

    Raises:
        ValueError: the mapping is not periodic (its Gram is Toeplitz, not circulant):
            use :func:`spectrum` with k (exact top eigenvalues),
            :func:`fourier_spectrum` or :func:`circulant_approximate_spectrum`.
    """
    check_arch(arch)
    check_kernel(kernel)
    check_stationary_mapping(mapping, grid)
    if structure(mapping, grid) != "circulant":
        raise ValueError(
            "grid_spectrum needs a periodic mapping (integer frequencies); for this "
            "one "
            "use spectrum(arch, mapping, grid, k=...) for exact top eigenvalues, or "
            "fourier_spectrum / circulant_approximate_spectrum for frequency pictures"
        )
    op = grid_operator(arch, mapping, grid, kernel=kernel)
    return GridSpectrum(
        _periodic_eigenvalues(op),
        grid.frequencies(),
        "eigenvalues (exact, circulant Gram)",
        True,
    )


def fourier_spectrum(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    *,
    kernel: KernelName = "ntk",
) -> GridSpectrum:
    r"""The "NTK Fourier spectrum": :math:`|\mathrm{DFT}|` of the kernel on the grid.

    :math:`F(m) = |\sum_{o} k(o/n)\, e^{-2\pi i\, m^\top(o/n)}|` with each :math:`o_i`
    in
    :math:`[-\lfloor n_i/2\rfloor, \lceil n_i/2\rceil)` (Tancik et al. 2020, Fig. 2d:
    ``fftshift(|FFT|)`` of a kernel row). For a periodic mapping these are the exact
    eigenvalues; otherwise they are **not eigenvalues** (it is Strang's circulant
    approximation up to the absolute value); use :func:`spectrum` with k for those.
    """
    check_arch(arch)
    check_kernel(kernel)
    check_stationary_mapping(mapping, grid)
    if structure(mapping, grid) == "circulant":
        col = kernel_on_offsets(arch, mapping, grid, kernel=kernel)
        kind, exact = "eigenvalues (exact, circulant Gram)", True
    else:
        emb = kernel_on_offsets(arch, mapping, grid, kernel=kernel, embed=True)
        with x64_scope(np.float64):
            col = strang_column(emb, grid.shape)
        kind, exact = (
            "NTK Fourier spectrum (|DFT| of the kernel, not eigenvalues)",
            False,
        )
    with x64_scope(np.float64):
        vals = np.asarray(jnp.abs(jnp.fft.fftn(col)), dtype=np.float64)
    return GridSpectrum(vals, grid.frequencies(), kind, exact)


def circulant_approximate_spectrum(
    arch: ReluMLP,
    mapping: FourierMapping,
    grid: Grid,
    *,
    kernel: KernelName = "ntk",
    method: str = "chan",
) -> GridSpectrum:
    r"""APPROXIMATE full spectrum of a Toeplitz Gram from a circulant approximation.

    The eigenvalues of T. Chan's Frobenius-optimal circulant (``method="chan"``, first
    column :math:`c_o = ((n-o)t_o + o\,t_{o-n})/n` per axis) or Strang's (``"strang"``,
    :math:`t_o` wrapped at :math:`n/2`), by frequency. Exact for periodic mappings (the
    Gram is then circulant). For non-periodic mappings these are **not** the Gram's
    eigenvalues: a Gaussian-frequency kernel is almost periodic and does not decay, so
    the
    Szegő-type guarantees do not apply. Measured against dense ``eigvalsh`` (sorted
    values, NTK depth 4, max error relative to the largest eigenvalue): 16 x 16 grid,
    64 Gaussian frequencies, sigma 3: 5.6e-3 (T. Chan), 4.9e-3 (Strang); 12 x 20,
    sigma 10: 7.7e-3, 5.3e-3; 1D n = 256, 16 frequencies, sigma 10: 1.6e-2, 2.6e-2
    (``tests/test_spectra.py`` pins the first case between 1e-4 and 2e-2). Use
    :func:`spectrum` with k for exact top eigenvalues.
    """
    check_arch(arch)
    check_kernel(kernel)
    check_stationary_mapping(mapping, grid)
    if method not in ("chan", "strang"):
        raise ValueError(f"method must be 'chan' or 'strang'; got {method!r}")
    if structure(mapping, grid) == "circulant":
        return grid_spectrum(arch, mapping, grid, kernel=kernel)
    emb = kernel_on_offsets(arch, mapping, grid, kernel=kernel, embed=True)
    with x64_scope(np.float64):
        fn = t_chan_column if method == "chan" else strang_column
        vals = np.asarray(jnp.fft.fftn(fn(emb, grid.shape)).real, dtype=np.float64)
    name = "T. Chan" if method == "chan" else "Strang"
    return GridSpectrum(
        vals,
        grid.frequencies(),
        f"APPROXIMATE eigenvalues ({name} circulant approximation of a Toeplitz Gram)",
        False,
    )


def continuous_spectrum(
    arch: ReluMLP,
    mapping: FourierMapping,
    max_freq: int,
    *,
    kernel: KernelName = "ntk",
    rtol: float = 1e-9,
    resolution: int | None = None,
    max_resolution: int | None = None,
) -> GridSpectrum:
    r"""Eigenvalues of the kernel's integral operator on the torus, by frequency.

    For a periodic mapping the operator :math:`(Tf)(x) = \int_{[0,1)^d} k(x - y)
    f(y)\,dy`
    has the Fourier modes as eigenfunctions with eigenvalues
    :math:`c(m) = \int_{[0,1)^d} k(\Delta)\, e^{-2\pi i\, m^\top\Delta}\, d\Delta`,
    independent of any sampling. A grid of :math:`n^d` points gives
    :math:`\Lambda_n(m)/n^d = \sum_{l \in \mathbb{Z}^d} c(m + n l)` (Poisson summation),
    whose aliasing error decays like :math:`n^{-(d+1)}` (the kernel's :math:`|\Delta|`
    cusp at 0 makes :math:`c(m) \sim |m|^{-(d+1)}`). This function evaluates
    :math:`\Lambda_n/n^d` at resolutions :math:`n, 2n, 4n`, removes the leading aliasing
    term by Richardson extrapolation (order :math:`d + 1`), and doubles :math:`n` until
    two successive extrapolations agree to ``rtol`` relative to :math:`c(0)`.

    Args:
        arch: the architecture.
        mapping: a periodic Fourier mapping.
        max_freq: largest :math:`|m_i|` reported, >= 0.
        kernel: "ntk" or "nngp".
        rtol: target accuracy relative to the largest value.
        resolution: starting points per axis (default: enough for ``max_freq``).
        max_resolution: largest points per axis tried (default 2**20 / 4096 / 256 for
            d = 1 / 2 / 3).

    Returns:
        A :class:`GridSpectrum` of shape :math:`(2M+1)^d` with frequencies
        :math:`-M..M` (increasing) per axis and ``error_estimate`` set. A
        ``RuntimeWarning`` is raised when ``rtol`` is not reached.

    Raises:
        ValueError: the mapping is not periodic (the kernel does not live on the torus:
            use :func:`spectrum` / :func:`grid_spectrum`-style grid eigenvalues
            instead).
    """
    check_arch(arch)
    check_kernel(kernel)
    if not isinstance(mapping, FourierMapping):
        raise TypeError(
            "mapping must be a FourierMapping with integer frequencies; got "
            f"{type(mapping).__name__}"
        )
    if not mapping.is_periodic:
        raise ValueError(
            "continuous_spectrum needs a periodic mapping (integer frequencies: a "
            "kernel "
            "on the torus); this mapping is not periodic: use spectrum(arch, mapping, "
            "Grid(...), k=...) for the eigenvalues of the Gram on a grid (divide by N "
            "for the operator)"
        )
    if isinstance(max_freq, bool) or not isinstance(max_freq, numbers.Integral):
        raise TypeError(f"max_freq must be a non-negative integer; got {max_freq!r}")
    if max_freq < 0:
        raise ValueError(f"max_freq must be >= 0; got {max_freq}")
    if not (isinstance(rtol, numbers.Real) and 0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1); got {rtol!r}")
    d = mapping.dim
    if max_resolution is None:
        max_resolution = {1: 2**20, 2: 4096, 3: 256}[d]
    minimum = {1: 1024, 2: 128, 3: 32}[d]
    n = max(minimum, 8 * (max_freq + 1)) if resolution is None else int(resolution)
    n = 2 ** math.ceil(math.log2(max(n, 2)))
    order = d + 1
    big_m = int(max_freq)

    def level(nn: int) -> np.ndarray:
        op = grid_operator(arch, mapping, Grid((nn,) * d), kernel=kernel)
        lam = _periodic_eigenvalues(op) / float(nn) ** d
        idx = np.arange(-big_m, big_m + 1) % nn
        return lam[np.ix_(*([idx] * d))]

    def richardson(coarse, fine):
        return (2.0**order * fine - coarse) / (2.0**order - 1.0)

    f0, f1 = level(n), level(2 * n)
    prev = richardson(f0, f1)
    err = np.inf
    n *= 2
    while True:
        if 2 * n > max_resolution:
            break
        f2 = level(2 * n)
        cur = richardson(f1, f2)
        err = float(np.max(np.abs(cur - prev)))
        prev, f1 = cur, f2
        n *= 2
        scale = float(np.max(np.abs(cur)))
        if err <= rtol * scale:
            break
    scale = float(np.max(np.abs(prev)))
    if not err <= rtol * scale:
        warnings.warn(
            f"continuous_spectrum: estimated error {err:.2e} above rtol * max "
            f"= {rtol * scale:.2e} at resolution {n} (max_resolution {max_resolution})",
            RuntimeWarning,
            stacklevel=2,
        )
    freqs = tuple(np.arange(-big_m, big_m + 1) for _ in range(d))
    return GridSpectrum(
        prev,
        freqs,
        "eigenvalues of the integral operator on the torus (Fourier coefficients)",
        True,
        error_estimate=err,
    )


def radial_profile(spec: GridSpectrum) -> RadialProfile:
    r"""Group a :class:`GridSpectrum` in integer shells of :math:`|m|` (2D/3D falloff).

    Shell r holds the frequencies with :math:`r - 1/2 < |m| \le r + 1/2` (r = 0 holds
    only :math:`m = 0`); empty shells are dropped.
    """
    if not isinstance(spec, GridSpectrum):
        raise TypeError(f"spec must be a GridSpectrum; got {type(spec).__name__}")
    norms = spec.frequency_norms().reshape(-1)
    vals = np.asarray(spec.values, np.float64).reshape(-1)
    shell = np.ceil(norms - 0.5 - 1e-12).astype(np.int64).clip(min=0)
    count = np.bincount(shell)
    total = np.bincount(shell, weights=vals)
    keep = count > 0
    radius = np.nonzero(keep)[0].astype(np.float64)
    lo = np.full(count.size, np.inf)
    hi = np.full(count.size, -np.inf)
    np.minimum.at(lo, shell, vals)
    np.maximum.at(hi, shell, vals)
    return RadialProfile(
        radius=radius,
        mean=total[keep] / count[keep],
        minimum=lo[keep],
        maximum=hi[keep],
        count=count[keep],
    )


def decay_exponent(
    radius,
    values,
    *,
    fit_range: tuple[float, float],
) -> DecayFit:
    r"""Fit :math:`\lambda \approx C r^{-\alpha}` by least squares on the logs.

    Args:
        radius: frequencies :math:`|m|` (or ranks), any shape.
        values: positive values of the same shape (non-positive ones are skipped).
        fit_range: (low, high): only points with low <= r <= high are used (state it
            beside any reported exponent; the power law holds only asymptotically).

    Returns:
        A :class:`DecayFit`.

    Raises:
        ValueError: fewer than two usable points in ``fit_range``.
    """
    r = np.asarray(radius, np.float64).reshape(-1)
    v = np.asarray(values, np.float64).reshape(-1)
    if r.shape != v.shape:
        raise ValueError(
            f"radius and values must have the same size; got {r.size} and {v.size}"
        )
    lo, hi = (float(fit_range[0]), float(fit_range[1]))
    if not 0 < lo < hi:
        raise ValueError(
            f"fit_range must be (low, high) with 0 < low < high; got {fit_range}"
        )
    use = (r >= lo) & (r <= hi) & (v > 0) & np.isfinite(v)
    if use.sum() < 2:
        raise ValueError(f"fit_range {fit_range} holds fewer than 2 positive values")
    x, y = np.log(r[use]), np.log(v[use])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    return DecayFit(
        exponent=float(-slope),
        prefactor=float(np.exp(intercept)),
        fit_range=(lo, hi),
        num_points=int(use.sum()),
        rms_log_residual=float(np.sqrt(np.mean(resid**2))),
    )
