r"""Activations phi with their first and second derivatives (docs/math.md, eq. (2)).

Each activation is three small functions of the pre-activation ``z``: the value
:math:`\phi(z)`, :math:`\phi'(z)` and :math:`\phi''(z)`, every one written with array-API
operations that are analytic in ``z``, so that complex inputs work (the complex-step oracle,
docs/verification.md): no ``abs`` and no ``conj`` on data, branches chosen on the real part.
All of them are finite for real ``|z|`` up to 1e3 without overflow warnings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import array_api_compat

__all__ = ["ACTIVATIONS", "Activation", "get_activation"]

Fn = Callable[..., object]


def _xp(z):
    return array_api_compat.array_namespace(z)


def _re(z):
    """Real part of ``z`` (``z`` itself when it is real)."""
    xp = _xp(z)
    return xp.real(z) if xp.isdtype(z.dtype, "complex floating") else z


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: value ``f``, first derivative ``df``, second ``d2f``.

    ``kink`` is True when phi is not differentiable at z = 0 (relu): finite-difference
    oracles then keep their steps from crossing a kink.
    """

    name: str
    f: Fn
    df: Fn
    d2f: Fn
    kink: bool = False


# identity: phi = z, phi' = 1, phi'' = 0
def _identity(z):
    return z


def _identity_d1(z):
    return _xp(z).ones_like(z)


def _identity_d2(z):
    return _xp(z).zeros_like(z)


# tanh: phi = tanh z, phi' = 1 - tanh^2 z, phi'' = -2 tanh z (1 - tanh^2 z)
def _tanh(z):
    return _xp(z).tanh(z)


def _tanh_d1(z):
    t = _xp(z).tanh(z)
    return 1.0 - t * t


def _tanh_d2(z):
    t = _xp(z).tanh(z)
    return -2.0 * t * (1.0 - t * t)


# sigmoid: with e = exp(-|z|) (|.| taken on the real part, so e <= 1 never overflows)
# s = 1 / (1 + e) for Re z > 0, e / (1 + e) otherwise; s' = e / (1 + e)^2; s'' = -s' tanh(z/2)
def _exp_neg_abs(z):
    xp = _xp(z)
    positive = _re(z) > 0
    return positive, xp.exp(xp.where(positive, -z, z))


def _sigmoid(z):
    xp = _xp(z)
    positive, e = _exp_neg_abs(z)
    return xp.where(positive, xp.ones_like(z), e) / (1.0 + e)


def _sigmoid_d1(z):
    _, e = _exp_neg_abs(z)
    return e / ((1.0 + e) * (1.0 + e))


def _sigmoid_d2(z):
    return -_sigmoid_d1(z) * _xp(z).tanh(0.5 * z)


# softplus: phi = log(1 + e^z) = m + log1p(e^(z - 2m)) with m = z where Re z > 0 else 0,
# phi' = sigmoid(z), phi'' = sigmoid(z) (1 - sigmoid(z))
def _softplus(z):
    xp = _xp(z)
    positive, e = _exp_neg_abs(z)
    return xp.where(positive, z, xp.zeros_like(z)) + xp.log1p(e)


# relu: phi = z [Re z > 0], phi' = [Re z > 0], phi'' = 0 (the kink at 0 has derivative 0)
def _relu(z):
    xp = _xp(z)
    return xp.where(_re(z) > 0, z, xp.zeros_like(z))


def _relu_d1(z):
    xp = _xp(z)
    return xp.where(_re(z) > 0, xp.ones_like(z), xp.zeros_like(z))


# gelu, tanh approximation (PyTorch approximate="tanh"):
# phi = z (1 + tanh u) / 2, u = c (z + k z^3), c = sqrt(2/pi), k = 0.044715
_C = math.sqrt(2.0 / math.pi)
_K = 0.044715


def _gelu(z):
    u = _C * (z + _K * z * z * z)
    return 0.5 * z * (1.0 + _xp(z).tanh(u))


def _gelu_d1(z):
    t = _xp(z).tanh(_C * (z + _K * z * z * z))
    du = _C * (1.0 + 3.0 * _K * z * z)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du


def _gelu_d2(z):
    t = _xp(z).tanh(_C * (z + _K * z * z * z))
    du = _C * (1.0 + 3.0 * _K * z * z)
    d2u = 6.0 * _C * _K * z
    sech2 = 1.0 - t * t
    return sech2 * du + 0.5 * z * (sech2 * d2u - 2.0 * t * sech2 * du * du)


# sin: phi = sin z, phi' = cos z, phi'' = -sin z
def _sin(z):
    return _xp(z).sin(z)


def _sin_d1(z):
    return _xp(z).cos(z)


def _sin_d2(z):
    return -_xp(z).sin(z)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity, _identity_d1, _identity_d2),
        Activation("tanh", _tanh, _tanh_d1, _tanh_d2),
        Activation("sigmoid", _sigmoid, _sigmoid_d1, _sigmoid_d2),
        Activation("softplus", _softplus, _sigmoid, _sigmoid_d1),
        Activation("relu", _relu, _relu_d1, _identity_d2, kink=True),
        Activation("gelu", _gelu, _gelu_d1, _gelu_d2),
        Activation("sin", _sin, _sin_d1, _sin_d2),
    )
}


def get_activation(name: str | Activation) -> Activation:
    """Return the activation called ``name``.

    An [`Activation`][esso_ref.activations.Activation] passes through unchanged.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    from ._checks import lookup

    return lookup("an activation", ACTIVATIONS, name, Activation)
