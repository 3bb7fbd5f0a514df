r"""Each sample's exact plain Newton direction by a layer-by-layer elimination (docs/math.md §16).

For one sample, minimising q(v) = v^T (H + lam I) v / 2 - c^T v is a linear-quadratic control
problem: the state is the forward tangent x_l = zdot_l, the control of layer l its parameter
block U_l = [V_l | c_l], and x_l = F_l x_{l-1} + U_l ã_{l-1} with F_l = W_l D_{l-1}. Every
per-layer matrix met on the way has the form

    X_l = alpha_l â^T + delta_l tau_l^T,        â = ã_{l-1} / |ã_{l-1}|,             eq. (45)

so a direction is stored as the pairs (alpha_l, tau_l): 2 vectors a layer instead of a P-sized
block. A backward sweep eliminates the controls layer by layer (a Riccati recursion, eq. (46)
and (47)), a forward sweep recovers them (eq. (48)). That costs O(sum_l n_l^3) a sample instead
of the O(r^3) of the layer basis. Its pivots Pi_l may be indefinite, so the sweep alone is not
backward stable: iterative refinement with the exact Hessian-vector product (on the same pairs,
O(sum_l n_l^2); one step suffices almost always) and an a-posteriori bound of the backward error
certify every direction, eq. (49); a sample that fails the certificate is solved again in the
layer basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat

from .._memory import check_entries
from ..backend import quiet_float_errors, to_host, xp_of
from . import linalg
from .basis import basis_size
from .core import Rows
from .exact import FEWER_SAMPLES, coordinates, warn_not_descent
from .spectral import singular_mask
from .state import subset_state

__all__ = ["ACCEPT", "PARALLEL_SWEEPS", "Form", "Sweep", "certify", "check_memory", "directions",
           "factorise", "hvp_form", "solve", "solve_form", "sweep_work", "warn_ascending"]

ACCEPT = 16
"""A direction is accepted when its bound of the backward error is at most ACCEPT eps, eq. (49)."""

STEPS = 4
"""At most this many refinement steps, eq. (49) (they stop once every sample is accepted)."""

PARALLEL_SWEEPS = 3e7
"""Stacked sweeps spread their samples over workers from this many multiply-adds in all
(`sweep_work` a sample): their small stacked products run well below LAPACK's rate, so threads
pay from less work than `esso_ref.threads.PARALLEL_WORK` (measured crossover about 2.6e7,
docs/performance.md)."""

EXACT_CHUNK = 8
"""Samples whose exact |H_i|_F is formed at once (their S, q x q each) in the singular rule."""


@dataclass
class Form:
    """Per-sample directions X_l = alpha_l â_{l-1}^T + delta_l tau_l^T, eq. (45).

    Attributes:
        alpha: [None, alpha_1, ..., alpha_L], alpha_l of shape (B, n_l).
        tau: [None, tau_1, ..., tau_L], tau_l of shape (B, ñ_{l-1}).
    """

    alpha: list
    tau: list

    def __add__(self, other: Form) -> Form:
        return Form([None] + [a + b for a, b in zip(self.alpha[1:], other.alpha[1:], strict=True)],
                    [None] + [a + b for a, b in zip(self.tau[1:], other.tau[1:], strict=True)])

    def scaled(self, c) -> Form:
        """The direction c X (c a float)."""
        return Form([None] + [c * a for a in self.alpha[1:]],
                    [None] + [c * t for t in self.tau[1:]])

    def where(self, keep, other: Form) -> Form:
        """This direction for the samples where ``keep`` (B,) is True, ``other`` elsewhere."""
        xp = xp_of(keep)
        return Form([None] + [xp.where(keep[:, None], a, b)
                              for a, b in zip(self.alpha[1:], other.alpha[1:], strict=True)],
                    [None] + [xp.where(keep[:, None], a, b)
                              for a, b in zip(self.tau[1:], other.tau[1:], strict=True)])


@dataclass
class Anchors:
    """The unit inputs â_{l-1} of every layer and what the pairs of eq. (45) need with them.

    Attributes:
        ahat: [â_0, ..., â_{L-1}], (B, ñ_{l-1}); â = ã / |ã|, 0 where ã = 0.
        rho: [rho_0, ..., rho_{L-1}], rho_{l-1} = |ã_{l-1}|, (B,).
        unit: [|â_0|, ...], 1 or 0, (B,).
        delta_norm: [None, |delta_1|, ..., |delta_L|], (B,).
    """

    ahat: list
    rho: list
    unit: list
    delta_norm: list


def anchors(state) -> Anchors:
    """â = ã / |ã| (0 where ã = 0) for every layer's input, computed without overflow."""
    xp = state.xp
    ahat, rho, unit = [], [], []
    for l in range(state.L):
        a = state.a_tilde(l)
        n = row_norms(xp, a)
        safe = xp.where(n > 0, n, xp.ones_like(n))
        ahat.append(a / safe[:, None])
        rho.append(n)
        unit.append(xp.astype(n > 0, a.dtype))
    delta_norm = [None] + [row_norms(xp, state.bwd.delta[l]) for l in range(1, state.L + 1)]
    return Anchors(ahat, rho, unit, delta_norm)


def unit_rows(xp, v):
    """Every row of v divided by its norm (zero rows stay zero)."""
    n = row_norms(xp, v)
    return v / xp.where(n > 0, n, xp.ones_like(n))[:, None]


def row_norms(xp, v):
    """Euclidean norm of every row of v (B, n), scaled by the largest entry (no overflow)."""
    top = xp.max(xp.abs(v), axis=-1)
    safe = xp.where(top > 0, top, xp.ones_like(top))
    w = v / safe[..., None]
    return top * xp.sqrt(xp.sum(w * w, axis=-1))


def _weights(state, v, l: int):
    """The weight part of a (B, ñ_{l-1}) vector (drops the bias entry)."""
    return v[:, :state.net.sizes[l - 1]]


def _pad(state, v):
    """[v; 0]: a (B, n_{l-1}) tangent as a (B, ñ_{l-1}) vector with a zero bias entry."""
    if not state.net.bias:
        return v
    return state.xp.concat([v, state.zeros((v.shape[0], 1))], axis=1)


def gradient_form(state, anc: Anchors) -> Form:
    """g_i = delta_l ã^T = (rho delta_l) â^T: alpha_l = rho delta_l, tau_l = 0, eq. (8)."""
    delta = state.bwd.delta
    return Form([None] + [anc.rho[l - 1][:, None] * delta[l] for l in range(1, state.L + 1)],
                [None] + [state.zeros(anc.ahat[l - 1].shape) for l in range(1, state.L + 1)])


def hvp_form(state, anc: Anchors, v: Form) -> Form:
    """H_i v_i for every sample on the pairs of eq. (45), eqs. (9)-(11): O(sum_l n_l^2).

    zdot_l = rho (alpha_l + delta_l (tau_l . â)) + W_l adot_{l-1},
    (Hv)_l = (rho ddelta_l + delta_l (e . â)) â^T + delta_l (e - â (e . â))^T,
    e = [adot_{l-1}; 0] (its part along â moved into alpha, so that tau stays orthogonal to â).
    """
    xp, fwd, delta, W, L = state.xp, state.fwd, state.bwd.delta, state.W, state.L
    zdot, adot = [None] * (L + 1), [None] * (L + 1)
    for l in range(1, L + 1):
        ah, rho = anc.ahat[l - 1], anc.rho[l - 1]
        z = rho[:, None] * (v.alpha[l] + delta[l] * xp.vecdot(v.tau[l], ah)[:, None])
        zdot[l] = z if adot[l - 1] is None else z + adot[l - 1] @ xp.matrix_transpose(W[l])
        if l < L:
            adot[l] = fwd.dphi[l] * zdot[l]
    ddelta = _matvec(state.Lam, zdot[L])
    alpha, tau = [None] * (L + 1), [None] * (L + 1)
    for l in range(L, 0, -1):
        if l < L:
            Vd = (_weights(state, anc.ahat[l], l + 1)
                  * xp.vecdot(v.alpha[l + 1], delta[l + 1])[:, None]
                  + _weights(state, v.tau[l + 1], l + 1)
                  * xp.vecdot(delta[l + 1], delta[l + 1])[:, None])
            ddelta = state.h[l] * zdot[l] + fwd.dphi[l] * (Vd + ddelta @ W[l + 1])
        ah = anc.ahat[l - 1]
        if l == 1:
            alpha[l], tau[l] = anc.rho[0][:, None] * ddelta, state.zeros(ah.shape)
            continue
        e = _pad(state, adot[l - 1])
        t = xp.vecdot(e, ah)
        alpha[l] = anc.rho[l - 1][:, None] * ddelta + delta[l] * t[:, None]
        tau[l] = e - ah * t[:, None]
    return Form(alpha, tau)


def form_norms(state, anc: Anchors, *forms: Form):
    """|X|_F of every sample's direction for each form, (k, B), eq. (45).

    |X|_F^2 = |alpha_c|^2 |â|^2 + |delta|^2 |tau_perp|^2 with alpha_c = alpha + delta (tau . â)
    and tau_perp = tau - â (tau . â): orthogonal parts, so no term cancels; one scaled norm of
    the rows [alpha_c |â|, |delta| tau_perp] over all layers and forms.
    """
    xp, parts = state.xp, []
    for l in range(1, state.L + 1):
        ah, delta = anc.ahat[l - 1], state.bwd.delta[l]
        tau = xp.concat([v.tau[l] for v in forms], axis=0)
        alpha = xp.concat([v.alpha[l] for v in forms], axis=0)
        k = len(forms)
        ahk, deltak = xp.tile(ah, (k, 1)), xp.tile(delta, (k, 1))
        t = xp.vecdot(tau, ahk)[:, None]
        parts += [(alpha + deltak * t) * xp.tile(anc.unit[l - 1], (k,))[:, None],
                  (tau - ahk * t) * xp.tile(anc.delta_norm[l], (k,))[:, None]]
    return xp.reshape(row_norms(xp, xp.concat(parts, axis=1)), (len(forms), -1))


def materialise(state, anc: Anchors, v: Form, out=None):
    """The (B, P) array of the directions, W_l row-major then b_l (eq. (3)), written once.

    ``out``: the (B, P) array to write into (a new one when None).
    """
    xp, net = state.xp, state.net
    out = state.zeros((state.B, net.num_params)) if out is None else out
    for l in range(1, state.L + 1):
        n_in = net.sizes[l - 1]
        block = net.layer_slice(l)
        start, mid, end = block.start, block.start + net.sizes[l] * n_in, block.stop
        left = xp.stack([v.alpha[l], state.bwd.delta[l]], axis=2)             # (B, n_l, 2)
        right = xp.stack([anc.ahat[l - 1][:, :n_in], v.tau[l][:, :n_in]], axis=1)
        _product_into(xp, left, right, out[:, start:mid])
        if net.bias:
            out[:, mid:end] = (left @ xp.stack([anc.ahat[l - 1][:, n_in], v.tau[l][:, n_in]],
                                               axis=1)[..., None])[..., 0]
    return out


def _product_into(xp, left, right, target) -> None:
    """Write the rows of left @ right ((B, n, k) @ (B, k, m)) into target (B, n m), once.

    NumPy writes the product straight into ``target`` (a view of its rows): the (B, P)
    directions are the largest array of the call, and a temporary would double its traffic.
    """
    if array_api_compat.is_numpy_namespace(xp):
        shape = (left.shape[0], left.shape[1], right.shape[2])
        xp.matmul(left, right, out=xp.reshape(target, shape, copy=False))
    else:
        target[...] = xp.reshape(left @ right, (left.shape[0], -1))


@dataclass
class Sweep:
    """The backward sweep's pivots and gains for one damping, eqs. (46)-(47).

    Attributes:
        lam: the damping.
        Pi: [None, Pi_1, ..., Pi_L], Pi_l = lam I + rho^2 P_l (B matrices n_l x n_l), each
            factorised once (`linalg.LU`) for the solves of eqs. (47) and (48).
        gain: [None, None, Pi_2^{-1} Hx_2, ..., Pi_L^{-1} Hx_L], (B, n_l, n_{l-1}).
        F: [None, None, F_2, ..., F_L], F_l = W_l D_{l-1}, (B, n_l, n_{l-1}).
        trace_G: tr(G) = tr(A A^T) of every sample, (B,) (for the bound of |H|_F).
    """

    lam: float
    Pi: list
    gain: list
    F: list
    trace_G: Any


def factorise(state, anc: Anchors, lam: float) -> Sweep:
    """The backward sweep of eq. (47) for the damping lam, in its product form.

    P_L = Lam and, for l = L..2, with Y = Pi_l^{-1} P_l F_l and u = Pi_l^{-1} delta_l,

    Pi_l = lam I + rho^2 P_l,   gain_l = Pi_l^{-1} Hx_l = u (D â)^T + rho Y,
    P_{l-1} = diag(h_{l-1} - |delta_l|^2 D^2 / lam) + lam F_l^T Y
              - rho ((D â) w^T + w (D â)^T) + (|delta_l|^2 / lam - delta_l . u)(D â)(D â)^T,
    w = Y^T delta_l,

    which is eq. (47) with F^T P F - rho^2 F^T P Pi^{-1} P F = lam F^T Pi^{-1} P F: one product
    instead of the difference of two, and one stacked solve with m + 1 right-hand sides.

    Raises:
        LinAlgError: a pivot Pi_l is singular to working precision.
    """
    xp, L, sizes = state.xp, state.L, state.net.sizes
    delta = state.bwd.delta
    P = state.Lam
    Pi, gain, F = [None] * (L + 1), [None] * (L + 1), [None] * (L + 1)
    for l in range(L, 1, -1):
        rho, m = anc.rho[l - 1], sizes[l - 1]
        D = state.fwd.dphi[l - 1]
        F[l] = state.W[l] * D[:, None, :]
        Da = D * _weights(state, anc.ahat[l - 1], l)
        Pi[l] = linalg.LU(_pivot(state, rho, P, lam))  # a non-finite sweep fails eq. (49)
        both = Pi[l].solve(xp.concat([P @ F[l], delta[l][..., None]], axis=2))
        Y, u = both[..., :m], both[..., m]
        gain[l] = u[:, :, None] * Da[:, None, :] + rho[:, None, None] * Y
        w = _matvec(xp.matrix_transpose(Y), delta[l])
        dd = xp.vecdot(delta[l], delta[l])
        kappa = dd / lam - xp.vecdot(u, delta[l])
        rank2 = Da[:, :, None] * (kappa[:, None] * Da / 2 - rho[:, None] * w)[:, None, :]
        P = (lam * (xp.matrix_transpose(F[l]) @ Y) + rank2 + xp.matrix_transpose(rank2)
             + state.eye(m) * (state.h[l - 1] - dd[:, None] / lam * D * D)[:, None, :])
        P = (P + xp.matrix_transpose(P)) / 2
    Pi[1] = linalg.LU(_pivot(state, anc.rho[0], P, lam))
    return Sweep(lam, Pi, gain, F, _trace_G(state, anc, F))


def _pivot(state, rho, P, lam: float):
    """Pi_l = lam I + rho^2 P_l, eq. (46)."""
    return lam * state.eye(P.shape[-1]) + (rho * rho)[:, None, None] * P


def _trace_G(state, anc: Anchors, F: list):
    """tr(G) = tr(A A^T) of every sample, (B,), eqs. (21), (23).

    sum_m |ã_{m-1}|^2 tr(Q_m) + sum_{l >= 2} n_{l-1} |delta_l|^2 with Q_L = I and
    Q_{l-1} = I + F_l^T Q_l F_l (tr(Q_m) sums |T_{l<-m}|_F^2 over l >= m). Q is kept as
    I + R^T R, R = [F_l; R_l F_l], while R has fewer rows than columns (near the output, where
    n_L is small), and as a dense matrix below.
    """
    xp, L, sizes, delta = state.xp, state.L, state.net.sizes, state.bwd.delta
    trace = anc.rho[L - 1] ** 2 * sizes[L]
    R = Q = None  # Q_L = I
    for l in range(L, 1, -1):
        m = sizes[l - 1]
        if Q is None:
            RF = F[l] if R is None else xp.concat([F[l], R @ F[l]], axis=1)
            trQ = m + _squares(xp, RF * RF)  # tr(F^T (I + R^T R) F)
        else:
            QF = Q @ F[l]
            trQ = m + _squares(xp, QF * F[l])
        trace = trace + anc.rho[l - 2] ** 2 * trQ + m * xp.vecdot(delta[l], delta[l])
        if l > 2 and Q is None and RF.shape[1] <= m:
            R = RF
        elif l > 2:
            Q = state.eye(m) + (xp.matrix_transpose(RF) @ RF if Q is None
                                else xp.matrix_transpose(F[l]) @ QF)
    return trace


def _squares(xp, M):
    """The sum of the entries of every sample's (B, n, m) matrix M, (B,)."""
    return xp.sum(xp.reshape(M, (M.shape[0], -1)), axis=1)


def solve_form(state, anc: Anchors, sw: Sweep, c: Form) -> Form:
    """The solution v = (H + lam I)^{-1} c of every sample, eqs. (46)-(48), on the pairs (45).

    Backward (p_L = 0), with c = (alpha^c, tau^c), c_a = alpha^c + delta (tau^c . â) and
    tau_perp = tau^c - â (tau^c . â):

        h0_l = rho p_l - c_a,   p_{l-1} = F_l^T p_l + D psi / lam - gain_l^T h0_l,
        psi = |delta_l|^2 tau_perp (weights part);

    forward (x_0 = 0), with ê = [D x_{l-1}; 0] and ê_perp = ê - â (â . ê):

        u_l = -(Pi_l^{-1} h0_l + gain_l x_{l-1}),   x_l = F_l x_{l-1} + rho u_l,
        alpha_l = u_l,   tau_l = (tau_perp - ê_perp) / lam.

    tau_l is orthogonal to â, so the two outer products of eq. (45) are orthogonal and the
    materialised direction carries no cancellation.
    """
    xp, L, lam, delta = state.xp, state.L, sw.lam, state.bwd.delta
    h0, tau_perp = [None] * (L + 1), [None] * (L + 1)
    p = state.zeros(delta[L].shape)  # p_L = 0
    for l in range(L, 0, -1):
        ah, rho = anc.ahat[l - 1], anc.rho[l - 1]
        t = xp.vecdot(c.tau[l], ah)
        c_a = (c.alpha[l] + delta[l] * t[:, None]) * anc.unit[l - 1][:, None]
        tau_perp[l] = c.tau[l] - ah * t[:, None]
        h0[l] = rho[:, None] * p - c_a
        if l > 1:
            psi = _weights(state, tau_perp[l], l) * xp.vecdot(delta[l], delta[l])[:, None]
            p = (_matvec(xp.matrix_transpose(sw.F[l]), p) + state.fwd.dphi[l - 1] * psi / lam
                 - _matvec(xp.matrix_transpose(sw.gain[l]), h0[l]))
    alpha, tau = [None] * (L + 1), [None] * (L + 1)
    x = state.zeros(delta[1].shape)
    for l in range(1, L + 1):
        ah, rho = anc.ahat[l - 1], anc.rho[l - 1]
        if l == 1:  # x_0 = 0: no gain, no ê
            alpha[l] = -sw.Pi[l].solve(h0[l])
            tau[l] = tau_perp[l] / lam
            x = rho[:, None] * alpha[l]
            continue
        e = _pad(state, state.fwd.dphi[l - 1] * x)
        alpha[l] = -(sw.Pi[l].solve(h0[l]) + _matvec(sw.gain[l], x))
        tau[l] = (tau_perp[l] - (e - ah * xp.vecdot(ah, e)[:, None])) / lam
        x = _matvec(sw.F[l], x) + rho[:, None] * alpha[l]
    return Form(alpha, tau)


def _matvec(M, v):
    """Stacked matrix-vector products M_i v_i: (B, n, m) and (B, m) to (B, n)."""
    return (M @ v[..., None])[..., 0]


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
        eta_t = xp.where(r_norm > 0, r_norm / xp.where(denom > 0, denom, one), 0 * one) / eps
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


def solve(state, lam: float, out=None) -> tuple[Any, list[int]]:
    """(D, ascending): d_i = -(H_i + lam I)^{-1} g_i of every sample, (B, P), eqs. (45)-(49).

    The certified sweep where it is accepted, the layer basis (eq. (43)) for the other samples
    and for all of them when a pivot of the sweep is singular. ``ascending`` lists the samples
    whose direction is not a descent direction (g_i . d_i >= 0 with g_i != 0); nothing warns.
    ``out``: a (B, P) array to write D into (a new one when None).

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
        return _basis_solve(state, lam, out)
    if check:
        redo = sorted(redo + _exact_rule(state, cert, lam, check))
    cos_gd = [float(v) for v in to_host(cert.cos_gd).tolist()]
    g_norm = [float(v) for v in to_host(cert.g_norm).tolist()]
    if redo:
        sub = subset_state(state, redo)
        Dr = coordinates(sub, rows, 1).newton(lam, "none", descent=False)
        for k, i in enumerate(redo):
            D[i, :] = Dr[k, :]
        g_sub = xp.take(cert.g_norm, xp.asarray(redo, device=state.device))
        for k, v in enumerate(to_host(_dense_cosines(sub, Dr, g_sub)).tolist()):
            cos_gd[redo[k]] = float(v)
    return D, _ascending(cos_gd, g_norm)


def _basis_solve(state, lam: float, out) -> tuple[Any, list[int]]:
    """`solve` of every sample in the layer basis, eq. (43) (a pivot of the sweep is singular)."""
    D = coordinates(state, Rows.of(state.net.sizes), 1).newton(lam, "none", descent=False)
    if out is not None:
        out[...] = D
        D = out
    anc = anchors(state)
    g_norm = form_norms(state, anc, gradient_form(state, anc))[0, :]
    cos_gd = [float(v) for v in to_host(_dense_cosines(state, D, g_norm)).tolist()]
    return D, _ascending(cos_gd, [float(v) for v in to_host(g_norm).tolist()])


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
    D, ascending = solve(state, lam)
    if ascending:
        warn_ascending(state, ascending, lam)
    return D


def sweep_work(sizes) -> int:
    """Multiply-adds of one sample's backward sweep, eq. (47), the bulk of its direction.

    Per layer l >= 2 (m = n_{l-1}, n = n_l): P_l F_l (n^2 m), the LU of Pi_l (n^3 / 3), its
    m + 1 solves (n^2 (m + 1)) and F_l^T Y (m^2 n); the LU of Pi_1 (n_1^3 / 3).
    """
    work = sizes[1] ** 3 // 3
    for n, m in zip(sizes[2:], sizes[1:-1], strict=True):
        work += n * n * m + n ** 3 // 3 + n * n * (m + 1) + m * m * n
    return work


def sweep_entries(sizes) -> int:
    """Array entries one sample needs at once, eqs. (46)-(48).

    Its direction (P entries), what the forward sweep keeps (F_l, the gains and the pivots'
    LU factors), the backward sweep's working P_l, Q_l and products, and the largest layer block
    written out at the end.
    """
    kept = sizes[1] ** 2 + sum(2 * n * m + n * n
                               for n, m in zip(sizes[2:], sizes[1:-1], strict=True))
    work = 8 * max(sizes[1:]) ** 2 + max(n * (m + 1) for n, m in zip(sizes[1:], sizes[:-1],
                                                                      strict=True))
    return sum(n * (m + 1) for n, m in zip(sizes[1:], sizes[:-1], strict=True)) + kept + work
