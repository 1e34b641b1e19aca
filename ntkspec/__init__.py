"""ntkspec: spectral analysis of coordinate MLPs with Fourier-feature inputs."""

from importlib import metadata as _metadata

from . import data as data
from . import design as design
from . import mappings as mappings
from . import measurements as measurements
from . import networks as networks
from . import operators as operators
from . import phantoms as phantoms
from . import plotting as plotting
from . import shapes as shapes
from . import sharding as sharding
from . import solvers as solvers
from . import spectra as spectra
from . import theory as theory
from .dynamics import eigenmode_residuals as eigenmode_residuals
from .dynamics import gd_dynamics as gd_dynamics
from .grid import Grid as Grid
from .inverse import inverse_regression as inverse_regression
from .kernels import ReluMLP as ReluMLP
from .kernels import nngp as nngp
from .kernels import ntk as ntk
from .mappings import FourierMapping as FourierMapping
from .regression import RegressionInfo as RegressionInfo
from .regression import kernel_regression as kernel_regression
from .spectra import grid_spectrum as grid_spectrum
from .spectra import spectrum as spectrum

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
    "inverse_regression",
    "theory",
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
