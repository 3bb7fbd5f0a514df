r"""Spectra and spectral adjustments f(mu) of the damped Newton direction (docs/math.md §9).

The adjusted direction is d_f = -V diag(1 / (f(mu) + lam)) V^T g (eq. (28)). Built-in choices:

- ``"none"``: f(mu) = mu, plain damped Newton, solved without an eigendecomposition;
- ``"abs"``: f(mu) = |mu|, the absolute ("saddle-free") Hessian;
- ``"clip"``: f(mu) = max(mu, 0);
- a callable f: applied to the eigenvalues; it must return finite values >= 0 of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat

from .._checks import check_positive

__all__ = ["SPECTRAL", "Spectrum", "adjust", "check_damping", "check_spectral"]

SPECTRAL = ("none", "abs", "clip")


@dataclass
class Spectrum:
    """Eigenvalues of a P x P curvature matrix.

    Attributes:
        values: eigenvalues, ascending; for structured routes only those that can be non-zero.
        num_zeros: further eigenvalues that are exactly zero (not listed in ``values``).
        vectors: eigenvectors (P, len(values)) when asked for, else None.
    """

    values: Any
    num_zeros: int
    vectors: Any = None

    @property
    def size(self) -> int:
        """P: the number of eigenvalues in all."""
        return int(self.values.shape[0]) + self.num_zeros

    def full(self):
        """All P eigenvalues, ascending, the exact zeros included."""
        xp = array_api_compat.array_namespace(self.values)
        zeros = xp.zeros((self.num_zeros,), dtype=self.values.dtype,
                         device=array_api_compat.device(self.values))
        return xp.sort(xp.concat([self.values, zeros]))


def check_damping(damping) -> float:
    """Return the damping lam as a float; ValueError unless finite and > 0."""
    return check_positive("damping", damping)


def check_spectral(spectral) -> str | Callable:
    """Validate a spectral choice: one of ``SPECTRAL`` or a callable."""
    if callable(spectral):
        return spectral
    if isinstance(spectral, str) and spectral in SPECTRAL:
        return spectral
    raise ValueError(f"expected spectral in {list(SPECTRAL)} or a callable, got {spectral!r}")


def adjust(spectral: str | Callable, mu):
    """f(mu) for the spectral choice (``"none"`` is f(mu) = mu).

    Raises:
        ValueError: if a callable returns the wrong shape, non-finite or negative values.
    """
    xp = array_api_compat.array_namespace(mu)
    if spectral == "none":
        return mu
    if spectral == "abs":
        return xp.abs(mu)
    if spectral == "clip":
        return xp.maximum(mu, xp.zeros_like(mu))
    out = spectral(mu)
    if not array_api_compat.is_array_api_obj(out) or tuple(out.shape) != tuple(mu.shape):
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"expected spectral(mu) to return an array of shape "
                         f"{tuple(mu.shape)}, got {got}")
    if not bool(xp.all(xp.isfinite(out))):
        raise ValueError("expected spectral(mu) to return finite values, got non-finite ones")
    if bool(xp.any(out < 0)):
        raise ValueError(f"expected spectral(mu) >= 0, got minimum {float(xp.min(out))}")
    return out
