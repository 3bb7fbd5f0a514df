r"""erf, erfc and the standard normal CDF / density with array-API operations only.

The array API has no ``erf``; these follow W. J. Cody's rational Chebyshev approximations
(Math. Comp. 23 (1969) 631-637, the coefficients of his CALERF routine), one rational
function per interval of :math:`s = |t|`:

* :math:`s \le 0.46875`: :math:`\operatorname{erf} t = t\,R_1(t^2)`;
* :math:`0.46875 < s \le 4`: :math:`\operatorname{erfc} s = e^{-s^2} R_2(s)`;
* :math:`s > 4`: :math:`\operatorname{erfc} s = e^{-s^2}\,(1/\sqrt\pi - s^{-2} R_3(s^{-2}))/s`.

The factor :math:`e^{-s^2}` is formed from the exact square of the input
(`esso_ref._eft.exp_neg_square`), so the left tail of :math:`\Phi` keeps full relative
accuracy: :math:`\Phi(-40) \approx 3.7\cdot10^{-350}` underflows, :math:`\Phi(-37)` is
accurate to a few ulps. Only analytic operations are used and every branch is chosen on the
real part, so complex inputs (the complex-step oracle) work.
"""

from __future__ import annotations

import math

from ._eft import exp_neg_square, exp_neg_square_scaled
from .backend import xp_of

__all__ = ["erf", "erfc", "normal_cdf", "normal_parts", "normal_pdf"]

_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SMALL, _MID = 0.46875, 4.0
_BIG = 27.0  # erfc(27) < 1e-318: beyond it erfc underflows, erf is +-1
_RSQRTPI = 1.0 / math.sqrt(math.pi)
_RSQRT2 = 1.0 / math.sqrt(2.0)
_RSQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _xp(t):
    return xp_of(t)


def _re(t):
    xp = _xp(t)
    return xp.real(t) if xp.isdtype(t.dtype, "complex floating") else t


def _clip(t, lo: float, hi: float):
    """``t`` with real parts outside ``[lo, hi]`` replaced by the bound (constant there)."""
    xp, r = _xp(t), _re(t)
    one = xp.ones_like(t)
    return xp.where(r < lo, lo * one, xp.where(r > hi, hi * one, t))


def _erf_small(t):
    """erf(t) for |t| <= 0.46875 (Cody's first interval)."""
    y = t * t
    num, den = _A[4] * y, y
    for a, b in zip(_A[:3], _B[:3], strict=True):
        num, den = (num + a) * y, (den + b) * y
    return t * (num + _A[3]) / (den + _B[3])


def _erfcx_large(s):
    """exp(s^2) erfc(s) for s > 0.46875 (Cody's second and third intervals)."""
    xp = _xp(s)
    mid = _re(s) <= _MID
    y = xp.where(mid, s, xp.ones_like(s))  # each branch sees only arguments of its interval
    num, den = _C[8] * y, y
    for c, d in zip(_C[:7], _D[:7], strict=True):
        num, den = (num + c) * y, (den + d) * y
    r_mid = (num + _C[7]) / (den + _D[7])
    y = xp.where(mid, _MID * xp.ones_like(s), s)
    w = 1.0 / (y * y)
    num, den = _P[5] * w, w
    for p, q in zip(_P[:4], _Q[:4], strict=True):
        num, den = (num + p) * w, (den + q) * w
    r_big = (_RSQRTPI - w * (num + _P[4]) / (den + _Q[4])) / y
    return xp.where(mid, r_mid, r_big)


def _split_tail(t):
    """(t clipped, |t| <= 0.46875, Re t > 0, erfc(|t|) where |t| > 0.46875) elementwise."""
    xp = _xp(t)
    t = _clip(t, -_BIG, _BIG)
    r = _re(t)
    small = (r <= _SMALL) & (r >= -_SMALL)
    s = xp.where(small, xp.ones_like(t), xp.where(r > 0, t, -t))
    return t, small, r > 0, exp_neg_square(s) * _erfcx_large(s)


def erf(t):
    """The error function, elementwise, to a few ulps (relative)."""
    xp = _xp(t)
    t, small, positive, tail = _split_tail(t)
    inner = _erf_small(xp.where(small, t, xp.zeros_like(t)))
    return xp.where(small, inner, xp.where(positive, 1.0 - tail, tail - 1.0))


def erfc(t):
    """The complementary error function, elementwise, relative accuracy in the right tail."""
    xp = _xp(t)
    t, small, positive, tail = _split_tail(t)
    inner = 1.0 - _erf_small(xp.where(small, t, xp.zeros_like(t)))
    return xp.where(small, inner, xp.where(positive, tail, 2.0 - tail))


def normal_parts(x):
    r"""``(cdf, pdf, scale)``: Phi(x) = ``cdf * scale``, the density = ``pdf * scale``.

    ``scale`` (1 or 2**-512, see `esso_ref._eft.exp_scaled`) keeps ``cdf`` and ``pdf``
    out of the subnormal range, so ``x * pdf * scale`` is rounded into it only once. The
    Gaussian factor is :math:`e^{-x^2/2}` of the exact input ``x`` (not of the rounded
    ``x / sqrt 2``): the left tail of :math:`\Phi` keeps full relative accuracy.
    """
    xp = _xp(x)
    x = _clip(x, -_BIG * 2, _BIG * 2)
    gauss, scale = exp_neg_square_scaled(x, 0.5)
    t = _RSQRT2 * x
    r = _re(t)
    small = (r <= _SMALL) & (r >= -_SMALL)
    s = xp.where(small, xp.ones_like(t), xp.where(r > 0, t, -t))
    half = 0.5 * gauss * _erfcx_large(s)
    inner = 0.5 + 0.5 * _erf_small(xp.where(small, t, xp.zeros_like(t)))
    cdf = xp.where(small, inner, xp.where(r > 0, (1.0 - half * scale) / scale, half))
    return cdf, _RSQRT2PI * gauss, scale


def normal_pdf(x):
    """The standard normal density exp(-x^2/2) / sqrt(2 pi), to ~1 ulp for every x."""
    _, pdf, scale = normal_parts(x)
    return pdf * scale


def normal_cdf(x):
    r"""The standard normal CDF :math:`\Phi(x) = \operatorname{erfc}(-x/\sqrt2)/2`, a few ulps."""
    cdf, _, scale = normal_parts(x)
    return cdf * scale
