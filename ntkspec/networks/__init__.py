"""Finite ReLU MLPs over a fixed Fourier mapping, their empirical NTK, training."""

from .training import EnsembleResult as EnsembleResult
from .training import Network as Network
from .training import TrainHistory as TrainHistory
from .training import TrainResult as TrainResult
from .training import empirical_ntk as empirical_ntk
from .training import mlp as mlp
from .training import mse_loss as mse_loss
from .training import psnr as psnr
from .training import train as train
from .training import train_ensemble as train_ensemble

__all__ = [
    "Network",
    "mlp",
    "empirical_ntk",
    "mse_loss",
    "psnr",
    "TrainHistory",
    "TrainResult",
    "train",
    "EnsembleResult",
    "train_ensemble",
]
