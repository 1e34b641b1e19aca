"""The solver names under their first home; the code lives in :mod:`ntkspec.linalg`.

Kept so that ``import ntkspec.solvers`` and ``from ntkspec.solvers import CG, cg,
block_lanczos, ...`` keep working: every public name of the former module, from
its new module:

* :mod:`ntkspec.linalg.solution`: :class:`Solution`, :class:`ConvergenceWarning`;
* :mod:`ntkspec.linalg.cg`: :func:`cg`, :class:`CG`;
* :mod:`ntkspec.linalg.dense`: :func:`psd_solve`, :class:`PSDSolve`,
  :class:`Cholesky`, :class:`Eigh`, :class:`IllConditionedWarning`;
* :mod:`ntkspec.linalg.precond`: :class:`JacobiPreconditioner`,
  :class:`CirculantPreconditioner`, :func:`t_chan_preconditioner`;
* :mod:`ntkspec.linalg.lanczos`: :func:`block_lanczos`, :func:`restarted_lanczos`,
  :class:`LanczosResult`;
* :mod:`ntkspec.linalg.funm`: :func:`lanczos_matfun`, :func:`lanczos_matfuns`.
"""

from .linalg.cg import CG as CG
from .linalg.cg import cg as cg
from .linalg.dense import COND_WARN as COND_WARN
from .linalg.dense import Cholesky as Cholesky
from .linalg.dense import Eigh as Eigh
from .linalg.dense import IllConditionedWarning as IllConditionedWarning
from .linalg.dense import PSDSolve as PSDSolve
from .linalg.dense import psd_solve as psd_solve
from .linalg.funm import lanczos_matfun as lanczos_matfun
from .linalg.funm import lanczos_matfuns as lanczos_matfuns
from .linalg.lanczos import LanczosResult as LanczosResult
from .linalg.lanczos import block_lanczos as block_lanczos
from .linalg.lanczos import restarted_lanczos as restarted_lanczos
from .linalg.precond import CirculantPreconditioner as CirculantPreconditioner
from .linalg.precond import JacobiPreconditioner as JacobiPreconditioner
from .linalg.precond import t_chan_preconditioner as t_chan_preconditioner
from .linalg.solution import ConvergenceWarning as ConvergenceWarning
from .linalg.solution import Solution as Solution

__all__ = [
    "IllConditionedWarning",
    "ConvergenceWarning",
    "Solution",
    "CG",
    "Cholesky",
    "Eigh",
    "JacobiPreconditioner",
    "CirculantPreconditioner",
    "t_chan_preconditioner",
    "cg",
    "psd_solve",
    "PSDSolve",
    "LanczosResult",
    "block_lanczos",
    "restarted_lanczos",
    "lanczos_matfun",
    "lanczos_matfuns",
]
