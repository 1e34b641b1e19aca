r"""NTK regression through a linear measurement operator (indirect supervision).

A network :math:`f` on the N points of a :class:`~ntkspec.Grid` is fitted to M linear
measurements :math:`y = A f(X)` (CT projections, k-space samples, ...) with the loss
:math:`\tfrac12\lVert A f(X) - y\rVert^2`. In the infinite-width (NTK) limit, from
:math:`f_0 = 0`, gradient flow with rate :math:`\eta` gives

.. math::

    f_t = K A^\top \varphi_t(G)\, y, \qquad G = A K A^\top + \delta I, \qquad
    \varphi_t(\lambda) = \frac{1 - e^{-\eta t \lambda}}{\lambda},

and :math:`t \to \infty` the kernel prediction

.. math::

    f^\star = K A^\top (A K A^\top + \delta I)^{-1} y

(Jacot et al. 2018; Lee et al. 2019; the NNGP posterior mean for :math:`\delta > 0`).
Discrete gradient descent for k steps replaces :math:`\varphi_t` by the polynomial
:math:`\varphi_k(\lambda) = (1 - (1 - \eta\lambda)^k)/\lambda`. Neither forms a matrix:
:math:`K` is the FFT operator of the grid (:func:`ntkspec.operators.grid_operator`),
:math:`A` a measurement value (:mod:`ntkspec.measurements`), and :math:`G` their
composition (:func:`ntkspec.operators.composed`), so memory is
:math:`O(N + M + \mathrm{nnz}(A))`.

* :math:`t = \infty`: preconditioned CG (:func:`ntkspec.solvers.cg`) on the M x M
  system :math:`G\alpha = y`, then :math:`f^\star = K A^\top\alpha`.
* finite t or k: the Krylov matrix function :func:`ntkspec.solvers.lanczos_matfun`
  of :math:`G` applied to y.

**The preconditioner for block-structured measurements (CT).** The CT projector
stacks :math:`n_\theta` blocks of W detector bins (one block per angle). By the
Fourier-slice theorem a block :math:`A_a K A_a^\top` is close to a W-periodic
convolution along the detector (the kernel's spectrum on the slice at angle
:math:`\theta_a`), while two different angles only share the low frequencies near
the origin. :class:`BlockCirculantPreconditioner` therefore combines

.. math::

    P^{-1} = Z E^{-1} Z^\top + D^{-1}(I - Z Z^\top), \qquad E = Z^\top G Z,

with :math:`D` the block-diagonal circulant whose symbols are the DFTs of one
measured column of :math:`G` per block (Strang-type, clipped below), and :math:`Z`
the orthonormal real Fourier modes :math:`|k| \le k_0` of every block, where the
angles couple (a coarse space in the sense of two-level domain decomposition;
Nicolaides 1987; Frank & Vuik 2001). :math:`D^{-1}` commutes with :math:`ZZ^\top`,
so :math:`P^{-1}` is symmetric positive definite. It costs :math:`n_\theta +
n_\theta(2k_0+1)` columns of :math:`G` once.

**The default for CT: exact-structure blocks, balanced.** The Strang symbols miss
what makes a block :math:`A_a K A_a^\top` non-circulant: each ray's length inside the
image varies along the detector, and a Toeplitz block is not a circulant one. The
spectrum of the preconditioned matrix showed it (128^2: half of its eigenvalues
below 0.04). :func:`ct_block_model` computes every diagonal block from the kernel in
O(nb (HW + W^2)) (exact at 0 and pi/2, about 1e-3 relative elsewhere), and
:class:`DeflatedBlockPreconditioner` combines the (regularised) block inverses with
the same coarse space in the balancing form :math:`P = (I - QS) D^{-1} (I - SQ) +
Q`, :math:`Q = Z (Z^\top S Z)^{-1} Z^\top` (Mandel 1993; Tang et al. 2009), which
needs no more products with :math:`S` than the coarse setup. Measured iteration
counts (relative residual 1e-8, Gaussian sigma 4): 128^2: 92 against 270 for the
block-circulant one; 512^2: 286 against 1568. At 512^2 the coarse space matters
most: k0 = 2, 4, 6, 8, 12 took 2658, 1202, 403, 288, 285 iterations (100 to 500
setup columns), hence k0 = 8. Timings are in the README and
``figures/bench/ct.json``.

**Setup cost.** The "auto"/"ct" setup is the ``nb (2k_0 + 1)`` products
:math:`GZ` (the model check reuses them), formed per angle: block a of Z touches
only the W rows of angle a, so :math:`A_a^\top Z_a` comes from those rows, then K
(one padded FFT per column: on a 512^2 grid one column is faster than a batch) and
A; then :func:`ct_block_model` and one Cholesky inverse (LAPACK potrf/potri) per
block.

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018, arXiv:1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, arXiv:1902.06720.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (Table 1, CT).
    Kak & Slaney, "Principles of Computerized Tomographic Imaging", IEEE Press, 1988
    (the Fourier-slice theorem).
    Nicolaides, "Deflation of conjugate gradients with applications to boundary value
    problems", SIAM J. Numer. Anal. 24(2), 1987.
    Frank & Vuik, "On the construction of deflation-based preconditioners", SIAM J.
    Sci. Comput. 23(2), 2001.
    Mandel, "Balancing domain decomposition", Commun. Numer. Methods Eng. 9(3), 1993.
    Tang, Nabben, Vuik & Erlangga, "Comparison of two-level preconditioners derived
    from deflation, domain decomposition and multigrid methods", J. Sci. Comput.
    39(3), 2009.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time as _time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._deprecation import renamed_arguments
from ._numerics import check_dense_request, dense_cap_bytes, x64_scope
from ._validation import (
    check_grid,
    check_kernel,
    check_positive_int,
    check_real,
    check_targets,
)
from .kernels import check_arch
from .linalg.cg import cg
from .linalg.dense import psd_solve
from .linalg.funm import (
    check_gd_stability,
    gd_filter,
    lanczos_matfun,
    lanczos_matfuns,
    largest_eigenvalue,
)
from .linalg.solution import ConvergenceWarning
from .mappings import check_mapping, check_stationary_mapping
from .measurements import (
    KSpaceMask,
    SparseMeasurement,
    as_measurement,
    ct_ray_extents,
    kspace_preconditioner,
)
from .operators import (
    ComposedOperator,
    Shifted,
    composed,
    grid_operator,
    kernel_operator,
    structure,
)
from .sharding import check_mesh, host_value, shard_operator

__all__ = [
    "InverseInfo",
    "BlockCirculantPreconditioner",
    "DeflatedBlockPreconditioner",
    "block_circulant_preconditioner",
    "ct_block_model",
    "deflated_block_preconditioner",
    "coarse_ct_operator",
    "mean_measured_diagonal",
    "inverse_regression",
    "inverse_regression_path",
]


#: Fourier modes per block kept exactly by the "auto" preconditioner (k0).
_COARSE_MODES = 8

#: Relative regularisation of the model blocks (``floor`` of the balancing one).
_BLOCK_FLOOR = 1e-4


def _ct_floor(w: int) -> float:
    """The "auto"/"ct" floor for W detector bins: 1e-4 up to W = 128, then 1e-4 x 128/W.

    Measured iterations to 1e-8 (CT, Gaussian sigma 4, k0 = 8): 128^2: floor 1e-4,
    3e-5, 1e-5: 92, 148, 244; 512^2: 1e-3, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6: 725, 288,
    210, 238, 222, 337. The model's relative error matters less as W grows.
    """
    return _BLOCK_FLOOR * min(1.0, 128.0 / w)


@dataclasses.dataclass(frozen=True)
class InverseInfo:
    r"""Diagnostics of one :func:`inverse_regression` call.

    Attributes:
        solver: "pcg" or "cg" (t = infinity), "lanczos" (finite time); on the
            dense path "cholesky" (or "eigh", its minimum-norm fallback) at
            t = infinity and "eigh" at finite time.
        iterations: CG iterations, or the Krylov dimension (0 on the dense path).
        residual: relative residual :math:`\max_j\|y_j - G\alpha_j\|/\|y_j\|`
            (CG, and the dense solve at t = infinity), or the Lanczos error
            estimate (finite time; 0 on the dense path).
        converged: whether ``residual`` met ``rtol`` (always True on the dense
            path: a direct solve, its residual reported as it is).
        ridge: the absolute ridge :math:`\delta`.
        preconditioner: name of the preconditioner used ("none", "ct", "blocks",
            "kspace").
        setup_matvecs: columns of :math:`G` spent building the preconditioner.
        setup_seconds: wall seconds spent building the preconditioner.
        solve_seconds: wall seconds of the iterations (CG or Lanczos).
    """

    solver: str
    iterations: int
    residual: float
    converged: bool
    ridge: float
    preconditioner: str = "none"
    setup_matvecs: int = 0
    setup_seconds: float = 0.0
    solve_seconds: float = 0.0


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["operator"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class _ColumnByColumn:
    """``operator``, with a block of at most 4 columns applied one column at a time.

    The same linear map; on a large grid the padded FFT of K is faster for one column
    than for an (N, 1) or (N, c) block (see :func:`_matvec_chunked`).
    """

    operator: object

    @property
    def shape(self):
        """The operator's shape."""
        return self.operator.shape

    @property
    def dtype(self):
        """The operator's dtype."""
        return self.operator.dtype

    def matvec(self, v):
        """The operator's product with v, (M,) or (M, c)."""
        if v.ndim == 1 or v.shape[1] > 4:
            return self.operator.matvec(v)
        cols = [self.operator.matvec(v[:, j]) for j in range(v.shape[1])]
        return jnp.stack(cols, axis=1)


# --------------------------------------------------------------------------------------
# The block-circulant two-level preconditioner.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inverse_symbols", "basis", "coarse_inverse"],
    meta_fields=["num_blocks", "block_size"],
)
@dataclasses.dataclass(frozen=True)
class BlockCirculantPreconditioner:
    r"""The preconditioner :math:`P^{-1} = Z E^{-1} Z^\top + D^{-1}(I - ZZ^\top)`.

    See the module docstring.

    Attributes:
        inverse_symbols: :math:`1/d_a(k)` on the real half-spectrum of every block,
            shape (num_blocks, block_size // 2 + 1).
        basis: the per-block orthonormal real Fourier modes, (block_size, q).
        coarse_inverse: :math:`E^{-1}`, (num_blocks * q, num_blocks * q).
        num_blocks: number of blocks (static).
        block_size: rows per block (static).
    """

    inverse_symbols: jax.Array
    basis: jax.Array
    coarse_inverse: jax.Array
    num_blocks: int
    block_size: int

    def apply(self, r):
        """:math:`P^{-1} r` for r of shape (M,) or (M, c)."""
        nb, w = self.num_blocks, self.block_size
        R = r.reshape(nb, w, -1)
        DR = jnp.fft.irfft(
            jnp.fft.rfft(R, axis=1) * self.inverse_symbols[:, :, None], n=w, axis=1
        )
        zr = jnp.einsum("wq,awc->aqc", self.basis, R).reshape(-1, R.shape[2])
        zd = jnp.einsum("wq,awc->aqc", self.basis, DR)
        coarse = (self.coarse_inverse @ zr).reshape(zd.shape) - zd
        out = DR + jnp.einsum("wq,aqc->awc", self.basis, coarse)
        return out.reshape(r.shape).astype(r.dtype)


def _fourier_basis(w: int, k0: int) -> np.ndarray:
    """Orthonormal real Fourier modes 1, cos, sin of |k| <= k0 on w points, (w, q)."""
    j = np.arange(w)
    cols = [np.full(w, 1.0 / math.sqrt(w))]
    for k in range(1, min(k0, (w - 1) // 2) + 1):
        cols.append(np.cos(2 * np.pi * k * j / w) * math.sqrt(2.0 / w))
        cols.append(np.sin(2 * np.pi * k * j / w) * math.sqrt(2.0 / w))
    return np.stack(cols, axis=1)


@jax.jit
def _apply_operator(operator, V):
    return operator.matvec(V)


@jax.jit
def _apply_forward(measurement, V):
    return measurement.forward(V)


@jax.jit
def _apply_adjoint(measurement, V):
    return measurement.adjoint(V)


#: Grid values per batched FFT product; above it, K is applied one column at a time.
_BATCH_VALUES = 2**16


def _jit_or_eager(value, fn, eager):
    """``fn`` (jitted over the value) when every leaf is an array, else ``eager``."""
    leaves_ok = all(
        isinstance(x, jax.Array | np.ndarray) for x in jax.tree_util.tree_leaves(value)
    )
    return fn if leaves_ok else eager


def _matvec_chunked(operator, V: np.ndarray, chunk: int | None = None) -> np.ndarray:
    r"""``operator.matvec`` on the columns of V (M, r), in chunks of columns.

    On large grids a product with one column is faster per column than a batched one
    (the padded FFT of one column stays in cache; timings in
    ``docs/results/benchmarks.md``), so the kernel operator is applied to one column
    at a time once the grid holds more than ``_BATCH_VALUES`` points. For
    :math:`A K A^\top` the sparse products with A and :math:`A^\top` stay batched
    over a chunk (they are cheaper per column that way).
    """
    m, r = operator.shape[0], V.shape[1]
    inner = getattr(operator, "operator", None)
    n = int(getattr(inner, "shape", (0,))[0] or 0)
    per_k = max(1, _BATCH_VALUES // max(n, 1))
    if chunk is None:
        chunk = max(16, min(512, 2**22 // max(n, 1)))
    out = np.empty((m, r))
    if isinstance(operator, ComposedOperator):
        A = operator.measurement
        fwd = _jit_or_eager(A, _apply_forward, lambda a, v: a.forward(v))
        adj = _jit_or_eager(A, _apply_adjoint, lambda a, v: a.adjoint(v))
        kmv = _jit_or_eager(inner, _apply_operator, lambda op, v: op.matvec(v))
        for s in range(0, r, chunk):
            U = adj(A, jnp.asarray(V[:, s : s + chunk]))
            parts = []
            for t in range(0, U.shape[1], per_k):
                part = U[:, t] if per_k == 1 else U[:, t : t + per_k]
                res = kmv(inner, part)
                parts.append(res[:, None] if per_k == 1 else res)
            out[:, s : s + chunk] = np.asarray(fwd(A, jnp.concatenate(parts, axis=1)))
        return out
    apply = _jit_or_eager(operator, _apply_operator, lambda op, v: op.matvec(v))
    for s in range(0, r, chunk):
        out[:, s : s + chunk] = np.asarray(
            apply(operator, jnp.asarray(V[:, s : s + chunk]))
        )
    return out


def _coarse_products(G, basis: np.ndarray, Z: np.ndarray) -> np.ndarray:
    r"""The products :math:`G Z` with the block-diagonal coarse basis, (M, nb q).

    For a sparse CT-layout measurement on a large grid, block a of Z touches only
    the rows of angle a, so :math:`A^\top Z` is formed per angle from those W rows of
    the CSR matrix (a twentieth of the work of a full :math:`A^\top` product), K is
    applied one column at a time (see :func:`_matvec_chunked`) and A to the q
    columns of the angle at once, all in float64. Otherwise the generic
    :func:`_matvec_chunked`.
    """
    if not isinstance(G, ComposedOperator):
        return _matvec_chunked(G, Z)
    A, K = G.measurement, G.operator
    m, n = G.shape[0], K.shape[0]
    w, q = basis.shape
    nb = m // w
    leaves_ok = all(
        isinstance(x, jax.Array | np.ndarray) for x in jax.tree_util.tree_leaves(K)
    )
    if not (isinstance(A, SparseMeasurement) and n > _BATCH_VALUES and leaves_ok):
        return _matvec_chunked(G, Z)
    S = A.to_scipy()
    out = np.empty((m, nb * q))
    for a in range(nb):
        U = np.asarray(S[a * w : (a + 1) * w].T @ basis)  # (N, q)
        KU = np.stack(
            [np.asarray(_apply_operator(K, jnp.asarray(U[:, j]))) for j in range(q)],
            axis=1,
        )
        out[:, a * q : (a + 1) * q] = S @ KU
    return out


def _block_basis(nb: int, w: int, k0: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-block basis (w, q) and the block-diagonal Z (nb w, nb q)."""
    basis = _fourier_basis(w, k0)
    q = basis.shape[1]
    Z = np.zeros((nb * w, nb * q))
    for a in range(nb):
        Z[a * w : (a + 1) * w, a * q : (a + 1) * q] = basis
    return basis, Z


def block_circulant_preconditioner(
    operator,
    num_blocks: int,
    *,
    shift: float = 0.0,
    coarse_modes: int = 6,
    coarse_operator=None,
) -> BlockCirculantPreconditioner:
    r"""The two-level block-circulant preconditioner of ``operator`` + ``shift`` I.

    ``operator`` is M x M with M = ``num_blocks`` x W (e.g. :math:`A K A^\top` of the
    CT projector, blocks = angles). One column of every block's centre is measured
    (one batched matvec) and its DFT, clipped below at :math:`10^{-3}` of its largest
    value, is that block's circulant symbol. The coarse matrix
    :math:`E = Z^\top(\text{operator} + \text{shift}\,I)Z` is formed from
    ``num_blocks * (2 coarse_modes + 1)`` more columns of ``operator``, or, with
    ``coarse_operator`` (the same blocks at :math:`W_c < W` bins each, e.g. the CT
    problem on a coarser grid), as :math:`(W/W_c)\, Z_c^\top G_c Z_c + \text{shift}
    \, I`: the low Fourier modes are resolved on the coarse grid, and an
    orthonormal mode on W points is :math:`\sqrt{W_c/W}` times its coarse samples,
    while a line average does not depend on the resolution.

    Args:
        operator: symmetric positive semi-definite, with ``shape`` and ``matvec``.
        num_blocks: number of blocks, dividing M.
        shift: :math:`\delta \ge 0` added to the operator.
        coarse_modes: :math:`k_0 \ge 0`, the per-block Fourier modes kept exactly.
        coarse_operator: None, or an :math:`M_c \times M_c` operator with the same
            number of blocks, approximating ``operator`` at a coarser resolution.

    Returns:
        A :class:`BlockCirculantPreconditioner`.

    Raises:
        ValueError: ``num_blocks`` does not divide M (or :math:`M_c`), or a negative
            argument.
    """
    m = int(operator.shape[0])
    nb = check_positive_int(num_blocks, "num_blocks")
    k0 = check_positive_int(coarse_modes, "coarse_modes", minimum=0)
    check_real(shift, "shift", low=0.0)
    if m % nb:
        raise ValueError(
            f"num_blocks must divide the operator's size M = {m}; got {num_blocks}"
        )
    w = m // nb
    with x64_scope(np.float64):
        cols = _centre_columns(operator, nb, w)
        if coarse_operator is None:
            basis, Z = _block_basis(nb, w, k0)
            E = Z.T @ _matvec_chunked(operator, Z)
        else:
            mc = int(coarse_operator.shape[0])
            if mc % nb:
                raise ValueError(
                    f"num_blocks must divide the coarse operator's size {mc}; got "
                    f"{num_blocks}"
                )
            wc = mc // nb
            k0 = min(k0, (wc - 1) // 2)
            basis, _ = _block_basis(nb, w, k0)
            _, Zc = _block_basis(nb, wc, k0)
            E = (w / wc) * (Zc.T @ _matvec_chunked(coarse_operator, Zc))
        return _block_circulant_from(cols, basis, E, shift)


def _centre_columns(operator, nb: int, w: int) -> np.ndarray:
    """The columns of ``operator`` at the centre of every block, (nb w, nb)."""
    probe = np.zeros((nb * w, nb))
    probe[np.arange(nb) * w + w // 2, np.arange(nb)] = 1.0
    return _matvec_chunked(operator, probe)


def _block_circulant_from(cols, basis, E, shift) -> BlockCirculantPreconditioner:
    """The preconditioner from the centre columns and the unshifted coarse E."""
    nb = cols.shape[1]
    w = cols.shape[0] // nb
    sym = np.empty((nb, w // 2 + 1))
    for a in range(nb):
        col = np.roll(cols[a * w : (a + 1) * w, a], -(w // 2))
        sym[a] = np.fft.rfft(col).real
    sym = np.maximum(sym, 1e-3 * sym.max(axis=1, keepdims=True)) + shift
    E = 0.5 * (E + E.T) + shift * np.eye(E.shape[0])
    lam, vec = np.linalg.eigh(E)
    lam = np.maximum(lam, 1e-14 * lam.max())
    e_inv = (vec / lam) @ vec.T
    with x64_scope(np.float64):
        return BlockCirculantPreconditioner(
            jnp.asarray(1.0 / sym), jnp.asarray(basis), jnp.asarray(e_inv), nb, w
        )


# --------------------------------------------------------------------------------------
# Exact-structure diagonal blocks and the balancing (deflated) block preconditioner.
# --------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["block_inverse", "basis", "coarse_inverse", "operator_basis"],
    meta_fields=["num_blocks", "block_size"],
)
@dataclasses.dataclass(frozen=True)
class DeflatedBlockPreconditioner:
    r"""The balancing preconditioner :math:`P = (I - QS) D^{-1} (I - SQ) + Q`.

    :math:`S` is the (shifted) system matrix, :math:`D` a block-diagonal
    approximation of it, :math:`Z` the block-diagonal basis of the low per-block
    Fourier modes, :math:`E = Z^\top S Z` and :math:`Q = Z E^{-1} Z^\top`
    (balancing Neumann-Neumann / BNN; Mandel 1993; Tang, Nabben, Vuik & Erlangga
    2009). :math:`P` is symmetric positive definite for any SPD :math:`D`, and
    :math:`PS` is the identity on the coarse space. :math:`SZ` is stored, so one
    application costs two products with the (M, nb q) matrix :math:`SZ` and one
    batched product with the blocks, and no product with :math:`S`.

    Attributes:
        block_inverse: :math:`D^{-1}`, shape (num_blocks, block_size, block_size).
        basis: the per-block orthonormal real Fourier modes, (block_size, q).
        coarse_inverse: :math:`E^{-1}`, (num_blocks * q, num_blocks * q).
        operator_basis: :math:`SZ`, (M, num_blocks * q).
        num_blocks: number of blocks (static).
        block_size: rows per block (static).
    """

    block_inverse: jax.Array
    basis: jax.Array
    coarse_inverse: jax.Array
    operator_basis: jax.Array
    num_blocks: int
    block_size: int

    def apply(self, r):
        """:math:`P r` for r of shape (M,) or (M, c)."""
        nb, w = self.num_blocks, self.block_size
        q = self.basis.shape[1]
        R = r.reshape(nb * w, -1)
        c = R.shape[1]
        zr = jnp.einsum("wq,awc->aqc", self.basis, R.reshape(nb, w, c))
        ez = self.coarse_inverse @ zr.reshape(nb * q, c)
        u = R - self.operator_basis @ ez
        v = jnp.einsum("avw,awc->avc", self.block_inverse, u.reshape(nb, w, c))
        v = v.reshape(nb * w, c)
        # (v^T SZ)^T: XLA's CPU dot with a transposed (M, nb q) operand copies it
        # (measured 19 ms against 2 ms at 512^2).
        zv = self.coarse_inverse @ jnp.dot(v.T, self.operator_basis).T
        corr = jnp.einsum("wq,aqc->awc", self.basis, (ez - zv).reshape(nb, q, c))
        out = v + corr.reshape(nb * w, c)
        return out.reshape(r.shape).astype(r.dtype)


def _largest_eigenvalues(B: np.ndarray, iters: int = 30) -> np.ndarray:
    """Largest eigenvalue of each symmetric PSD block of B (nb, W, W), power steps."""
    v0 = np.ones(B.shape[:2]) / math.sqrt(B.shape[1])
    return largest_eigenvalue(
        lambda v: np.einsum("avw,aw->av", B, v), v0=v0, iters=iters
    )


def _spd_inverses(B: np.ndarray, floor: float) -> np.ndarray:
    """Inverses of the regularised blocks (nb, W, W), by Cholesky (LAPACK potrf/potri).

    Cholesky is cheaper than eigh, and on a shared machine far less sensitive to a
    threaded BLAS's contention; ``potri`` forms the inverse from the factor in
    :math:`W^3` flops instead of the :math:`2W^3` of solving against the identity. A
    block that is still indefinite has its eigenvalues clipped at ``floor`` times
    the largest in absolute value (a block with no positive eigenvalue included).
    """
    from scipy.linalg import lapack

    out = np.empty_like(B)
    for a in range(B.shape[0]):
        factor, info = lapack.dpotrf(B[a], lower=1, clean=0)
        if info == 0:
            inv, info = lapack.dpotri(factor, lower=1)
        if info == 0:
            low = np.tril(inv)
            out[a] = low + np.tril(low, -1).T
        else:  # an indefinite model block: clip its spectrum
            lam, vec = np.linalg.eigh(B[a])
            top = max(float(np.abs(lam).max()), 1e-300)  # the spectral radius
            out[a] = (vec / np.maximum(lam, floor * top)) @ vec.T
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def deflated_block_preconditioner(
    operator,
    blocks,
    *,
    shift: float = 0.0,
    coarse_modes: int = _COARSE_MODES,
    floor: float = _BLOCK_FLOOR,
) -> DeflatedBlockPreconditioner:
    r"""The balancing preconditioner of ``operator`` + ``shift`` I from model blocks.

    ``blocks`` approximate the diagonal blocks of ``operator`` (M x M, M =
    nb x W, e.g. :func:`ct_block_model` for :math:`A K A^\top`). Each block is
    regularised by ``floor`` times its largest eigenvalue (below that a model's
    error dominates, and inverting it would amplify the error), and ``shift`` is
    added: :math:`D_a = B_a + (\text{floor}\,\lambda_{\max}(B_a) + \text{shift})
    I`, inverted once by Cholesky. The coarse space is spanned by the
    per-block real Fourier modes :math:`|k| \le k_0`, whose images :math:`SZ` cost
    ``nb * (2 coarse_modes + 1)`` columns of ``operator`` once (see
    :class:`DeflatedBlockPreconditioner`).

    Args:
        operator: symmetric positive semi-definite, with ``shape`` and ``matvec``.
        blocks: shape (nb, W, W) with nb W = M, symmetric (symmetrised here).
        shift: :math:`\delta \ge 0` added to the operator.
        coarse_modes: :math:`k_0 \ge 0`.
        floor: the blocks' relative regularisation, in [0, 1).

    Returns:
        A :class:`DeflatedBlockPreconditioner`.

    Raises:
        ValueError: ``blocks`` does not tile the operator, or a bad argument.
    """
    m = int(operator.shape[0])
    k0 = check_positive_int(coarse_modes, "coarse_modes", minimum=0)
    check_real(shift, "shift", low=0.0)
    check_real(floor, "floor", low=0.0)
    if not floor < 1.0:
        raise ValueError(f"floor must be in [0, 1); got {floor!r}")
    B = np.asarray(blocks, dtype=np.float64)
    if B.ndim != 3 or B.shape[1] != B.shape[2] or B.shape[0] * B.shape[1] != m:
        raise ValueError(
            f"blocks must have shape (nb, W, W) with nb * W = M = {m}; got {B.shape}"
        )
    nb, w = B.shape[0], B.shape[1]
    basis, Z = _block_basis(nb, w, k0)
    with x64_scope(np.float64):
        GZ = _coarse_products(operator, basis, Z)
    return _deflated_from_products(B, basis, Z, GZ, shift, floor)


def _deflated_from_products(B, basis, Z, GZ, shift, floor):
    """:class:`DeflatedBlockPreconditioner` from the blocks and measured products GZ."""
    nb, w = B.shape[0], B.shape[1]
    B = 0.5 * (B + np.swapaxes(B, 1, 2))
    top = _largest_eigenvalues(B)
    d_inv = _spd_inverses(
        B + (floor * top + shift)[:, None, None] * np.eye(w), max(floor, 1e-12)
    )
    SZ = GZ + shift * Z
    E = Z.T @ SZ
    E = 0.5 * (E + E.T)
    el, ev = np.linalg.eigh(E)
    el = np.maximum(el, 1e-14 * el.max())
    e_inv = (ev / el) @ ev.T
    with x64_scope(np.float64):
        return DeflatedBlockPreconditioner(
            jnp.asarray(d_inv),
            jnp.asarray(basis),
            jnp.asarray(e_inv),
            jnp.asarray(SZ),
            nb,
            w,
        )


def ct_block_model(kernel_operator, num_angles: int = 20) -> np.ndarray:
    r"""The diagonal blocks :math:`A_a K A_a^\top` of the CT Gram, from the kernel.

    For the projector of :func:`ntkspec.measurements.ct_projections` on the grid of
    ``kernel_operator`` (a :class:`~ntkspec.operators.GridKernelOperator` of a
    stationary kernel k), measurement :math:`aW + j` is :math:`\frac1H\sum_{i =
    s_j}^{e_j} f(p_a(i, j))` over the ray's samples (:func:`~ntkspec.measurements.
    ct_ray_extents`), so exactly

    .. math::

        (A_a K A_a^\top)_{jj'} = \frac{1}{H^2} \sum_{i=s_j}^{e_j}
        \sum_{i'=s_{j'}}^{e_{j'}} k\big(p_a(i,j) - p_a(i',j')\big).

    The model replaces the difference of the rounded sample positions by the rounded
    rotated offset, :math:`p_a(i,j) - p_a(i',j') \approx \mathrm{round}(R_a(i-i',
    j-j'))` (exact at :math:`\theta = 0, \pi/2`). Then the double sum is a sum over
    :math:`d = i - i'` of :math:`\kappa_{j-j'}(d)` times the number of pairs with
    that difference, a trapezoid in d, evaluated in O(1) per entry from second
    cumulative sums of :math:`\kappa` along d. Cost O(nb (H W + W^2)); measured
    relative Frobenius error about 1e-3 at 128^2 for oblique angles (CT, Gaussian
    sigma 4).

    Args:
        kernel_operator: the kernel on a 2D grid (H, W) (its ``column``, circulant or
            embedded).
        num_angles: :math:`n_\theta`, the projector's angles.

    Returns:
        The model blocks, shape (num_angles, W, W), float64.
    """
    grid = kernel_operator.grid
    if grid.dim != 2:
        raise ValueError(f"ct_block_model needs a 2D grid; got {grid.shape}")
    nb = check_positive_int(num_angles, "num_angles")
    h, w = grid.shape
    col = np.asarray(kernel_operator.column, dtype=np.float64)
    h2, w2 = col.shape
    first, last = ct_ray_extents((h, w), nb)
    dj = np.arange(-(w - 1), w)[:, None]
    di = np.arange(-(h - 1), h)[None, :]
    jj, jp = np.meshgrid(np.arange(w), np.arange(w), indexing="ij")
    row = (jj - jp) + w - 1
    out = np.empty((nb, w, w))
    for a, theta in enumerate(np.linspace(0.0, np.pi, nb + 1)[:-1]):
        cos, sin = math.cos(theta), math.sin(theta)
        dr = np.rint(dj * sin * h / w + di * cos).astype(np.int64)
        dc = np.rint(dj * cos - di * sin * w / h).astype(np.int64)
        kap = col[dr % h2, dc % w2]  # [j - j' + W - 1, d + H - 1]
        zero = np.zeros((kap.shape[0], 1))
        c1 = np.concatenate([zero, np.cumsum(kap, axis=1)], axis=1)
        c2 = np.concatenate([zero, np.cumsum(c1, axis=1)], axis=1)
        tot0 = c1[:, -1][row]
        tot1 = (kap @ np.arange(-(h - 1), h, dtype=np.float64))[row]

        def ramp(c, row=row, c2=c2, tot0=tot0, tot1=tot1):
            # sum_d k(d) max(d - c, 0) = sum_d (d - c) k(d) + sum_{d <= c} (c - d) k(d)
            below = c2[row, np.clip(c + h, 0, c2.shape[1] - 1)]
            return tot1 - c * tot0 + below

        s1, e1 = first[a][jj], last[a][jj]
        s2, e2 = first[a][jp], last[a][jp]
        val = ramp(s1 - e2 - 1) - ramp(s1 - s2) - ramp(e1 - e2) + ramp(e1 - s2 + 1)
        empty = (e1 < s1) | (e2 < s2)
        out[a] = np.where(empty, 0.0, val) / h**2
    return out


def _ct_model_matches(blocks, basis, GZ, tol: float = 0.05) -> bool:
    """Whether the model blocks match the measured products with the coarse modes.

    Block a of ``GZ`` (the measured :math:`G Z`, rows and columns of block a) is
    :math:`G_{aa} Z_a`; the model's is ``blocks[a] @ basis``. They must agree to
    ``tol`` (relative Frobenius norm) for every block. The products are those of the
    coarse space, so the check costs no product with G.
    """
    nb, w = blocks.shape[0], blocks.shape[1]
    q = basis.shape[1]
    for a in range(nb):
        got = GZ[a * w : (a + 1) * w, a * q : (a + 1) * q]
        want = blocks[a] @ basis
        if not np.linalg.norm(got - want) <= tol * np.linalg.norm(got):
            return False
    return True


def coarse_ct_operator(arch, mapping, grid, forward, factor: int, *, kernel="ntk"):
    r"""The measured Gram of a sparse block measurement on a ``factor``-coarser grid.

    :math:`G_c = A_c K_c A_c^\top` with :math:`A_c = R A P`: :math:`P` upsamples a
    coarse image piecewise-constantly onto ``grid``, :math:`R` averages groups of
    ``factor`` consecutive measurements (detector bins of one angle), and
    :math:`K_c` is the kernel on the coarse grid (spacing ``factor`` fine pixels).
    As the ``coarse_operator`` of :func:`block_circulant_preconditioner` it is cheap
    but measured worse than the exact coarse matrix (CT, Gaussian sigma 4, k0 = 24:
    469 iterations at 128^2 against 110; no convergence in 1500 at 512^2), so the
    "auto" preconditioner does not use it.

    Args:
        arch: the architecture.
        mapping: the Fourier mapping.
        grid: the fine 2D grid (H, W), both sides multiples of ``factor``.
        forward: a :class:`~ntkspec.measurements.SparseMeasurement` whose M is a
            multiple of ``factor``.
        factor: the coarsening factor r >= 1.
        kernel: "ntk" or "nngp".

    Returns:
        The :class:`~ntkspec.operators.ComposedOperator` :math:`G_c`.
    """
    import scipy.sparse

    from .grid import Grid

    r = check_positive_int(factor, "factor")
    h, w = grid.shape
    m = forward.shape[0]
    if h % r or w % r or m % r:
        raise ValueError(
            f"factor {r} must divide the grid sides {grid.shape} and M = {m}"
        )
    hc, wc = h // r, w // r
    fine = np.arange(h * w)
    coarse_idx = (fine // w // r) * wc + (fine % w) // r
    P = scipy.sparse.csr_array(
        (np.ones(h * w), (fine, coarse_idx)), shape=(h * w, hc * wc)
    )
    rows = np.arange(m)
    R = scipy.sparse.csr_array(
        (np.full(m, 1.0 / r), (rows // r, rows)), shape=(m // r, m)
    )
    Ac = scipy.sparse.csr_array(R @ forward.to_scipy() @ P)
    Kc = grid_operator(arch, mapping, Grid((hc, wc)), kernel=kernel)
    return composed(as_measurement(Ac), Kc)


def mean_measured_diagonal(operator, *, rows: int | None = 64) -> float:
    r"""Mean of the diagonal of an M x M operator (e.g. :math:`A K A^\top`).

    Exact from all M unit vectors when ``rows`` is None or >= M; otherwise the mean
    over ``rows`` evenly spaced diagonal entries (one batched matvec), an estimate.

    Args:
        operator: square, with ``shape`` and ``matvec``.
        rows: how many diagonal entries to measure, or None for all.
    """
    m = int(operator.shape[0])
    take = m if rows is None else min(check_positive_int(rows, "rows"), m)
    idx = np.unique(np.linspace(0, m - 1, take).round().astype(np.int64))
    total = 0.0
    with x64_scope(np.float64):
        for start in range(0, idx.size, 16):
            part = idx[start : start + 16]
            probe = np.zeros((m, part.size))
            probe[part, np.arange(part.size)] = 1.0
            out = np.asarray(operator.matvec(jnp.asarray(probe)))
            total += float(np.sum(out[part, np.arange(part.size)]))
    return total / idx.size


# --------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------


def _check_y(y, m: int) -> np.ndarray:
    if isinstance(y, list | tuple):
        y = np.asarray(y)
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise TypeError(
            f"y must be an array of shape (M,) or (M, c); got {type(y).__name__}"
        )
    return check_targets(y, m, "y", "the forward map", unit="measurements (M)")


def _as_forward(forward, grid):
    if (
        isinstance(forward, tuple | list)
        and len(forward) == 2
        and all(callable(f) for f in forward)
    ):
        # M from the forward function applied to a vector of the grid's N points.
        with x64_scope(np.float64):
            try:
                out = jax.eval_shape(
                    forward[0], jax.ShapeDtypeStruct((grid.size,), np.float64)
                )
            except Exception as err:  # any failure to trace names the argument
                raise ValueError(
                    f"forward[0] (A) could not be applied to a vector of the grid's "
                    f"N = {grid.size} points: {err}"
                ) from err
        if len(getattr(out, "shape", ())) != 1:
            raise ValueError(
                f"forward[0] (A) must map shape ({grid.size},) to (M,); got "
                f"{getattr(out, 'shape', type(out).__name__)}"
            )
        forward = as_measurement(tuple(forward), shape=(int(out.shape[0]), grid.size))
    if isinstance(forward, ComposedOperator):
        forward = forward.measurement
    try:
        op = as_measurement(forward)
    except (TypeError, ValueError) as err:
        raise type(err)(f"forward: {err}") from err
    if op.shape[1] != grid.size:
        raise ValueError(
            f"forward has N = {op.shape[1]} columns but the grid {grid.shape} has "
            f"{grid.size} points; they must match (C order of the grid)"
        )
    if op.shape[0] < 1:
        raise ValueError(
            f"forward has no rows (M = {op.shape[0]} measurements, shape "
            f"{tuple(op.shape)}): there is nothing to fit; give at least one "
            "measurement (e.g. a k-space mask that keeps a coefficient)"
        )
    return op


def _cg_verdict(residual: float, ridge: float) -> str:
    """What a CG run that missed its tolerance returned, said honestly."""
    if not residual < 1.0:
        return (
            f"and made no progress or diverged: its relative residual {residual:.2e} "
            "is no better than the zero start's (1), so the returned values are not a "
            "solution. The system is likely inconsistent (y outside the range of "
            f"A K A^T) or too ill-conditioned at ridge = {ridge:g}: add a ridge."
        )
    return (
        f"(reached {residual:.2e}); the last iterate is returned. Raise max_iter, "
        "loosen rtol or add a ridge."
    )


def _check_time(times, discrete, learning_rate):
    """``(time, steps)``: a flow time or a GD step count (None, None for t = inf)."""
    if not isinstance(discrete, bool):
        raise TypeError(f"discrete must be True or False; got {discrete!r}")
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    if times is None:
        return None, None
    if discrete:
        return None, check_positive_int(
            times, "times (GD steps, discrete=True)", minimum=0
        )
    times = float(check_real(times, "times", low=0.0, allow_inf=True))
    return (None if math.isinf(times) else times), None


def _pick_preconditioner(preconditioner, G, forward, grid, ridge):
    """(value or None, name, setup matvecs)."""
    if preconditioner is None or preconditioner == "none":
        return None, "none", 0
    if isinstance(preconditioner, str) and G.operator.structure not in (
        "circulant",
        "toeplitz",
    ):
        if preconditioner == "auto":
            return None, "none", 0
        if preconditioner in ("ct", "blocks", "kspace"):
            raise ValueError(
                f"preconditioner={preconditioner!r} needs the grid operator of a "
                "Fourier mapping; with raw coordinates use 'auto', None or a value "
                "with apply(r)"
            )
    if isinstance(preconditioner, str):
        if preconditioner not in ("auto", "ct", "blocks", "kspace"):
            raise ValueError(
                "preconditioner must be 'auto', 'ct', 'blocks', 'kspace', None or a "
                f"value with apply(r); got {preconditioner!r}"
            )
        if preconditioner == "kspace" or (
            preconditioner == "auto" and isinstance(forward, KSpaceMask)
        ):
            return _kspace_preconditioner(G, forward, ridge)
        m = G.shape[0]
        w = grid.shape[-1]
        # The CT layout: angle-major blocks of W detector bins.
        blocky = grid.dim == 2 and m % w == 0 and m // w >= 2
        if preconditioner != "auto" and not blocky:
            raise ValueError(
                f"preconditioner={preconditioner!r} needs M = {m} to be a multiple "
                f"(>= 2) of the grid's last side W = {w} (angle-major CT projections)"
            )
        if preconditioner == "auto" and (
            not blocky or not isinstance(forward, SparseMeasurement) or m < 512
        ):
            return None, "none", 0
        nb = m // w
        if preconditioner == "blocks":
            pre = block_circulant_preconditioner(
                G, nb, shift=ridge, coarse_modes=_COARSE_MODES
            )
            return pre, "blocks", nb + nb * int(pre.basis.shape[1])
        # "auto" and "ct": the products G Z with the coarse modes serve the model
        # check, the balancing preconditioner and the block-circulant fallback.
        basis, Z = _block_basis(nb, w, _COARSE_MODES)
        with x64_scope(np.float64):
            GZ = _coarse_products(G, basis, Z)
        setup = nb * int(basis.shape[1])
        blocks = ct_block_model(G.operator, nb)
        if preconditioner == "ct" or _ct_model_matches(blocks, basis, GZ):
            pre = _deflated_from_products(blocks, basis, Z, GZ, ridge, _ct_floor(w))
            return pre, "ct", setup
        with x64_scope(np.float64):
            cols = _centre_columns(G, nb, w)
        pre = _block_circulant_from(cols, basis, Z.T @ GZ, ridge)
        return pre, "blocks", setup + nb
    if not callable(getattr(preconditioner, "apply", None)):
        raise TypeError(
            "preconditioner must be 'auto', 'ct', 'blocks', 'kspace', None or a "
            f"value with apply(r); got {type(preconditioner).__name__}"
        )
    return preconditioner, type(preconditioner).__name__, 0


def _kspace_preconditioner(G, forward, ridge):
    """MRI (issue 15): the exact inverse for T. Chan's circulant of K (measurements)."""
    if not isinstance(forward, KSpaceMask):
        raise ValueError(
            "preconditioner='kspace' needs a k-space forward map (a KSpaceMask, e.g. "
            f"measurements.mri_kspace); got {type(forward).__name__}"
        )
    lam = np.asarray(G.operator.t_chan_preconditioner(), dtype=np.float64)
    return kspace_preconditioner(forward, lam, ridge=ridge), "kspace", 0


#: Solver names of :func:`inverse_regression` and :func:`inverse_regression_path`.
_SOLVERS = ("auto", "dense", "iterative")

#: Columns of :math:`A^\top` pushed through K at once when A K A^T is formed.
_DENSE_CHUNK = 64


def _check_mapping_for(mapping, grid) -> str:
    """Validate ``mapping`` on ``grid``; return the kernel's structure (one reading)."""
    kind = structure(mapping, grid)
    if kind != "points":
        check_stationary_mapping(mapping, grid)
        return kind
    check_mapping(mapping)
    dim = getattr(mapping, "dim", None)
    if dim is not None and dim != grid.dim:
        raise ValueError(
            f"mapping has input dimension {dim} but grid has dimension {grid.dim} "
            f"(shape {grid.shape}); mapping.dim must equal grid.dim"
        )
    return kind


def _kernel_for(arch, mapping, grid, kind: str, kernel: str, max_bytes):
    """K on the grid: the FFT operator, or (raw coordinates) the dense/blocked Gram."""
    if kind != "points":
        return grid_operator(arch, mapping, grid, kernel=kernel)
    return kernel_operator(arch, mapping, grid, kernel=kernel, max_bytes=max_bytes)


def _choose_path(solver, G: ComposedOperator, max_bytes) -> str:
    r"""The one path choice of the inverse problem: "dense" or "iterative".

    "dense" forms :math:`K A^\top` (N x M) and :math:`A K A^\top` (M x M); both must
    fit under the dense memory cap. "auto" takes it where K has no FFT structure
    (structure "dense" or "blocked": raw coordinates) and it fits, else the
    iterative path (CG / Lanczos on the composed operator), as before.
    """
    if not isinstance(solver, str) or solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {solver!r}")
    if solver == "iterative":
        return "iterative"
    m, n = G.shape[0], G.operator.shape[0]
    if solver == "dense":
        check_dense_request(
            (max(n, m), m),
            8,
            max_bytes,
            what="inverse_regression(solver='dense'): K A^T and A K A^T",
            alternative="Use solver='iterative' (no matrix is formed).",
        )
        return "dense"
    fits = 8.0 * max(n, m) * m <= dense_cap_bytes(max_bytes)
    return (
        "dense"
        if fits and G.operator.structure in ("dense", "blocked")
        else ("iterative")
    )


def _dense_system(G: ComposedOperator) -> tuple[np.ndarray, np.ndarray]:
    r"""(:math:`K A^\top` (N, M), :math:`A K A^\top` (M, M), symmetrised), float64.

    Built column by column from :math:`A^\top e_j` in chunks of ``_DENSE_CHUNK``
    (the caller checked both against the dense cap).
    """
    A, K = G.measurement, G.operator
    m, n = G.shape[0], K.shape[0]
    kat = np.empty((n, m))
    gm = np.empty((m, m))
    with x64_scope(np.float64):
        for s in range(0, m, _DENSE_CHUNK):
            c = min(_DENSE_CHUNK, m - s)
            e = np.zeros((m, c))
            e[s + np.arange(c), np.arange(c)] = 1.0
            ku = K.matvec(A.adjoint(jnp.asarray(e)))
            kat[:, s : s + c] = np.asarray(ku, np.float64)
            gm[:, s : s + c] = np.asarray(A.forward(ku), np.float64)
    return kat, 0.5 * (gm + gm.T)


def _solve_dense(G, Y, ridge, time, steps, lr):
    r"""The exact path: Cholesky (t = inf) or eigh and the time filter (finite t, k).

    Returns (prediction (N, c), solver name, relative residual at t = inf (else 0)).
    """
    kat, gm = _dense_system(G)
    gm[np.diag_indices_from(gm)] += ridge
    if time is None and steps is None:
        sol = psd_solve(gm, Y, "A K A^T + ridge I", stacklevel=4)
        res = np.linalg.norm(Y - gm @ sol.value, axis=0)
        ynorm = np.linalg.norm(Y, axis=0)
        worst = float(
            np.max(np.where(ynorm > 0, res / np.where(ynorm > 0, ynorm, 1), 0))
        )
        return kat @ sol.value, sol.method, worst
    lam, vecs = np.linalg.eigh(gm)
    eta = float(lr)
    if time is not None:
        filt = gd_filter(lam, float(time), eta)
    else:
        check_gd_stability(float(lam[-1]), eta, 1, steps, discrete=True, stacklevel=4)
        filt = gd_filter(lam, int(steps), eta, discrete=True)
    coef = vecs @ (filt[:, None] * (vecs.T @ Y))
    return kat @ coef, "eigh", 0.0


def _solve_cg(G, system, Y, op, grid, ridge, rtol, max_iter, preconditioner, mesh):
    """The t = inf solve by (preconditioned) CG: (coef, stats, names, seconds)."""
    t0 = _time.perf_counter()
    pre, name, setup = _pick_preconditioner(preconditioner, G, op, grid, ridge)
    t1 = _time.perf_counter()
    big = mesh is None and grid.size > _BATCH_VALUES
    sol = cg(
        _ColumnByColumn(system) if big else system,
        jnp.asarray(Y),
        preconditioner=pre,
        rtol=rtol,
        max_iter=max_iter,
    )
    st = sol.stats
    if not st["converged"]:
        warnings.warn(
            f"inverse_regression: CG did not reach the relative residual "
            f"rtol={rtol:.1e} in {st['iterations']} iterations "
            + _cg_verdict(float(st["residual"]), ridge),
            ConvergenceWarning,
            stacklevel=3,
        )
    solver = "cg" if pre is None else "pcg"
    seconds = (t1 - t0, _time.perf_counter() - t1)
    return sol.value, st, (solver, name, setup), seconds


def _solve_lanczos(system, Y, time, steps, lr, rtol, krylov_dim):
    r"""Finite t or k by the Krylov matrix function :math:`\varphi(G) y`."""
    eta = float(lr)
    if time is not None:
        phi = functools.partial(gd_filter, time=float(time), rate=eta)
    else:
        # Gradient descent: warn above the stability limit 2 / lambda_max.
        lam_max = largest_eigenvalue(system, system.shape[0])
        check_gd_stability(lam_max, eta, 1, steps, discrete=True, stacklevel=4)
        phi = functools.partial(gd_filter, time=int(steps), rate=eta, discrete=True)
    t1 = _time.perf_counter()
    sol = lanczos_matfun(system, phi, jnp.asarray(Y), krylov_dim=krylov_dim, rtol=rtol)
    st = sol.stats
    if not st["converged"]:
        warnings.warn(
            f"inverse_regression: the Lanczos estimate of phi(G) y is "
            f"{st['residual']:.2e} > rtol={rtol:.1e} after krylov_dim="
            f"{krylov_dim} steps; raise krylov_dim.",
            ConvergenceWarning,
            stacklevel=3,
        )
    seconds = (0.0, _time.perf_counter() - t1)
    return sol.value, st, ("lanczos", "none", 0), seconds


@renamed_arguments(
    lr="learning_rate",
    time="times",
    steps=(
        "times=, discrete=True",
        lambda steps: {"times": steps, "discrete": True},
    ),
)
def inverse_regression(
    arch,
    mapping,
    grid,
    forward,
    y,
    *,
    ridge: float = 0.0,
    kernel: str = "ntk",
    times: float | None = None,
    discrete: bool = False,
    learning_rate: float = 1.0,
    rtol: float = 1e-10,
    max_iter: int | None = None,
    preconditioner="auto",
    krylov_dim: int = 128,
    return_info: bool = False,
    mesh=None,
    solver: str = "auto",
    max_bytes: float | None = None,
):
    r"""The NTK/NNGP prediction on a grid from linear measurements of it.

    :math:`f^\star = K A^\top (A K A^\top + \delta I)^{-1} y` at :math:`t = \infty`
    (the default), or after gradient flow for the time ``times`` (rate
    ``learning_rate``) or, with ``discrete=True``, ``times`` steps of gradient descent
    on :math:`\tfrac12\lVert A f - y\rVert^2` from :math:`f_0 = 0`,
    :math:`f = K A^\top \varphi(G) y` with the time filter :math:`\varphi` of
    :func:`ntkspec.linalg.gd_filter` (see the module docstring).

    Two paths, chosen once from the composed operator :math:`G = A K A^\top`
    (``solver``): the *iterative* one applies K by FFT (a Fourier mapping: the
    circulant / Toeplitz grid operator) and forms no N x N or M x M matrix (CG at
    :math:`t = \infty`, Lanczos :math:`\varphi(G) y` otherwise); the *dense* one
    forms :math:`K A^\top` and :math:`G` (M products with K) and solves exactly:
    Cholesky of :math:`G + \delta I` (:func:`ntkspec.solvers.psd_solve`, with its
    condition check and minimum-norm eigh fallback) at :math:`t = \infty`, its
    eigendecomposition :math:`G + \delta I = V \Lambda V^\top` and
    :math:`V \varphi(\Lambda) V^\top y` at finite t or k.

    Args:
        arch: the architecture (:class:`ntkspec.ReluMLP`).
        mapping: the input mapping: a Fourier mapping of the grid's dimension (a
            stationary kernel, applied by FFT), or raw coordinates
            (:func:`ntkspec.mappings.identity`, a mapping with ``include_input``):
            then K is the dense (or blocked) Gram of the grid's points.
        grid: the :class:`~ntkspec.Grid` of the unknown signal (N points, C order).
        forward: :math:`A`, M x N: a dense array, a ``scipy.sparse`` matrix, or a
            measurement value of :mod:`ntkspec.measurements` (a pair of JAX
            functions through ``as_measurement((A, AT), shape=(M, N))``, CT,
            k-space).
        y: measurements, shape (M,) or (M, c).
        ridge: the absolute :math:`\delta \ge 0` on the M x M system.
        kernel: "ntk" or "nngp".
        times: one gradient-flow time t (the flow runs for ``learning_rate * t``), or
            with ``discrete=True`` a number of full-batch gradient-descent steps of
            size ``learning_rate``; None (or inf) for :math:`t = \infty`. The names
            of :func:`ntkspec.gd_dynamics` (which takes several times).
        discrete: ``times`` counts gradient-descent steps (default: flow time).
        learning_rate: the learning rate :math:`\eta > 0` of the finite-time
            predictions.
        rtol: relative residual of the CG solve (:math:`t = \infty`), or the
            tolerance on the Lanczos error estimate (finite time); unused by the
            dense path.
        max_iter: CG iteration cap (default ``2 M + 100``, enough in exact arithmetic
            and for the CT task).
        preconditioner: "auto" (for a sparse forward map with the CT layout, M =
            blocks x W, M >= 512: the balancing preconditioner with the CT block
            model, :func:`deflated_block_preconditioner` of :func:`ct_block_model`,
            when the model's diagonal blocks match the measured products with the
            coarse modes (which the preconditioner needs anyway) to 5 %, else the
            block-circulant two-level one; for a k-space mask the exact inverse of
            :math:`A C A^\top + \delta I`, C the T. Chan circulant of K,
            :func:`ntkspec.measurements.kspace_preconditioner`; otherwise none),
            "ct", "blocks" or "kspace" (force one of them; they need the grid
            operator of a Fourier mapping), None, or a value with ``apply(r)``.
        krylov_dim: Lanczos steps for the finite-time prediction.
        return_info: also return an :class:`InverseInfo`.
        mesh: None or a 1-D ``jax.sharding.Mesh``: the FFT matvecs of K run over its
            devices (:mod:`ntkspec.sharding`); A and the preconditioner are applied
            replicated.
        solver: "auto" (the dense path where K has no FFT structure, raw
            coordinates, and :math:`K A^\top` and :math:`G` fit under the dense
            memory cap; else the iterative path), "dense" (refused with a
            ValueError over the cap) or "iterative".
        max_bytes: the dense memory cap (default 4 GiB or
            ``NTKSPEC_MAX_DENSE_BYTES``) for the dense path and a dense K.

    Returns:
        The prediction, a NumPy float64 array of shape (N,) for y of shape (M,), or
        (N, c); with ``return_info`` the pair ``(prediction, info)``.

    Warns:
        ConvergenceWarning: CG missed ``rtol`` within ``max_iter`` (the last iterate
            is returned), or the Lanczos estimate missed ``rtol``.
        IllConditionedWarning: (dense path, t = inf) :math:`G + \delta I` is
            ill-conditioned or not numerically positive definite.

    Raises:
        TypeError: wrong argument types.
        ValueError: shapes that do not match (y and A, A and the grid), NaN in y, a
            negative ridge, a bad kernel, ``times``, ``learning_rate`` or solver;
            ``solver="dense"`` over the memory cap.

    Deprecated: ``time=`` (now ``times=``), ``steps=k`` (now ``times=k,
    discrete=True``) and ``lr=`` (now ``learning_rate=``) still work, with a
    ``DeprecationWarning``, until the next minor release.

    Example:
        >>> import numpy as np, ntkspec
        >>> from ntkspec import measurements
        >>> grid = ntkspec.Grid((8, 8))
        >>> A = measurements.ct_projections(grid.shape, num_angles=4)
        >>> f = np.random.default_rng(0).random(64)
        >>> g = ntkspec.inverse_regression(
        ...     ntkspec.ReluMLP(2), ntkspec.mappings.gaussian(0, 2, 16, 2.0), grid, A,
        ...     A.to_scipy() @ f)
        >>> bool(np.allclose(A.to_scipy() @ g, A.to_scipy() @ f, atol=1e-8))
        True
    """
    mesh = check_mesh(mesh)
    check_arch(arch)
    check_grid(grid)
    kind = _check_mapping_for(mapping, grid)
    check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    ridge = float(ridge)
    time, steps = _check_time(times, discrete, learning_rate)
    lr = float(learning_rate)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be True or False; got {return_info!r}")
    op = _as_forward(forward, grid)
    m = op.shape[0]
    Y = _check_y(y, m)
    if max_iter is None:
        max_iter = 2 * m + 100
    max_iter = check_positive_int(max_iter, "max_iter")
    krylov_dim = check_positive_int(krylov_dim, "krylov_dim", minimum=2)
    K = _kernel_for(arch, mapping, grid, kind, kernel, max_bytes)
    G = composed(op, K)
    path = _choose_path(solver, G, max_bytes)
    if path == "dense":
        t1 = _time.perf_counter()
        Y2 = Y.reshape(m, -1)
        pred, name, res = _solve_dense(G, Y2, ridge, time, steps, lr)
        pred = pred.reshape((grid.size,) + Y.shape[1:])
        if not return_info:
            return pred
        secs = round(_time.perf_counter() - t1, 3)
        return pred, InverseInfo(name, 0, res, True, ridge, solve_seconds=secs)
    K = shard_operator(K, mesh)
    G = composed(op, K)
    system = Shifted(G, ridge)
    with x64_scope(np.float64):
        if time is None and steps is None:
            coef, st, names, seconds = _solve_cg(
                G, system, Y, op, grid, ridge, rtol, max_iter, preconditioner, mesh
            )
        else:
            coef, st, names, seconds = _solve_lanczos(
                system, Y, time, steps, lr, rtol, krylov_dim
            )
        coef = host_value(coef)  # eager host callbacks refuse mesh-placed arrays
        pred = np.asarray(K.matvec(op.adjoint(coef)), dtype=np.float64)
    if not return_info:
        return pred
    info = InverseInfo(
        names[0],
        st["iterations"],
        st["residual"],
        st["converged"],
        ridge,
        names[1],
        names[2],
        round(seconds[0], 3),
        round(seconds[1], 3),
    )
    return pred, info


def _dense_path(G, Y, ridge, fs, return_info):
    """:func:`inverse_regression_path` on the dense path: one eigh for every time."""
    m = G.shape[0]
    kat, gm = _dense_system(G)
    gm[np.diag_indices_from(gm)] += ridge
    lam, vecs = np.linalg.eigh(gm)
    coef = vecs.T @ Y.reshape(m, -1)
    preds = [kat @ (vecs @ (f(lam)[:, None] * coef)) for f in fs]
    pred = np.stack(preds).reshape((len(fs), kat.shape[0]) + Y.shape[1:])
    if not return_info:
        return pred
    return pred, [InverseInfo("eigh", 0, 0.0, True, ridge) for _ in fs]


def _flow_filter(tau: float):
    """NumPy (1 - exp(-tau lam)) / lam, finite at lam = 0 (the limit tau)."""
    return functools.partial(gd_filter, time=tau, rate=1.0)


@renamed_arguments(lr="learning_rate", max_dim="max_krylov_dim")
def inverse_regression_path(
    arch,
    mapping,
    grid,
    forward,
    y,
    times,
    *,
    ridge: float = 0.0,
    kernel: str = "ntk",
    learning_rate: float = 1.0,
    rtol: float = 1e-6,
    max_krylov_dim: int = 1000,
    return_info: bool = False,
    solver: str = "auto",
    max_bytes: float | None = None,
):
    r"""The gradient-flow predictions :math:`f_t` at several times from one Krylov run.

    :math:`f_t = K A^\top \varphi_t(G) y` with :math:`\varphi_t(\lambda) = (1 -
    e^{-\eta t\lambda})/\lambda` and :math:`G = A K A^\top + \delta I`, as
    :func:`inverse_regression` with ``times=t``, for every t in ``times``: one
    adaptive Lanczos run (:func:`ntkspec.linalg.lanczos_matfuns`) serves all of them,
    stopped when every estimate meets ``rtol``; on the dense path (``solver``, as
    :func:`inverse_regression`) one eigendecomposition of :math:`G` serves them, exact.

    Args:
        arch: the architecture, as :func:`inverse_regression`.
        mapping: the Fourier mapping.
        grid: the grid of the unknown signal.
        forward: :math:`A`, as :func:`inverse_regression`.
        y: measurements, (M,) or (M, c).
        ridge: the absolute :math:`\delta \ge 0`.
        kernel: "ntk" or "nngp".
        learning_rate: the rate :math:`\eta > 0` (the flow runs for
            ``learning_rate * t``).
        times: the flow times t >= 0, a sequence of T numbers.
        rtol: tolerance on the Lanczos error estimates.
        max_krylov_dim: largest Krylov dimension.
        return_info: also return a list of T :class:`InverseInfo`.
        solver: "auto", "dense" or "iterative", as :func:`inverse_regression`.
        max_bytes: the dense memory cap, as :func:`inverse_regression`.

    Returns:
        Shape (T, N) for y of shape (M,), or (T, N, c); with ``return_info`` the pair.

    Warns:
        ConvergenceWarning: an estimate missed ``rtol`` at ``max_krylov_dim``.

    Raises:
        TypeError, ValueError: as :func:`inverse_regression`; an empty or negative
            ``times``.

    Deprecated: ``lr=`` (now ``learning_rate=``) and ``max_dim=`` (now
    ``max_krylov_dim=``) still work, with a ``DeprecationWarning``, until the next
    minor release.
    """
    check_arch(arch)
    check_grid(grid)
    kind = _check_mapping_for(mapping, grid)
    check_kernel(kernel)
    check_real(ridge, "ridge", low=0.0)
    check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False)
    lr = float(learning_rate)
    check_real(rtol, "rtol", low=0.0, low_inclusive=False)
    max_dim = check_positive_int(max_krylov_dim, "max_krylov_dim", minimum=2)
    if isinstance(times, int | float):
        raise TypeError("times must be a sequence of numbers; got a single number")
    times = [check_real(t, "times", low=0.0) for t in times]
    if not times:
        raise ValueError("times must hold at least one time")
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be True or False; got {return_info!r}")
    op = _as_forward(forward, grid)
    Y = _check_y(y, op.shape[0])
    K = _kernel_for(arch, mapping, grid, kind, kernel, max_bytes)
    fs = [_flow_filter(float(lr) * float(t)) for t in times]
    if _choose_path(solver, composed(op, K), max_bytes) == "dense":
        return _dense_path(composed(op, K), Y, float(ridge), fs, return_info)
    system = Shifted(composed(op, K), float(ridge))
    with x64_scope(np.float64):
        sols = lanczos_matfuns(system, fs, jnp.asarray(Y), rtol=rtol, max_dim=max_dim)
        coefs = jnp.stack([jnp.asarray(s.value) for s in sols])
        flat = coefs.reshape(len(times), op.shape[0], -1)
        cols = jnp.moveaxis(flat, 0, 1).reshape(op.shape[0], -1)  # (M, T c), one call
        out = np.asarray(K.matvec(op.adjoint(cols)), dtype=np.float64)
    out = np.moveaxis(out.reshape(grid.size, len(times), -1), 1, 0)
    pred = out.reshape((len(times), grid.size) + Y.shape[1:])
    worst = max(float(s.stats["residual"]) for s in sols)
    if not all(bool(s.stats["converged"]) for s in sols):
        warnings.warn(
            f"inverse_regression_path: a Lanczos estimate is {worst:.2e} > rtol="
            f"{rtol:.1e} at max_krylov_dim={max_dim}; raise max_krylov_dim.",
            ConvergenceWarning,
            stacklevel=2,
        )
    if not return_info:
        return pred
    infos = [
        InverseInfo(
            "lanczos",
            int(s.stats["iterations"]),
            float(s.stats["residual"]),
            bool(s.stats["converged"]),
            float(ridge),
        )
        for s in sols
    ]
    return pred, infos
