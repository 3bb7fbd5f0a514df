"""Validate a user's curvature implementation against esso_ref in one call (docs/validate.md).

The callable contract (framework-neutral; NumPy float64 inputs, any array-like output):

- ``gradient(net, theta, X, y) -> (P,)``: gradient of the batch-mean loss;
- ``hvp(net, theta, X, y, v) -> (P,)``: H v;
- ``hessian(net, theta, X, y) -> (P, P)``: the dense Hessian;
- ``eigenvalues(net, theta, X, y) -> (P,)``: all P eigenvalues of H, zeros included, any order;
- ``newton(net, theta, X, y, damping) -> (P,)``: d = -(f(H) + damping I)^{-1} g.

``net`` is an `MLP` (build the user's model from it, e.g. with
`esso_ref.interop.to_torch`), theta its flat parameters in PyTorch's
``parameters_to_vector`` order, X (B, n_0), y integer labels (cross-entropy) or (B, n_L)
targets (mse). `esso_ref.interop.torch_callable` adapts a torch.func implementation.
"""

from __future__ import annotations

from .cases import Case, default_cases
from .check import QUANTITIES, check_implementation
from .measures import TOLERANCES
from .report import ImplementationReport, load_reproducer

__all__ = ["QUANTITIES", "TOLERANCES", "Case", "ImplementationReport", "check_implementation",
           "default_cases", "load_reproducer"]
