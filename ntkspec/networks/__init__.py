r"""Finite ReLU MLPs over a fixed Fourier mapping, their empirical NTK, training.

One concept per module, every public name re-exported here:

* ``networks.network``: :func:`mlp`, the network as ``Network(init, apply)``
  whose infinite-width kernels are :func:`ntkspec.nngp` / :func:`ntkspec.ntk` of the
  same :class:`~ntkspec.ReluMLP` ("ntk" and "standard" parameterizations,
  neural-tangents' ``stax`` conventions; the paper's "stax" initialisation);
* ``networks.empirical``: :func:`empirical_ntk`,
  :math:`\hat\Theta = J(v_1) J(v_2)^\top`, tending to the analytic NTK with relative
  fluctuations of order :math:`\text{width}^{-1/2}`;
* ``networks.training``: :func:`train`, full-batch Adam or gradient descent
  on :math:`\sum(f-y)^2/(2\,\mathrm{y.size})` (the normalisation of
  :func:`ntkspec.gd_dynamics`);
* ``networks.ensemble``: :func:`train_ensemble`, several networks (one per
  mapping or seed) in one ``vmap``-ed loop, split over a mesh's devices
  (:func:`train_stacked`, the loop itself, for any per-member loss);
* ``networks.linearized``: :func:`linearized_dynamics`, the network
  linearised at its own initial empirical NTK: exact train-set dynamics under GD or
  gradient flow, no training;
* ``networks.modes``: :func:`eigenspaces` and :func:`eigenspace_norms`,
  residuals projected onto the eigenspaces of a Gram (pairs on symmetric grids).

References:
    Jacot, Gabriel & Hongler, "Neural Tangent Kernel", NeurIPS 2018,
    https://arxiv.org/abs/1806.07572.
    Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under
    Gradient Descent", NeurIPS 2019, https://arxiv.org/abs/1902.06720.
    Novak et al., "Neural Tangents: Fast and Easy Infinite Neural Networks in Python",
    ICLR 2020, https://arxiv.org/abs/1912.02803.
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739.
"""

from .empirical import empirical_ntk as empirical_ntk
from .ensemble import EnsembleResult as EnsembleResult
from .ensemble import train_ensemble as train_ensemble
from .ensemble import train_stacked as train_stacked
from .linearized import LinearizedDynamics as LinearizedDynamics
from .linearized import linearized_dynamics as linearized_dynamics
from .modes import Eigenspaces as Eigenspaces
from .modes import eigenspace_norms as eigenspace_norms
from .modes import eigenspaces as eigenspaces
from .network import Network as Network
from .network import mlp as mlp
from .training import TrainHistory as TrainHistory
from .training import TrainResult as TrainResult
from .training import mse_loss as mse_loss
from .training import psnr as psnr
from .training import train as train

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
    "train_stacked",
    "LinearizedDynamics",
    "linearized_dynamics",
    "Eigenspaces",
    "eigenspaces",
    "eigenspace_norms",
]
