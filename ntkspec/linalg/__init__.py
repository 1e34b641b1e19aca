"""Linear algebra over the operators of :mod:`ntkspec.operators`, one concept a module.

* :mod:`ntkspec.linalg.solution`: :class:`Solution` (an answer with iterations,
  residual, converged flag) and :class:`ConvergenceWarning`.
* :mod:`ntkspec.linalg.cg`: preconditioned conjugate gradients, the :class:`CG` value.
* :mod:`ntkspec.linalg.lanczos`: top eigenpairs by block Lanczos, plain and
  thick-restarted, and block by block on a block-diagonal operator (symmetry
  sectors).
* :mod:`ntkspec.linalg.funm`: matrix functions: the gradient-flow / gradient-descent
  time filter and decay with their stability check, the largest-eigenvalue estimate,
  and the Krylov :math:`f(A) V` (:func:`lanczos_matfun`, :func:`lanczos_matfuns`).
* :mod:`ntkspec.linalg.dense`: the dense float64 solve :func:`psd_solve` (the
  :class:`Cholesky` and :class:`Eigh` values) and the blocked Cholesky.
* :mod:`ntkspec.linalg.precond`: preconditioners as values (Jacobi, circulant,
  T. Chan's).

:mod:`ntkspec.solvers` re-exports the solver names under their old home.
"""

from . import cg as cg
from . import dense as dense
from . import funm as funm
from . import lanczos as lanczos
from . import precond as precond
from . import solution as solution
from .cg import CG as CG
from .dense import Cholesky as Cholesky
from .dense import Eigh as Eigh
from .dense import IllConditionedWarning as IllConditionedWarning
from .dense import PSDSolve as PSDSolve
from .dense import cholesky_lower as cholesky_lower
from .dense import psd_solve as psd_solve
from .funm import DivergenceWarning as DivergenceWarning
from .funm import check_gd_stability as check_gd_stability
from .funm import gd_decay as gd_decay
from .funm import gd_filter as gd_filter
from .funm import lanczos_matfun as lanczos_matfun
from .funm import lanczos_matfuns as lanczos_matfuns
from .funm import largest_eigenvalue as largest_eigenvalue
from .lanczos import LanczosResult as LanczosResult
from .lanczos import block_diagonal_lanczos as block_diagonal_lanczos
from .lanczos import block_lanczos as block_lanczos
from .lanczos import restarted_lanczos as restarted_lanczos
from .precond import CirculantPreconditioner as CirculantPreconditioner
from .precond import JacobiPreconditioner as JacobiPreconditioner
from .precond import t_chan_preconditioner as t_chan_preconditioner
from .solution import ConvergenceWarning as ConvergenceWarning
from .solution import Solution as Solution

__all__ = [
    "cg",
    "dense",
    "funm",
    "lanczos",
    "precond",
    "solution",
    "Solution",
    "ConvergenceWarning",
    "CG",
    "Cholesky",
    "Eigh",
    "IllConditionedWarning",
    "PSDSolve",
    "psd_solve",
    "cholesky_lower",
    "JacobiPreconditioner",
    "CirculantPreconditioner",
    "t_chan_preconditioner",
    "LanczosResult",
    "block_lanczos",
    "block_diagonal_lanczos",
    "restarted_lanczos",
    "DivergenceWarning",
    "gd_filter",
    "gd_decay",
    "check_gd_stability",
    "largest_eigenvalue",
    "lanczos_matfun",
    "lanczos_matfuns",
]
