"""Linear algebra over the operators of :mod:`ntkspec.operators`.

:mod:`ntkspec.linalg.funm`: the spectral functions of training (the gradient-flow /
gradient-descent time filter and decay, their stability check) and the largest
eigenvalue estimate, each written once.
"""

from . import funm as funm
from .funm import DivergenceWarning as DivergenceWarning
from .funm import check_gd_stability as check_gd_stability
from .funm import gd_decay as gd_decay
from .funm import gd_filter as gd_filter
from .funm import largest_eigenvalue as largest_eigenvalue

__all__ = [
    "funm",
    "DivergenceWarning",
    "gd_filter",
    "gd_decay",
    "check_gd_stability",
    "largest_eigenvalue",
]
