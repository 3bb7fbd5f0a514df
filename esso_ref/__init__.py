"""esso_ref: exact stochastic second-order optimisation for multilayer perceptrons.

The per-sample Hessian of an MLP, its exact spectrum and the exact damped Newton direction,
written explicitly against the Python array API (NumPy on the CPU, CuPy on the GPU) and
verified against independent oracles. See docs/math.md for every equation.
"""

from . import golden
from .activations import ACTIVATIONS, Activation
from .backend import to_host, to_namespace
from .curvature import (
    CURVATURES,
    METHODS,
    SPECTRAL,
    HessianFactor,
    LinAlgError,
    NotDescentWarning,
    SingularCurvatureError,
    Spectrum,
    as_linear_operator,
    eigenvalues,
    hessian,
    hessian_factor,
    hvp,
    newton_direction,
    per_sample_directions,
    per_sample_eigenvalues,
)
from .losses import LOSSES, Loss
from .mlp import MLP, flatten
from .validate import check_implementation
from .verification import Report, verify

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "CURVATURES",
    "LOSSES",
    "METHODS",
    "MLP",
    "SPECTRAL",
    "Activation",
    "HessianFactor",
    "LinAlgError",
    "Loss",
    "NotDescentWarning",
    "Report",
    "SingularCurvatureError",
    "Spectrum",
    "__version__",
    "as_linear_operator",
    "check_implementation",
    "eigenvalues",
    "flatten",
    "golden",
    "hessian",
    "hessian_factor",
    "hvp",
    "newton_direction",
    "per_sample_directions",
    "per_sample_eigenvalues",
    "to_host",
    "to_namespace",
    "verify",
]
