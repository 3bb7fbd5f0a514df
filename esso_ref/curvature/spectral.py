r"""Spectra and spectral adjustments f(mu) of the damped Newton direction (docs/math.md §9).

The adjusted direction is d_f = -V diag(1 / (f(mu) + lam)) V^T g (eq. (28)). Built-in choices:

- ``"none"``: f(mu) = mu, plain damped Newton, solved without an eigendecomposition;
- ``"abs"``: f(mu) = |mu|, the absolute ("saddle-free") Hessian;
- ``"clip"``: f(mu) = max(mu, 0);
- a callable f: applied to the eigenvalues; it must return finite values >= 0 of the same shape.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat

from .._checks import check_positive
from ..backend import device_of, to_host, xp_of

__all__ = [
    "SPECTRAL",
    "NotDescentWarning",
    "SingularCurvatureError",
    "Spectrum",
    "adjust",
    "check_damping",
    "check_direction",
    "check_spectral",
    "f_at_zero",
    "norms",
    "rounding_tolerance",
    "singular_factor",
    "singular_mask",
    "user_stacklevel",
]

SINGULAR_FACTOR = 10.0
"""c in the singular-to-working-precision rule c n eps, see `check_direction`."""


class SingularCurvatureError(ValueError):
    """f(H) + damping I is singular to working precision (see `check_direction`)."""


class NotDescentWarning(RuntimeWarning):
    """The damped Newton direction is not a descent direction (H + damping I indefinite)."""


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside esso_ref."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level

SPECTRAL = ("none", "abs", "clip")


@dataclass
class Spectrum:
    """Eigenvalues of a P x P curvature matrix: mu of eqs. (25), (42) and zeros, eq. (32).

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
        xp = xp_of(self.values)
        zeros = xp.zeros((self.num_zeros,), dtype=self.values.dtype,
                         device=array_api_compat.device(self.values))
        return xp.sort(xp.concat([self.values, zeros]))

    def inertia(self, tol: float | None = None) -> tuple[int, int, int]:
        """(negative, zero, positive): how many of the P eigenvalues have each sign.

        A listed value with |mu| <= ``tol`` counts as zero, as do the exact zeros: its sign is
        below the eigensolver's rounding. The default tolerance is `rounding_tolerance`.
        """
        mu = [float(v) for v in to_host(self.values).tolist()]
        eps = float(xp_of(self.values).finfo(self.values.dtype).eps)
        tol = rounding_tolerance(mu, eps) if tol is None else float(tol)
        negative, positive = sum(v < -tol for v in mu), sum(v > tol for v in mu)
        return negative, self.size - negative - positive, positive


def rounding_tolerance(mu: list[float], eps: float) -> float:
    """How far rounding may move each of n computed eigenvalues mu: n eps max|mu|.

    A backward stable symmetric eigensolver returns the exact eigenvalues of a matrix within
    about n eps |S|_2 of S (here |S|_2 = max|mu|), so a value this close to 0 has no
    meaningful sign.
    """
    return len(mu) * eps * max((abs(float(v)) for v in mu), default=0.0)


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
    """f(mu) for the spectral choice, eqs. (28)-(29) (``"none"`` is f(mu) = mu).

    Raises:
        ValueError: if a callable returns the wrong shape, non-finite or negative values.
    """
    xp = xp_of(mu)
    if spectral == "none":
        return mu
    if spectral == "abs":
        return xp.abs(mu)
    if spectral == "clip":
        return xp.maximum(mu, xp.zeros_like(mu))
    out = spectral(mu)
    if not array_api_compat.is_array_api_obj(out) or tuple(out.shape) != tuple(mu.shape):
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"expected spectral(mu) to return an array of mu's shape, "
                         f"{tuple(mu.shape)} in this call (it acts entry by entry), got {got}")
    if not xp.isdtype(out.dtype, "real floating"):
        raise ValueError(f"expected spectral(mu) to return real floating values, got dtype "
                         f"{out.dtype}; return e.g. the absolute value of a complex result")
    if not bool(xp.all(xp.isfinite(out))):
        raise ValueError("expected spectral(mu) to return finite values, got non-finite ones")
    if bool(xp.any(out < 0)):
        raise ValueError(f"expected spectral(mu) >= 0, got minimum {float(xp.min(out))}")
    return out


def norms(v) -> list[float]:
    """|v_k| for every row v_k of v (G, n), as host floats; scaled, so no square overflows.

    A direction near a singular system can hold entries near 1e300: its norm is then found
    (and the singular rule applied) without an overflow. With t the largest |entry| of a row,
    the plain sum of squares is used when t = 0 or n tiny / eps <= t^2 <= max / (2 n (1 + n eps))
    (the squares that underflow are below eps of the sum together, even where subnormals are
    flushed to zero, and the rounded sum stays below the largest float); otherwise the row is
    first divided by t. A row holding inf has norm inf,
    one holding NaN has norm NaN, without a floating-point warning. Two host transfers for the
    row extremes and one per kind of row.
    """
    xp = xp_of(v)
    G, n = int(v.shape[0]), int(v.shape[-1])
    if n == 0:
        return [0.0] * G
    info = xp.finfo(v.dtype)
    eps = float(info.eps)
    lo = math.sqrt(n * float(info.smallest_normal) / eps)
    hi = math.sqrt(float(info.max) / (2 * n * (1 + n * eps)))
    highs, lows = to_host(xp.max(v, axis=-1)).tolist(), to_host(xp.min(v, axis=-1)).tolist()
    top = [max(a, -b) for a, b in zip(highs, lows, strict=True)]
    fits = [t == 0 or lo <= t <= hi for t in top]
    if all(fits):
        return [math.sqrt(s) for s in to_host(xp.vecdot(v, v)).tolist()]
    plain = [k for k, ok in enumerate(fits) if ok]
    scaled = [k for k, ok in enumerate(fits) if not ok and math.isfinite(top[k])]
    out = list(top)  # rows holding inf or NaN keep it
    for rows, divide in ((plain, False), (scaled, True)):
        if not rows:
            continue
        w = xp.take(v, xp.asarray(rows, device=device_of(v)), axis=0)
        if divide:
            w = w / xp.asarray([top[k] for k in rows], dtype=v.dtype, device=device_of(v))[:, None]
        for k, s in zip(rows, to_host(xp.vecdot(w, w)).tolist(), strict=True):
            out[k] = (top[k] if divide else 1.0) * math.sqrt(s)
    return out


def f_at_zero(spectral, like) -> float:
    """f(0): the adjusted value of H's exact zero eigenvalues (0 for the built-in choices)."""
    if isinstance(spectral, str):
        return 0.0
    xp = xp_of(like)
    zero = xp.zeros((1,), dtype=like.dtype, device=array_api_compat.device(like))
    return float(adjust(spectral, zero)[0])


def singular_factor(n: int, eps: float) -> float:
    """The constant c = 10 n eps of the singular rule (`check_direction`, `singular_mask`)."""
    return SINGULAR_FACTOR * max(n, 1) * eps


def singular_mask(xp, g_norm, d_norm, h, lam: float, n: int, num_zeros: int, eps: float):
    """Where the rule of `check_direction` fires, for arrays of samples (spectral "none").

    The same two conditions with h = |H|_F + lam given per sample (an array), plus a non-finite
    d or h: (i) num_zeros > 0 and lam <= eps h, (ii) d != 0 and |g| <= c h |d|.
    """
    fires = ~(xp.isfinite(d_norm) & xp.isfinite(h))
    fires = fires | ((d_norm > 0) & (g_norm <= singular_factor(n, eps) * h * d_norm))
    if num_zeros > 0:
        fires = fires | (lam <= eps * h)
    return fires


def check_direction(g_norm: float, d_norm: float, scale: float, lam: float, n: int,
                    num_zeros: int, eps: float, f0: float = 0.0, adjusted: bool = False) -> None:
    """The one singular-to-working-precision rule of every Newton route, eqs. (43)-(44).

    With h = |f(H)|_F + lam (an upper bound of |f(H) + lam I|_2) and c = 10 n eps, f(H) +
    lam I is singular to working precision, and `SingularCurvatureError` is raised, when

    1. H has exact zero eigenvalues (``num_zeros`` > 0, known from the shapes) and
       |f(0) + lam| <= eps h (a condition number of at least 1 / eps), or
    2. the computed direction reveals an eigenvalue within c h of -lam: |g| <= c h |d|
       (|d| <= |g| / min |f(mu) + lam|), or it is not finite.

    Args:
        g_norm: |g|.
        d_norm: |d|.
        scale: |f(H)|_F (|H|_F for spectral ``"none"``).
        lam: the damping.
        n: the size of the system that was solved.
        num_zeros: exact zero eigenvalues of H outside the solved system.
        eps: machine epsilon of the dtype.
        f0: f(0) of the spectral adjustment.
        adjusted: a spectral adjustment f is applied (names f(H) in the message).

    Raises:
        SingularCurvatureError: when the rule says singular.
    """
    h = scale + lam
    c = singular_factor(n, eps)
    reason = None
    if not math.isfinite(d_norm):
        reason = "the direction is not finite"
    elif num_zeros > 0 and abs(f0 + lam) <= eps * h:
        reason = f"H has {num_zeros} exact zero eigenvalues and damping <= {eps:.1e} |H|"
    elif d_norm > 0 and g_norm <= c * h * d_norm:
        reason = f"|d| = {d_norm:.3e} for |g| = {g_norm:.3e}"
    if reason:
        raise SingularCurvatureError(
            f"{'f(H)' if adjusted else 'H'} + damping I is singular to working precision for "
            f"damping = {lam:g} (|{'f(H)' if adjusted else 'H'}|_F = {scale:.3e}): {reason}; "
            "use a larger damping" + ("" if adjusted else " or a spectral adjustment ('abs', "
                                      "'clip')"))
