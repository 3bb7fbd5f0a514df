r"""Activations phi with their first and second derivatives (docs/math.md, eq. (2)).

Each activation is three small functions of the pre-activation ``z``: the value
:math:`\phi(z)`, :math:`\phi'(z)` and :math:`\phi''(z)`, every one written with array-API
operations that are analytic in ``z``, so that complex inputs work (the complex-step oracle,
docs/verification.md): no ``abs`` and no ``conj`` on data, branches chosen on the real part.
All of them are finite, without overflow warnings, for real ``|z| <= 1e300`` (``1e30`` in
float32), and for ``|z| <= 40`` in float64 they are within 10 eps (relative) of the true
function, derivatives included (tests/test_activation_accuracy.py states the exact rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._eft import dd_add, dd_mul, exp_scaled, split, square
from ._erf import normal_parts
from .backend import xp_of

__all__ = ["ACTIVATIONS", "Activation", "get_activation"]

Fn = Callable[..., object]


def _xp(z):
    return xp_of(z)


def _re(z):
    """Real part of ``z`` (``z`` itself when it is real)."""
    xp = _xp(z)
    return xp.real(z) if xp.isdtype(z.dtype, "complex floating") else z


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: value ``f``, derivatives ``df``, ``d2f`` (phi', phi'', eq. (2)).

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


# tanh: phi = tanh z, phi' = sech^2 z = 4 e / (1 + e)^2 with e = exp(-2|z|) (not 1 - tanh^2,
# which is 0 for |z| > 19), phi'' = -2 tanh z sech^2 z
def _tanh(z):
    return _xp(z).tanh(z)


def _tanh_d1(z):
    _, e = _exp_neg_abs(2.0 * z)
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _tanh_d2(z):
    return -2.0 * _xp(z).tanh(z) * _tanh_d1(z)


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


_TAIL = 50.0  # |z| beyond it: sigma(2u) and Phi are 0 or 1, phi_N is 0; z is clipped there


def _clip(z):
    """``z`` with real parts beyond +-50 replaced by +-50 (where every derivative is 0)."""
    xp, r = _xp(z), _re(z)
    one = xp.ones_like(z)
    return xp.where(r > _TAIL, _TAIL * one, xp.where(r < -_TAIL, -_TAIL * one, z))


def _split_sign_product(z, m, scale):
    """``z * m * scale`` (both gelu forms): the product that cannot overflow or lose bits.

    For z > 0, ``m * scale`` lies in [1/2, 1] and is formed first; for z <= 0, ``z * m`` is
    formed first, so the only rounding into the subnormal range is the last one.
    """
    xp = _xp(z)
    positive = _re(z) > 0
    negative_part = xp.where(positive, xp.zeros_like(z), z)  # no z * 2**512 overflow for z > 0
    return xp.where(positive, z * (m * scale), (negative_part * m) * scale)


# gelu (PyTorch nn.GELU()): phi = z Phi(z), phi' = Phi(z) + z phi_N(z),
# phi'' = (2 - z^2) phi_N(z), Phi / phi_N the standard normal CDF / density (esso_ref._erf)
def _gelu(z):
    cdf, _, scale = normal_parts(z)  # z > 0: Phi = cdf * scale is in [1/2, 1]
    return _split_sign_product(z, cdf, scale)


def _gelu_d1(z):
    cdf, pdf, scale = normal_parts(z)
    return (cdf + _clip(z) * pdf) * scale


def _gelu_d2(z):
    _, pdf, scale = normal_parts(z)
    hi, lo = split(_clip(z))  # 2 - z^2 with z^2 exact to 2**-100: accurate near its zeros +-sqrt(2)
    return (((2.0 - hi * hi) - lo * (2.0 * hi + lo)) * pdf) * scale


# gelu_tanh (PyTorch nn.GELU(approximate="tanh")): phi = z (1 + tanh u) / 2 = z sigma(2u),
# u = c (z + k z^3), c = sqrt(2/pi), k = 0.044715. Not through 1 + tanh u, which cancels
# (relative error 7e-3 at z = -7, 100% at -8); and 2u is a double-double, because one ulp of
# 2u ~ -700 is 512 ulps of exp(2u). sigma' = e / (1 + e)^2, sigma'' = -sigma' tanh(u).
_C_HI, _C_LO = 0.7978845608028654, -4.98465440455546e-17  # sqrt(2/pi) = hi + lo to 2**-106
_CK_HI, _CK_LO = 0.035677408136300125, -3.0875749590776575e-19  # 0.044715 sqrt(2/pi)
def _gelu_tanh_parts(z):
    """(sigma(2u), sigma'(2u), sigma''(2u), u', u'', scale, zc): sigmas divided by scale.

    2u is a double-double accurate to ~2**-100; ``scale`` (`esso_ref._eft.exp_scaled`)
    keeps the sigmas out of the subnormal range until the caller's last product.
    """
    xp = _xp(z)
    one = xp.ones_like(z)
    zc = _clip(z)
    sh, sl = square(zc)
    qh, ql = dd_mul(_CK_HI * one, _CK_LO * one, sh, sl)
    rh, rl = dd_add(_C_HI * one, _C_LO * one, qh, ql)
    uh, ul = dd_mul(rh, rl, zc, xp.zeros_like(z))
    positive = _re(uh) > 0
    e, scale = exp_scaled(xp.where(positive, -2.0 * uh, 2.0 * uh),
                          xp.where(positive, -2.0 * ul, 2.0 * ul))
    d = 1.0 + e * scale  # e * scale = exp(-|2u|)
    s = xp.where(positive, one / scale, e) / d
    s1 = e / (d * d)
    du = _C_HI + 3.0 * _CK_HI * zc * zc  # zc: s1 = 0 beyond the clip, no inf * 0 there
    return s, s1, -s1 * xp.tanh(uh), du, 6.0 * _CK_HI * zc, scale, zc


def _gelu_tanh(z):
    s, *_, scale, _ = _gelu_tanh_parts(z)  # z > 0: sigma(2u) = s * scale is in [1/2, 1]
    return _split_sign_product(z, s, scale)


def _gelu_tanh_d1(z):
    s, s1, _, du, _, scale, zc = _gelu_tanh_parts(z)
    return (s + 2.0 * zc * du * s1) * scale


def _gelu_tanh_d2(z):
    _, s1, s2, du, d2u, scale, zc = _gelu_tanh_parts(z)
    return (4.0 * du * s1 + zc * (4.0 * du * du * s2 + 2.0 * d2u * s1)) * scale


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
        Activation("gelu_tanh", _gelu_tanh, _gelu_tanh_d1, _gelu_tanh_d2),
        Activation("sin", _sin, _sin_d1, _sin_d2),
    )
}


def get_activation(name: str | Activation) -> Activation:
    """Return the activation called ``name`` with its derivatives, eq. (2).

    An [`Activation`][esso_ref.activations.Activation] passes through unchanged.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    from ._checks import lookup

    return lookup("an activation", ACTIVATIONS, name, Activation)
