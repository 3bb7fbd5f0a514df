"""Tail accuracy of every activation against a 50-digit mpmath reference (tests/mp_reference.py).

Criterion (float64, eps = 2**-52), for g = phi, phi' and phi'' at every grid point z:

    |g_computed(z) - g(z)| <= 10 eps * max(|g(z)|, F(z), TINY)

* |g(z)|: plain relative error, the rule everywhere except in the two cases below.
* TINY = 2**-1022, the smallest normal: a true value below the normal range is compared
  absolutely at 10 eps * TINY (10 units of the last place of the subnormals). The complex
  step (phi evaluated at z + i h, h = 1e-30) carries h g in its imaginary part, so there
  TINY / h takes the place of TINY.
* F(z) = |g'(z0)| / 2 when z lies within 1/2 of a simple zero z0 of g (a sign change of g),
  0 elsewhere. Near a zero (gelu' at -0.7518, gelu_tanh'' at +-1.4185, ...) g is a sum of
  terms of size ~|g'(z0)| that cancel, so round-off is absolute there; the floor is the size
  g reaches half a unit away from its zero. It applies nowhere in the tails.

The grid: 4001 points in [-40, 40], 1000 seeded random points in [-40, 40], points near 0
(down to 1e-300) and near +-40, and points at 1e-3 .. 1e-12 from every zero.
"""

import itertools
from functools import cache

import mpmath
import numpy as np
import pytest

from esso_ref.activations import ACTIVATIONS

from . import mp_reference as ref
from .conftest import EPS

TINY = float(np.finfo(np.float64).tiny)
H = 1e-30
ULPS = 10.0
HALF_WIDTH = 0.5
_NEAR0 = np.array([1e-300, 1e-100, 1e-30, 1e-12, 1e-8, 1e-4, 1e-2])
_TAILS = np.array([39.999, 39.5, 38.9, 38.3, 37.7, 30.1, 21.3, 20.9, 19.7])
BASE = np.unique(np.concatenate([
    np.linspace(-40.0, 40.0, 4001), np.random.default_rng(7).uniform(-40.0, 40.0, 1000),
    _NEAR0, -_NEAR0, _TAILS, -_TAILS]))


@cache
def zeros(name: str, order: int) -> tuple[tuple[float, float], ...]:
    """(z0, |g'(z0)|) for every sign change of g = phi^(order) on the base grid."""
    g = ref.table(name, tuple(BASE))[order]
    nz = np.nonzero(g)[0]
    out = []
    for a, b in itertools.pairwise(nz):
        if np.sign(g[a]) != np.sign(g[b]):
            with mpmath.workdps(ref.DPS):
                f = lambda x: ref.CLOSED_FORMS[name](x)[order]  # noqa: E731
                z0 = mpmath.findroot(f, (mpmath.mpf(BASE[a]), mpmath.mpf(BASE[b])),
                                     solver="anderson")
                out.append((float(z0), abs(float(mpmath.diff(f, z0)))))
    return tuple(out)


@cache
def grid(name: str) -> np.ndarray:
    """BASE plus points at 1e-3 .. 1e-12 (relative) from every zero of phi' and phi''."""
    near = [z0 + s * d * max(1.0, abs(z0)) for k in (1, 2) for z0, _ in zeros(name, k)
            for d in (1e-3, 1e-6, 1e-9, 1e-12) for s in (-1, 1)]
    return np.unique(np.concatenate([BASE, np.asarray(near, dtype=np.float64)]))


def tolerance(name: str, order: int, z: np.ndarray, g: np.ndarray, tiny=TINY) -> np.ndarray:
    """10 eps max(|g|, F, tiny) of the module docstring."""
    floor = np.zeros_like(z)
    for z0, slope in zeros(name, order):
        floor = np.where(np.abs(z - z0) <= HALF_WIDTH, np.maximum(floor, slope * HALF_WIDTH),
                         floor)
    return ULPS * EPS * np.maximum(np.maximum(np.abs(g), floor), tiny)


def _fns(name):
    act = ACTIVATIONS[name]
    return act.f, act.df, act.d2f


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_matches_mpmath_to_10_eps(name, order):
    z = grid(name)
    g = ref.table(name, tuple(z))[order]
    got = _fns(name)[order](z)
    err = np.abs(got - g)
    bad = err > tolerance(name, order, z, g)
    assert not np.any(bad), (name, order, z[bad][:5], (err / np.maximum(np.abs(g), TINY))[bad][:5])


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_complex_step_matches_derivative_to_10_eps(name, order):
    z = grid(name)
    g = ref.table(name, tuple(z))[order]
    cs = np.imag(_fns(name)[order - 1](z + 1j * H)) / H
    # the imaginary part H g leaves the normal range below |g| = TINY / H (~2e-278)
    bad = np.abs(cs - _fns(name)[order](z)) > tolerance(name, order, z, g, TINY / H)
    assert not np.any(bad), (name, order, z[bad][:5])


@pytest.mark.parametrize("name", ["tanh", "gelu", "gelu_tanh", "sigmoid"])
def test_reference_closed_forms_match_mpmath_diff(name):
    # mpmath.diff resolves 1e-50 of |phi|: tails where phi' << phi (tanh, phi ~ z) are left out
    tails = () if name == "tanh" else (-37.3,)
    for z in (*tails, -20.6, -6.2, -0.75, 0.3, 1.41, 3.3):
        vals = ref.values(name, z)
        for order in (1, 2):
            d = ref.by_diff(name, z, order)
            assert abs(vals[order] - d) <= mpmath.mpf(10) ** -30 * abs(d), (name, z, order)


def test_grid_reaches_the_tails_and_the_zeros():
    assert BASE.min() == -40.0 and BASE.max() == 40.0 and BASE.size > 5000
    assert [round(z0, 4) for z0, _ in zeros("gelu", 1)] == [-0.7518]
    assert [round(z0, 4) for z0, _ in zeros("gelu", 2)] == [-1.4142, 1.4142]
    assert not zeros("gelu", 0)[1:] and not zeros("tanh", 1)


def test_erf_erfc_and_normal_cdf_match_mpmath_to_10_eps():
    from esso_ref._erf import erf, erfc, normal_cdf, normal_pdf

    t = np.unique(np.concatenate([np.linspace(-27.0, 27.0, 5401), [-1e-300, 1e-300, 0.46875]]))
    cases = ((erf, mpmath.erf), (erfc, mpmath.erfc), (normal_cdf, mpmath.ncdf),
             (normal_pdf, mpmath.npdf))
    for fn, exact in cases:
        with mpmath.workdps(ref.DPS):
            want = np.array([float(exact(mpmath.mpf(float(x)))) for x in t])
        err = np.abs(fn(t) - want)
        bad = err > ULPS * EPS * np.maximum(np.abs(want), TINY)
        assert not np.any(bad), (fn.__name__, t[bad][:5])
