"""ntkspec: spectral analysis of coordinate MLPs with Fourier-feature inputs."""

from importlib import metadata as _metadata

from . import mappings as mappings
from .kernels import ReluMLP as ReluMLP
from .kernels import nngp as nngp
from .kernels import ntk as ntk
from .mappings import FourierMapping as FourierMapping

try:
    __version__ = _metadata.version("ntkspec")
except _metadata.PackageNotFoundError:  # running from an uninstalled source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "FourierMapping",
    "ReluMLP",
    "mappings",
    "nngp",
    "ntk",
    "__version__",
]
