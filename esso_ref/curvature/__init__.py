"""Exact per-sample curvature of an MLP: HVPs, dense Hessian, H = A^T C A, spectra, Newton."""

from .api import METHODS, eigenvalues, newton_direction
from .dense import hessian
from .factor import CURVATURES, HessianFactor, hessian_factor
from .hvp import hvp
from .linalg import LinAlgError
from .operator import as_linear_operator
from .per_sample import per_sample_directions, per_sample_eigenvalues
from .spectral import SPECTRAL, NotDescentWarning, SingularCurvatureError, Spectrum

__all__ = [
    "CURVATURES",
    "METHODS",
    "SPECTRAL",
    "HessianFactor",
    "LinAlgError",
    "NotDescentWarning",
    "SingularCurvatureError",
    "Spectrum",
    "as_linear_operator",
    "eigenvalues",
    "hessian",
    "hessian_factor",
    "hvp",
    "newton_direction",
    "per_sample_directions",
    "per_sample_eigenvalues",
]
