r"""Error-free transformations in float64 array-API arithmetic (Dekker, Knuth).

A value is carried as an unevaluated sum ``hi + lo`` ("double-double") where one rounding
would lose accuracy that the tails of an activation need: :math:`e^{-a^2}` for ``a`` near 40
is only accurate to ``2 a^2`` ulps when ``a * a`` is rounded first. Every function uses only
``+``, ``-``, ``*`` and ``exp``, so it is analytic and works unchanged on complex inputs (the
complex-step oracle): the exactness statements hold for the real part, and the imaginary part
is carried along to working accuracy.
"""

from __future__ import annotations

from .backend import xp_of

__all__ = ["dd_add", "dd_mul", "exp_neg_square", "exp_neg_square_scaled", "exp_scaled", "split",
           "square", "two_prod", "two_sum"]

def _single(a) -> bool:
    """True for float32 / complex64 data (no subnormal guard needed at their exponent range)."""
    return xp_of(a).finfo(a.dtype).eps > 1e-10


def split(a):
    """``(hi, lo)`` with ``hi + lo == a`` exactly, each of at most half the significand bits.

    Dekker's splitter is 2**27 + 1 for float64 (2**12 + 1 for float32); valid while ``a``
    times the splitter does not overflow (``|a| < 2**996`` in float64).
    """
    c = (4097.0 if _single(a) else 134217729.0) * a
    hi = c - (c - a)
    return hi, a - hi


def two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def two_prod(a, b):
    """``(p, e)`` with ``p = fl(a b)`` and ``p + e == a b`` exactly (Dekker)."""
    p = a * b
    a1, a2 = split(a)
    b1, b2 = split(b)
    return p, ((a1 * b1 - p) + a1 * b2 + a2 * b1) + a2 * b2


def square(a):
    """``(s, e)`` with ``s + e = a**2`` to a relative ``2**-100``.

    ``s`` is the exact square of the high half of ``a``, ``e = lo (2 hi + lo)`` rounded once.
    """
    hi, lo = split(a)
    return hi * hi, lo * (2.0 * hi + lo)


def dd_add(ah, al, bh, bl):
    """``(ah + al) + (bh + bl)`` as a double-double (relative error ~ 2**-104)."""
    s, e = two_sum(ah, bh)
    e = e + (al + bl)
    hi = s + e
    return hi, e - (hi - s)


def dd_mul(ah, al, bh, bl):
    """``(ah + al) (bh + bl)`` as a double-double (relative error ~ 2**-104)."""
    p, e = two_prod(ah, bh)
    e = e + (ah * bl + al * bh)
    hi = p + e
    return hi, e - (hi - p)


def exp_scaled(ah, al):
    """``(m, scale)`` with ``exp(ah + al) = m * scale`` and ``m`` never subnormal.

    ``scale`` is 1, or 2**-512 where ``Re ah < -600``: a caller multiplies its factors into
    ``m`` first and by ``scale`` last, so a result in the normal range is never assembled
    from an intermediate that lost bits in the subnormal range.
    """
    xp = xp_of(ah)
    one = xp.ones_like(ah)
    if _single(ah):  # 2**-512 is 0 in float32; its results are float32-accurate as they are
        return xp.exp(ah) * xp.exp(al), one
    shifted = (xp.real(ah) if xp.isdtype(ah.dtype, "complex floating") else ah) < _SHIFT_BELOW
    sh, sl = two_sum(ah, xp.where(shifted, _SHIFT_HI * one, 0.0 * one))
    sl = sl + (al + xp.where(shifted, _SHIFT_LO * one, 0.0 * one))
    return xp.exp(sh) * xp.exp(sl), xp.where(shifted, _SCALE * one, one)


def exp_neg_square_scaled(a, scale: float = 1.0):
    r"""``exp(-scale a**2)`` as ``(m, s)`` of `exp_scaled` (``scale`` a power of two).

    ``a**2 = s + e`` is formed exactly (``s``) plus a small correction (``e``): the
    rounding of ``a * a`` (worth ``2 a^2`` ulps, 3200 ulps at ``a = 40``) never reaches the
    exponential.
    """
    s, e = square(a)
    return exp_scaled(-scale * s, -scale * e)


def exp_neg_square(a, scale: float = 1.0):
    """``exp(-scale a**2)`` to ~1 ulp for every ``a`` (``scale`` a power of two)."""
    m, s = exp_neg_square_scaled(a, scale)
    return m * s


# exp(x) = exp(x + 512 ln 2) 2**-512; 512 ln 2 = _SHIFT_HI + _SHIFT_LO to 2**-106
_SHIFT_BELOW = -600.0
_SHIFT_HI, _SHIFT_LO = 354.891356446692, 1.1873519686893054e-14
_SCALE = 2.0**-512
