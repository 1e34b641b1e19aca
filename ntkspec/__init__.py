"""ntkspec: spectral analysis of coordinate MLPs with Fourier-feature inputs."""

# First, before jax: the console script's Ctrl-C handler (a no-op in any other process).
from . import _interrupt as _interrupt  # noqa: I001 (must run first)
from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

# The main path (kernels, mappings, grids, regression, spectra) is imported eagerly; the
# other submodules and the names they define load on first attribute access (PEP 562),
# so that ``import ntkspec`` does not pay for optax, the design, dynamics, inverse and
# networks modules (issue 17). ``from ntkspec import gd_dynamics`` works either way.
from . import mappings as mappings
from . import operators as operators
from . import solvers as solvers
from . import spectra as spectra
from .grid import Grid as Grid
from .kernels import ReluMLP as ReluMLP
from .kernels import nngp as nngp
from .kernels import ntk as ntk
from .mappings import FourierMapping as FourierMapping
from .regression import RegressionInfo as RegressionInfo
from .regression import kernel_regression as kernel_regression
from .spectra import grid_spectrum as grid_spectrum
from .spectra import spectrum as spectrum

if TYPE_CHECKING:  # the lazy names, for type checkers
    from . import data as data
    from . import design as design
    from . import linalg as linalg
    from . import loss_matching as loss_matching
    from . import measurements as measurements
    from . import networks as networks
    from . import phantoms as phantoms
    from . import plotting as plotting
    from . import population as population
    from . import shapes as shapes
    from . import sharding as sharding
    from . import theory as theory
    from . import verdicts as verdicts
    from .dynamics import eigenmode_residuals as eigenmode_residuals
    from .dynamics import gd_dynamics as gd_dynamics
    from .inverse import inverse_regression as inverse_regression

_LAZY_MODULES = frozenset(
    {
        "data",
        "design",
        "linalg",
        "loss_matching",
        "measurements",
        "networks",
        "phantoms",
        "plotting",
        "population",
        "shapes",
        "sharding",
        "theory",
        "verdicts",
    }
)
_LAZY_NAMES = {
    "eigenmode_residuals": "dynamics",
    "gd_dynamics": "dynamics",
    "inverse_regression": "inverse",
}


def __getattr__(name: str):
    """Import a lazy submodule or name on first access (PEP 562)."""
    if name in _LAZY_MODULES:
        value = _import_module(f"{__name__}.{name}")
    elif name in _LAZY_NAMES:
        value = getattr(_import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, lazy ones included."""
    return sorted(set(globals()) | set(__all__))


try:
    __version__ = _metadata.version("ntkspec")
except _metadata.PackageNotFoundError:  # running from an uninstalled source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "Grid",
    "grid_spectrum",
    "operators",
    "plotting",
    "solvers",
    "spectra",
    "spectrum",
    "RegressionInfo",
    "data",
    "design",
    "eigenmode_residuals",
    "gd_dynamics",
    "kernel_regression",
    "linalg",
    "inverse_regression",
    "theory",
    "verdicts",
    "loss_matching",
    "population",
    "FourierMapping",
    "ReluMLP",
    "mappings",
    "measurements",
    "phantoms",
    "shapes",
    "sharding",
    "networks",
    "nngp",
    "ntk",
    "__version__",
]
