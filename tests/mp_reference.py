"""High-precision (mpmath, 50 digits) activations and derivatives: the reference of the accuracy tests.

Every function is evaluated at the exact binary value of the float64 input, in closed forms
that do not cancel in the tails (sech^2 rather than 1 - tanh^2, 1 / (1 + e^z) rather than
1 - sigmoid).  ``test_activation_accuracy.py`` checks these closed forms against
``mpmath.diff`` of phi, so the reference does not rest on esso_ref's own derivative formulas.
"""

from __future__ import annotations

from functools import cache

import mpmath
import numpy as np

DPS = 50
ORDERS = (0, 1, 2)


def _tanh(z):
    t, s2 = mpmath.tanh(z), mpmath.sech(z) ** 2
    return t, s2, -2 * t * s2


def _sigmoid_parts(w):
    """sigma(w), sigma'(w), sigma''(w) without cancellation."""
    s, one_minus_s = 1 / (1 + mpmath.exp(-w)), 1 / (1 + mpmath.exp(w))
    d1 = s * one_minus_s
    return s, d1, -d1 * mpmath.tanh(w / 2)


def _softplus(z):
    s, d1, _ = _sigmoid_parts(z)
    return mpmath.log1p(mpmath.exp(z)), s, d1


def _relu(z):
    return (max(z, mpmath.mpf(0)), mpmath.mpf(1 if z > 0 else 0), mpmath.mpf(0))


def _gelu(z):
    cdf, pdf = mpmath.ncdf(z), mpmath.npdf(z)
    return z * cdf, cdf + z * pdf, (2 - z * z) * pdf


def _gelu_tanh(z):
    c, k = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")
    u, du, d2u = c * (z + k * z**3), c * (1 + 3 * k * z * z), 6 * c * k * z
    s, s1, s2 = _sigmoid_parts(2 * u)
    return z * s, s + 2 * z * du * s1, 4 * du * s1 + z * (4 * du * du * s2 + 2 * d2u * s1)


CLOSED_FORMS = {
    "identity": lambda z: (z, mpmath.mpf(1), mpmath.mpf(0)),
    "tanh": _tanh,
    "sigmoid": _sigmoid_parts,
    "softplus": _softplus,
    "relu": _relu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "sin": lambda z: (mpmath.sin(z), mpmath.cos(z), -mpmath.sin(z)),
}


def values(name: str, z: float) -> tuple:
    """(phi, phi', phi'') of activation ``name`` at ``z`` (taken exactly) as mpmath numbers."""
    with mpmath.workdps(DPS):
        return CLOSED_FORMS[name](mpmath.mpf(float(z)))


def by_diff(name: str, z: float, order: int):
    """phi^(order)(z) by ``mpmath.diff`` of the closed-form phi (an independent check)."""
    with mpmath.workdps(DPS):
        return mpmath.diff(lambda x: CLOSED_FORMS[name](x)[0], mpmath.mpf(float(z)), order)


@cache
def table(name: str, points: tuple[float, ...]) -> np.ndarray:
    """(3, n) float64 array of phi, phi', phi'' at ``points`` (each rounded to nearest)."""
    rows = [values(name, z) for z in points]
    return np.array([[float(r[k]) for r in rows] for k in ORDERS])
