r"""Each sample's exact plain Newton direction by a layer-by-layer elimination (docs/math.md §16).

For one sample, minimising q(v) = v^T (H + lam I) v / 2 - c^T v is a linear-quadratic control
problem, solved on the pairs of eq. (45) (`esso_ref.curvature.pairs`) by a backward and a
forward sweep, eqs. (46)-(48), (50), (51) (`esso_ref.curvature.sweep`,
`esso_ref.curvature.pivots`). That costs O(sum_l n_l^3) a sample instead of the O(r^3) of the
layer basis. Its pivots Pi_l may be indefinite, so the sweep alone is not backward stable:
iterative refinement with the exact Hessian-vector product (on the same pairs, O(sum_l n_l^2);
one step suffices almost always) and an a-posteriori bound of the backward error certify every
direction, eq. (49) (this module); a sample that fails the certificate is solved again in the
layer basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._memory import check_entries
from ..backend import quiet_float_errors, to_host
from . import linalg
from .basis import basis_size
from .core import Rows
from .exact import FEWER_SAMPLES, coordinates, warn_not_descent
from .pairs import (
    Anchors,
    Form,
    anchors,
    form_norms,
    form_sum,
    gradient_form,
    hvp_form,
    materialise,
    unit_rows,
)
from .spectral import singular_mask
from .state import subset_state
from .sweep import Sweep, factorise, solve_form, sweep_entries, sweep_work

__all__ = ["ACCEPT", "PARALLEL_SWEEPS", "Form", "Sweep", "anchors", "certify", "check_memory",
           "directions", "factorise", "form_norms", "gradient_form", "hvp_form", "materialise",
           "solve", "solve_form", "sweep_entries", "sweep_work", "warn_ascending"]

ACCEPT = 16
"""A direction is accepted when its bound of the backward error is at most ACCEPT eps, eq. (49)."""

STEPS = 4
"""At most this many refinement steps, eq. (49) (they stop once every sample is accepted)."""

PARALLEL_SWEEPS = 5e7
"""Stacked sweeps spread their samples over workers from this many multiply-adds in all
(`sweep_work` a sample): their small stacked products run below LAPACK's rate, so threads
pay from less work than `esso_ref.threads.PARALLEL_WORK` (measured crossover 2e7 to 5e7 on
four networks, docs/performance.md)."""

EXACT_CHUNK = 8
"""Samples whose exact |H_i|_F is formed at once (their S, q x q each) in the singular rule."""


@dataclass
class Certified:
    """The refined directions and what the certificate of eq. (49) measured, per sample.

    Attributes:
        d: the directions on the pairs of eq. (45).
        eta: the bound of the normwise backward error, in units of eps, (B,).
        d_norm, g_norm: |d_i| and |g_i|, (B,).
        beta: a lower bound of |H_i + lam I|_2, (B,).
        h_bound: an upper bound of |H_i|_F: |C_i|_inf tr(G_i), (B,).
        cos_gd: g_i . d_i / (|g_i| |d_i|), (B,) (0 where either is 0).
        anchors: the `Anchors` the pairs refer to.
    """

    d: Form
    eta: Any
    d_norm: Any
    g_norm: Any
    beta: Any
    h_bound: Any
    cos_gd: Any
    anchors: Anchors


def _residual(state, anc, lam, g: Form, d: Form):
    """(r, M d) with M d = H d + lam d and r = -g - M d, on the pairs of eq. (45)."""
    Md = hvp_form(state, anc, d) + d.scaled(lam)
    return (g + Md).scaled(-1.0), Md


def certify(state, lam: float, steps: int = STEPS) -> Certified:
    """The direction d = -(H_i + lam I)^{-1} g_i of every sample, certified, eqs. (45)-(49).

    d^(0) from the sweeps, then refinement steps d^(k+1) = d^(k) + (H + lam I)^{-1} r^(k),
    r^(k) = -g - (H + lam I) d^(k) with the exact Hessian-vector product, until the sample's
    bound

        eta = |r| / (beta |d| + |g|),  beta = max(|M d| / |d|, |M g| / |g|) <= |H + lam I|_2,

    which is at least the normwise backward error of d up to the rounding of the computed
    residual, is at most ACCEPT eps (at most ``steps`` steps; one suffices on almost every case
    of the property set). Each sample stops at its own step, so the steps it takes do not
    depend on the other samples of the call (the rounding of the stacked products may, in the
    last digits).

    Raises:
        LinAlgError: a pivot of the sweep is singular to working precision.
    """
    xp = state.xp
    anc = anchors(state)
    sw = factorise(state, anc, lam)
    g = gradient_form(state, anc)
    d = solve_form(state, anc, sw, g.scaled(-1.0))
    r, _ = _residual(state, anc, lam, g, d)
    Mg = hvp_form(state, anc, g) + g.scaled(lam)
    norms = form_norms(state, anc, g, Mg)
    g_norm, Mg_norm = norms[0, :], norms[1, :]
    one = xp.ones_like(g_norm)
    beta_g = Mg_norm / xp.where(g_norm > 0, g_norm, one)
    eps = float(xp.finfo(state.dtype).eps)
    done = None  # the samples accepted at an earlier step keep that step's direction
    for _ in range(steps):
        trial = d + solve_form(state, anc, sw, r)
        r_t, Md = _residual(state, anc, lam, g, trial)
        norms = form_norms(state, anc, trial, r_t, Md)
        d_norm_t, r_norm, Md_norm = norms[0, :], norms[1, :], norms[2, :]
        beta_t = xp.maximum(Md_norm / xp.where(d_norm_t > 0, d_norm_t, one), beta_g)
        denom = beta_t * d_norm_t + g_norm
        # r = 0 gives 0; a NaN residual (a non-finite sweep) stays NaN and is rejected
        eta_t = xp.where(r_norm == 0, 0 * one, r_norm / xp.where(denom > 0, denom, one)) / eps
        if done is None:
            d, r, d_norm, beta, eta = trial, r_t, d_norm_t, beta_t, eta_t
        else:
            d, r = d.where(done, trial), r.where(done, r_t)
            d_norm, beta, eta = (xp.where(done, old, new) for old, new in
                                 ((d_norm, d_norm_t), (beta, beta_t), (eta, eta_t)))
        done = eta <= ACCEPT
        if bool(xp.all(done)):
            break
    return Certified(d, eta, d_norm, g_norm, beta, _h_bound(state, sw),
                     _cosines(state, anc, g, d, g_norm, d_norm), anc)


def _h_bound(state, sw: Sweep):
    """|C|_inf tr(G) >= |C|_2 |A|_F^2 >= |H|_F for every sample (eq. (16), Gershgorin)."""
    xp = state.xp
    c = xp.max(xp.sum(xp.abs(state.Lam), axis=-1), axis=-1)
    for l in range(1, state.L):
        c = xp.maximum(c, xp.max(xp.abs(state.h[l]) + xp.abs(state.fwd.dphi[l]), axis=-1))
    return c * sw.trace_G


def _cosines(state, anc: Anchors, g: Form, d: Form, g_norm, d_norm):
    """g_i . d_i / (|g_i| |d_i|) on the pairs (0 where g_i or d_i is 0): the sign of g . d.

    sum_l <alpha^g â^T, alpha^d â^T + delta tau^T> with g and d divided by their norms first, so
    that tiny gradients do not underflow to a product of 0.
    """
    xp = state.xp
    one = xp.ones_like(g_norm)
    sg = xp.where(g_norm > 0, g_norm, one)[:, None]  # divided by, never inverted: a subnormal
    sd = xp.where(d_norm > 0, d_norm, one)[:, None]  # norm has no finite reciprocal
    total = 0
    for l in range(1, state.L + 1):
        a_g, a_d = g.alpha[l] / sg, d.alpha[l] / sd
        total = total + xp.vecdot(a_g, a_d) * anc.unit[l - 1] + xp.vecdot(
            a_g, state.bwd.delta[l]) * xp.vecdot(anc.ahat[l - 1], d.tau[l] / sd)
    return total


def _classify(state, cert: Certified, lam: float) -> tuple[list[int], list[int]]:
    """Samples whose certified direction needs a second look: (check, redo), eq. (49), §15.

    The singular rule needs h = |H_i|_F + lam; the certificate has beta <= |H_i + lam I|_2 <= h
    and h_bound + lam >= h. A sample whose eta exceeds ACCEPT, or on which the rule fires even
    with beta, is solved again in the layer basis (``redo``: it applies the exact rule); one on
    which the rule fires with the upper bound only gets its exact |H_i|_F (``check``); every
    other sample keeps its direction.
    """
    xp, net = state.xp, state.net
    q = basis_size(net.sizes, net.bias, 1)
    zeros, eps = net.num_params - q, float(xp.finfo(state.dtype).eps)

    def fires(h):
        return singular_mask(xp, cert.g_norm, cert.d_norm, h, lam, q, zeros, eps)

    trusted = xp.isfinite(cert.eta) & (cert.eta <= ACCEPT)
    redo = ~trusted | fires(cert.beta * (1 - 4 * eps))  # beta itself is rounded
    check = ~redo & fires(cert.h_bound + lam)
    return _indices(check), _indices(redo)


def _indices(mask) -> list[int]:
    """The positions of the True entries of a boolean array, as host integers."""
    return [i for i, v in enumerate(to_host(mask).tolist()) if v]


def _exact_rule(state, cert: Certified, lam: float, samples: list[int]) -> list[int]:
    """The samples among ``samples`` on which the singular rule fires with the exact |H_i|_F."""
    xp, net = state.xp, state.net
    rows, q = Rows.of(net.sizes), basis_size(net.sizes, net.bias, 1)
    frobenius = []
    for start in range(0, len(samples), EXACT_CHUNK):  # S of a few samples at a time
        part = samples[start:start + EXACT_CHUNK]
        frobenius += coordinates(subset_state(state, part), rows, 1).frobenius()
    index = xp.asarray(samples, device=state.device)
    h = xp.asarray(frobenius, dtype=state.dtype, device=state.device) + lam
    eps = float(xp.finfo(state.dtype).eps)
    mask = singular_mask(xp, xp.take(cert.g_norm, index), xp.take(cert.d_norm, index), h, lam,
                         q, net.num_params - q, eps)
    return [samples[k] for k in _indices(mask)]


def _dense_cosines(state, D, g_norm):
    """g_i . d_i / (|g_i| |d_i|) from the P-vectors d_i: sum_l delta_l . (D_l ã_{l-1}), eq. (8).

    D is divided by its row norms and delta by |g_i| first (no underflow for tiny vectors).
    """
    xp = state.xp
    V, c = state.net._Wb(unit_rows(xp, D))
    scale = xp.where(g_norm > 0, g_norm, xp.ones_like(g_norm))[:, None]
    total = 0
    for l in range(1, state.L + 1):
        Va = (V[l] @ state.fwd.a[l - 1][..., None])[..., 0]
        Va = Va if c[l] is None else Va + c[l]
        total = total + xp.vecdot(state.bwd.delta[l] / scale, Va)
    return total


def check_memory(state) -> None:
    """Raise InsufficientMemoryError unless the sweeps of all samples fit at once.

    Each sample needs `sweep_entries` entries.
    """
    check_entries(state.B * sweep_entries(state.net.sizes), state.dtype,
                  f"the sweeps of the per-sample directions ({state.B} x "
                  f"{state.net.num_params})", FEWER_SAMPLES, state.xp)


def solve(state, lam: float, out=None, total: bool = True) -> tuple[Any, list[int], Any]:
    """(D, ascending, total): every sample's d_i, (B, P), and sum_i d_i, (P,), eqs. (45)-(49).

    d_i = -(H_i + lam I)^{-1} g_i: the certified sweep where it is accepted, the layer basis
    (eq. (43)) for the other samples and for all of them when a pivot of the sweep is singular.
    ``ascending`` lists the samples whose direction is not a descent direction (g_i . d_i >= 0
    with g_i != 0); nothing warns. ``total`` comes from the pairs (`pairs.form_sum`) and the
    redone rows, not from a pass over D (None when not asked for). ``out``: a (B, P) array to
    write D into (a new one when None).

    Raises:
        SingularCurvatureError: some H_i + lam I is singular to working precision (§15).
    """
    xp = state.xp
    rows = Rows.of(state.net.sizes)
    check_memory(state)
    try:
        with quiet_float_errors(xp):  # overflow shows as a non-finite certificate: rejected
            cert = certify(state, lam)
            check, redo = _classify(state, cert, lam)
            D = materialise(state, cert.anchors, cert.d, out)
    except linalg.LinAlgError:
        return _basis_solve(state, lam, out, total)
    if check:
        redo = sorted(redo + _exact_rule(state, cert, lam, check))
    cos_gd = [float(v) for v in to_host(cert.cos_gd).tolist()]
    g_norm = [float(v) for v in to_host(cert.g_norm).tolist()]
    if not redo:
        return (D, _ascending(cos_gd, g_norm),
                form_sum(state, cert.anchors, cert.d) if total else None)
    sub = subset_state(state, redo)
    Dr = coordinates(sub, rows, 1).newton(lam, "none", descent=False)
    for k, i in enumerate(redo):
        D[i, :] = Dr[k, :]
    g_sub = xp.take(cert.g_norm, xp.asarray(redo, device=state.device))
    for k, v in enumerate(to_host(_dense_cosines(sub, Dr, g_sub)).tolist()):
        cos_gd[redo[k]] = float(v)
    if not total:
        return D, _ascending(cos_gd, g_norm), None
    redone = set(redo)
    keep = xp.asarray([i not in redone for i in range(state.B)], device=state.device)
    return (D, _ascending(cos_gd, g_norm),
            form_sum(state, cert.anchors, cert.d, keep) + xp.sum(Dr, axis=0))


def _basis_solve(state, lam: float, out, total: bool = True) -> tuple[Any, list[int], Any]:
    """`solve` of every sample in the layer basis, eq. (43) (a pivot of the sweep is singular)."""
    D = coordinates(state, Rows.of(state.net.sizes), 1).newton(lam, "none", descent=False)
    if out is not None:
        out[...] = D
        D = out
    anc = anchors(state)
    g_norm = form_norms(state, anc, gradient_form(state, anc))[0, :]
    cos_gd = [float(v) for v in to_host(_dense_cosines(state, D, g_norm)).tolist()]
    return (D, _ascending(cos_gd, [float(v) for v in to_host(g_norm).tolist()]),
            state.xp.sum(D, axis=0) if total else None)


def _ascending(cos_gd: list[float], g_norm: list[float]) -> list[int]:
    """The samples with g_i . d_i >= 0 and g_i != 0."""
    return [i for i, (c, g) in enumerate(zip(cos_gd, g_norm, strict=True)) if c >= 0 and g > 0]


def warn_ascending(state, samples: list[int], lam: float) -> None:
    """One NotDescentWarning for the listed samples, naming the smallest eigenvalue of their H_i."""
    mu = coordinates(subset_state(state, samples), Rows.of(state.net.sizes), 1).eigvalsh()
    warn_not_descent(len(samples), state.B, float(state.xp.min(mu)), lam)


def directions(state, lam: float):
    """d_i = -(H_i + lam I)^{-1} g_i of every sample, (B, P), eqs. (45)-(49) (`solve`).

    One NotDescentWarning counts the samples whose direction ascends and names the smallest
    eigenvalue of their H_i.

    Raises:
        SingularCurvatureError: some H_i + lam I is singular to working precision (§15).
    """
    D, ascending, _ = solve(state, lam, total=False)
    if ascending:
        warn_ascending(state, ascending, lam)
    return D
