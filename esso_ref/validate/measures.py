r"""Error measures of a user's value against esso_ref's, and their tolerances in eps units.

Each measure is normwise and scale-free, so one tolerance covers every network:

- gradient: :math:`\lVert g_u - g \rVert_2 / \lVert g \rVert_2`; tolerance 4500 eps: both
  routes sum the same O(B n) products, each accurate to a few eps relative to the norms.
- H v: :math:`\lVert (Hv)_u - Hv \rVert_2 / (\lVert H \rVert_2 \lVert v \rVert_2)`; 4500 eps.
- Hessian: :math:`\max|H_u - H| / \max|H|`; 4500 eps.
- eigenvalues: :math:`\max_i |\mu^u_i - \mu_i| / \lVert H \rVert_2`, both sorted, all P of them
  (zeros included); tolerance 50 r eps with r = B R the rank of the factor (the structured
  route's bound, docs/verification.md).
- Newton: the normwise backward error
  :math:`\lVert (f(H) + \lambda I) d_u + g \rVert_2 / (\lVert f(H) + \lambda I \rVert_2
  \lVert d_u \rVert_2 + \lVert g \rVert_2)`; 1000 eps (a backward-stable solve reaches a few eps).

A zero denominator makes the error absolute (0 / 0 is 0): the zero-gradient case then asks for
an exact zero. Everything here runs on host NumPy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TOLERANCES", "backward_error", "eigenvalue_error", "full_spectrum", "maxnorm",
           "normwise", "spectral_matrix"]

# tolerances in eps units (float64: 4500 eps ~ 1e-12, 1000 eps ~ 2.2e-13)
TOLERANCES = {"gradient": 4500.0, "hvp": 4500.0, "hessian": 4500.0, "eigenvalues": 50.0,
              "newton": 1000.0}


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else num


def normwise(got: np.ndarray, ref: np.ndarray, scale: float | None = None) -> float:
    """|got - ref|_2 / scale (|ref|_2 by default); absolute when the scale is 0."""
    den = float(np.linalg.norm(ref)) if scale is None else float(scale)
    return _ratio(float(np.linalg.norm(got - ref)), den)


def maxnorm(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max|ref|; absolute when ref is 0."""
    err = float(np.max(np.abs(got - ref), initial=0.0))
    return _ratio(err, float(np.max(np.abs(ref), initial=0.0)))


def full_spectrum(mu) -> np.ndarray:
    """All eigenvalues, ascending, of an array or an `Spectrum` (zeros added)."""
    from ..backend import to_host

    full = mu.full() if hasattr(mu, "full") and hasattr(mu, "num_zeros") else mu
    return np.sort(np.asarray(to_host(full), dtype=np.float64).reshape(-1))


def eigenvalue_error(mu, ref, norm_H: float | None = None) -> float:
    """max|sort(mu) - sort(ref)| / |H|_2 (|H|_2 = max|ref| by default).

    Raises:
        ValueError: when the two hold different numbers of eigenvalues.
    """
    mu, ref = full_spectrum(mu), full_spectrum(ref)
    if mu.shape != ref.shape:
        raise ValueError(f"expected {ref.size} eigenvalues, got {mu.size} (all P are needed, "
                         "zeros included; a Spectrum's full() adds its num_zeros)")
    norm = float(np.max(np.abs(ref), initial=0.0)) if norm_H is None else float(norm_H)
    return _ratio(float(np.max(np.abs(mu - ref), initial=0.0)), norm)


def spectral_matrix(H: np.ndarray, damping: float, spectral: str = "none") -> np.ndarray:
    """f(H) + damping I for f = identity (``"none"``), ``"abs"`` or ``"clip"`` (eq. (28))."""
    if spectral == "none":
        return H + damping * np.eye(H.shape[0])
    mu, V = np.linalg.eigh(H)
    f = np.abs(mu) if spectral == "abs" else np.maximum(mu, 0.0)
    return (V * (f + damping)) @ V.T


def backward_error(M: np.ndarray, d: np.ndarray, g: np.ndarray) -> float:
    """|M d + g|_2 / (|M|_2 |d|_2 + |g|_2): how far d is from solving M d = -g exactly."""
    r = M @ d + g
    den = np.linalg.norm(M, 2) * np.linalg.norm(d) + np.linalg.norm(g) if M.size else 0.0
    return _ratio(float(np.linalg.norm(r)), float(den))
