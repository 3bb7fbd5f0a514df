"""Validate a torch.func curvature implementation against esso_ref in one call.

The implementation under test is plain torch.func: gradient, H v (reverse over reverse), the
dense Hessian, its eigenvalues and the damped Newton direction d = -(H + lam I)^{-1} g.
``er.check_implementation`` runs it on edge cases (width 1, dead ReLUs, saturated units, zero
gradient, r > P, ...) and seeded networks, and reports per quantity the worst error in eps
units, the tolerance and, for a failure, a saved reproducer. Replace the five functions below
with your own code to validate it. Run: python examples/validate_torch_func.py
"""

import sys

try:
    import torch
except ImportError:
    sys.exit("this example needs PyTorch: pip install -e '.[torch]' (torch==2.13.0)")

import esso_ref as er
from esso_ref.interop import TORCH_ACTIVATIONS, flat_loss, torch_callable


def gradient(model, crit, theta, X, y):
    return torch.func.grad(flat_loss(model, crit))(theta, X, y)


def hvp(model, crit, theta, X, y, v):
    return torch.func.grad(lambda t: gradient(model, crit, t, X, y) @ v)(theta)


def hessian(model, crit, theta, X, y):
    return torch.func.hessian(flat_loss(model, crit))(theta, X, y)


def eigenvalues(model, crit, theta, X, y):
    return torch.linalg.eigvalsh(hessian(model, crit, theta, X, y))


def newton(model, crit, theta, X, y, damping):
    H = hessian(model, crit, theta, X, y) + damping * torch.eye(len(theta), dtype=theta.dtype)
    return -torch.linalg.solve(H, gradient(model, crit, theta, X, y))


if __name__ == "__main__":
    functions = (gradient, hvp, hessian, eigenvalues, newton)
    report = er.check_implementation(**{f.__name__: torch_callable(f) for f in functions},
                                     activations=TORCH_ACTIVATIONS)
    print(report.table())
    assert report.passed, report.failed()
    assert [c.name for c in report.checks] == ["gradient", "hvp", "hessian", "eigenvalues",
                                               "newton"]
    print(f"torch.func agrees with esso_ref on {len(report.meta['cases'])} cases")
