r"""The backward and forward sweeps of the layer-by-layer elimination (docs/math.md §16).

For one sample, minimising q(v) = v^T (H + lam I) v / 2 - c^T v is a linear-quadratic control
problem: the state is the forward tangent x_l = zdot_l, the control of layer l its parameter
block U_l = [V_l | c_l], and x_l = F_l x_{l-1} + U_l ã_{l-1} with F_l = W_l D_{l-1}. A backward
sweep eliminates the controls layer by layer (a Riccati recursion, eqs. (46), (47)), a forward
sweep recovers them (eq. (48)), on the pairs of eq. (45). Below a narrow layer the cost of a
layer is a diagonal plus low rank (eq. (50)), so its pivot needs no factorisation and the layer
below it one product with the shared weights (eq. (51)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat

from . import pivots
from .pairs import Anchors, Form, _matvec, _pad, _weights

__all__ = ["Level", "Sweep", "apply_F", "apply_Ft", "factorise", "gain", "gain_t", "solve_form",
           "sweep_entries", "sweep_work"]

@dataclass
class Level:
    """Layer l's elimination in the backward sweep, eqs. (46), (47), (50).

    Attributes:
        pivot: Pi_l (`pivots.DensePivot`, `pivots.SpectralPivot` or `pivots.LowRankPivot`):
            ``solve(h)`` = Pi_l^{-1} h.
        rho: rho_{l-1}, (B,).
        Da: D_{l-1} â_W, (B, n_{l-1}) (l >= 2).
        u: Pi_l^{-1} delta_l, (B, n_l) (l >= 2).
        Y: M_l F_l = Pi_l^{-1} P_l F_l, (B, n_l, n_{l-1}), where it is formed; None where
            M_l F_l x is ``pivot.apply_M(F_l x)``.
    """

    pivot: Any
    rho: Any
    Da: Any = None
    u: Any = None
    Y: Any = None


@dataclass
class Sweep:
    """The backward sweep's pivots and gains for one damping, eqs. (46), (47), (50).

    Attributes:
        lam: the damping.
        levels: [None, level 1, ..., level L] (`Level`); the gain of eq. (46),
            Pi_l^{-1} Hx_l = u (D â)^T + rho M_l F_l, is applied (`gain`, `gain_t`), not formed.
        trace_G: tr(G) = tr(A A^T) of every sample, (B,) (for the bound of |H|_F).
    """

    lam: float
    levels: list
    trace_G: Any


def factorise(state, anc: Anchors, lam: float) -> Sweep:
    """The backward sweep of eq. (47) for the damping lam, in its product form.

    P_L = Lam and, for l = L..2, with M = Pi_l^{-1} P_l, Y = M F_l and u = Pi_l^{-1} delta_l,

    Pi_l = lam I + rho^2 P_l,   gain_l = Pi_l^{-1} Hx_l = u (D â)^T + rho Y,
    P_{l-1} = diag(h_{l-1} - |delta_l|^2 D^2 / lam) + lam F_l^T Y
              - rho ((D â) w^T + w (D â)^T) + (|delta_l|^2 / lam - delta_l . u)(D â)(D â)^T,
    w = Y^T delta_l,

    which is eq. (47) with F^T P F - rho^2 F^T P Pi^{-1} P F = lam F^T Pi^{-1} P F: one product
    instead of the difference of two, and one stacked solve with m + 1 right-hand sides. Below a
    narrow layer (`pivots.low_rank_costs`) P_{l-1} is kept as the diagonal plus low rank of eq.
    (50), its pivot solved by the Woodbury identity, and the P_{l-2} below it is eq. (51).

    Raises:
        LinAlgError: a pivot Pi_l is singular to working precision.
    """
    xp, L = state.xp, state.L
    low = pivots.low_rank_costs(state.net.sizes)
    levels = [None] * (L + 1)
    P = state.Lam  # dense (B, n, n), or (d, U, K) of eq. (50)
    for l in range(L, 0, -1):
        rho = anc.rho[l - 1]
        if low[l]:
            pivot = pivots.LowRankPivot(*P, rho, lam, state.eye(P[1].shape[-1]))
        elif low[l - 1]:  # small: M_l from P_l's eigenvalues, for the K of eq. (50)
            pivot = pivots.SpectralPivot(P, rho, lam)
        else:
            pivot = pivots.DensePivot(P, rho, lam, state.eye(P.shape[-1]))
        levels[l] = level = Level(pivot, rho)
        if l == 1:
            break
        level.Da = state.fwd.dphi[l - 1] * _weights(state, anc.ahat[l - 1], l)
        delta = state.bwd.delta[l]
        if low[l]:
            level.u = pivot.solve(delta)
            P = _dense_cost(state, l, level, lam, _product_below_low_rank(state, l, pivot))
        elif low[l - 1]:
            level.u = pivot.solve(delta)
            P = _low_rank_cost(state, l, level, lam)
        else:
            F = state.W[l] * state.fwd.dphi[l - 1][:, None, :]
            both = pivot.solve(xp.concat([P @ F, delta[..., None]], axis=2))
            level.Y, level.u = both[..., :-1], both[..., -1]
            P = _dense_cost(state, l, level, lam, lam * (xp.matrix_transpose(F) @ level.Y))
    return Sweep(lam, levels, _trace_G(state, anc))


def _diagonal_and_kappa(state, l: int, level: Level, lam: float):
    """(diagonal, kappa) of eq. (47), (B, m) and (B,).

    diagonal = h_{l-1} - |delta_l|^2 D^2 / lam, kappa = |delta_l|^2 / lam - delta_l . u.
    """
    xp, delta, D = state.xp, state.bwd.delta[l], state.fwd.dphi[l - 1]
    dd = xp.vecdot(delta, delta)
    return state.h[l - 1] - dd[:, None] / lam * D * D, dd / lam - xp.vecdot(level.u, delta)


def _dense_cost(state, l: int, level: Level, lam: float, FtMF):
    """P_{l-1} of eq. (47), (B, m, m), from lam F_l^T M_l F_l and the level's u and Da."""
    xp = state.xp
    diag, kappa = _diagonal_and_kappa(state, l, level, lam)
    w = gain_part_t(state, l, level, state.bwd.delta[l])  # Y^T delta_l
    x = kappa[:, None] * level.Da / 2 - level.rho[:, None] * w
    S = FtMF  # the caller's own: S = FtMF / 2 + (D â) x^T, and P = S + S^T is symmetric
    S *= 0.5
    S += level.Da[:, :, None] * x[:, None, :]
    return _plus_diagonal(state, S + xp.matrix_transpose(S), diag)


def _plus_diagonal(state, P, diag):
    """P + diag(diag) for stacked P (B, m, m); NumPy adds in place (P is the caller's own)."""
    xp, m = state.xp, P.shape[-1]
    if array_api_compat.is_numpy_namespace(xp):
        xp.reshape(P, (P.shape[0], m * m), copy=False)[:, ::m + 1] += diag
        return P
    return P + state.eye(m) * diag[:, None, :]


def _low_rank_cost(state, l: int, level: Level, lam: float) -> tuple:
    """P_{l-1} = diag(d) + U K U^T of eq. (50), from M_l = Pi_l^{-1} P_l (`pivots.SpectralPivot`).

    U = [F_l^T | D â_W] and K = [[lam M, -rho M delta_l], [-rho (M delta_l)^T, kappa]]: the
    terms lam F^T M F, -rho ((D â) w^T + w (D â)^T) and kappa (D â)(D â)^T of eq. (47).
    """
    xp, delta, D = state.xp, state.bwd.delta[l], state.fwd.dphi[l - 1]
    M = level.pivot.M
    d, kappa = _diagonal_and_kappa(state, l, level, lam)
    Md = -level.rho[:, None] * _matvec(M, delta)
    K = xp.concat([xp.concat([lam * M, Md[:, :, None]], axis=2),
                   xp.concat([Md, kappa[:, None]], axis=1)[:, None, :]], axis=1)
    Ft = xp.matrix_transpose(state.W[l])[None, :, :] * D[:, :, None]
    return d, xp.concat([Ft, level.Da[:, :, None]], axis=2), K


def _product_below_low_rank(state, l: int, pivot):
    """The product lam F_l^T M_l F_l (B, m, m) for M_l of eq. (50), eq. (51).

    lam D W_l^T diag(d / Delta) W_l D + lam^2 (F_l^T Ū) Z (F_l^T Ū)^T: the first term is one
    product with the shared weights W_l for all samples at once.
    """
    xp, W, D, lam = state.xp, state.W[l], state.fwd.dphi[l - 1], pivot.lam
    FtMF = _weighted_grams(xp, W, lam * pivot.mu)
    FtMF *= D[:, :, None]
    FtMF *= D[:, None, :]
    FtU = xp.matrix_transpose(xp.matrix_transpose(pivot.Ubar) @ W) * D[:, :, None]  # (B, m, k)
    FtMF += ((lam * lam) * FtU @ pivot.Z) @ xp.matrix_transpose(FtU)
    return FtMF


KR_ENTRIES = 1 << 21
"""`_weighted_grams` forms the rows vec(w_j w_j^T) (n m^2 entries) up to this size (16 MiB in
float64)."""

KR_MIN_SAMPLES = 48
"""... and from this many samples on (measured on one thread: 1.18x faster at n = m = 128 and
B = 64, 1.34x at B = 128; slower below B = 48, and at n = m = 512 at every B up to 128)."""


def _weighted_grams(xp, W, c):
    """W^T diag(c_i) W = sum_j c_ij w_j w_j^T for every row c_i of c (B, n), (B, m, m), eq. (51).

    One product of c with the rows vec(w_j w_j^T) (w_j the rows of W, n x m^2) when B and W
    allow (`KR_MIN_SAMPLES`, `KR_ENTRIES`), else the stacked (W^T diag(c_i)) W as one product
    with W.
    """
    (n, m), B = W.shape, c.shape[0]
    if B >= KR_MIN_SAMPLES and n * m * m <= KR_ENTRIES:
        return xp.reshape(c @ xp.reshape(W[:, :, None] * W[:, None, :], (n, m * m)), (B, m, m))
    T = xp.matrix_transpose(W)[None, :, :] * c[:, None, :]  # (B, m, n)
    return xp.reshape(xp.reshape(T, (B * m, n)) @ W, (B, m, m))


def apply_F(state, l: int, x):
    """F_l x = W_l (D_{l-1} x) for every sample, (B, n_{l-1}) to (B, n_l)."""
    return (state.fwd.dphi[l - 1] * x) @ state.xp.matrix_transpose(state.W[l])


def apply_Ft(state, l: int, p):
    """F_l^T p = D_{l-1} (W_l^T p) for every sample, (B, n_l) to (B, n_{l-1})."""
    return state.fwd.dphi[l - 1] * (p @ state.W[l])


def gain_part(state, l: int, level: Level, x):
    """M_l F_l x, (B, n_l)."""
    if level.Y is not None:
        return _matvec(level.Y, x)
    return level.pivot.apply_M(apply_F(state, l, x))


def gain_part_t(state, l: int, level: Level, h):
    """(M_l F_l)^T h = F_l^T M_l h, (B, n_{l-1})."""
    if level.Y is not None:
        return _matvec(state.xp.matrix_transpose(level.Y), h)
    return apply_Ft(state, l, level.pivot.apply_M(h))


def gain(state, l: int, level: Level, x):
    """Pi_l^{-1} Hx_l x = u ((D â) . x) + rho M_l F_l x, eq. (46)."""
    return (level.u * state.xp.vecdot(level.Da, x)[:, None]
            + level.rho[:, None] * gain_part(state, l, level, x))


def gain_t(state, l: int, level: Level, h):
    """(Pi_l^{-1} Hx_l)^T h = (D â)(u . h) + rho F_l^T M_l h, eq. (46)."""
    return (level.Da * state.xp.vecdot(level.u, h)[:, None]
            + level.rho[:, None] * gain_part_t(state, l, level, h))


def _trace_G(state, anc: Anchors):
    """tr(G) = tr(A A^T) of every sample, (B,), eqs. (21), (23).

    sum_m |ã_{m-1}|^2 tr(Q_m) + sum_{l >= 2} n_{l-1} |delta_l|^2 with Q_L = I and
    Q_{l-1} = I + F_l^T Q_l F_l (tr(Q_m) sums |T_{l<-m}|_F^2 over l >= m), F_l = W_l D_{l-1}.
    Q is kept as I + R^T R, R = [F_l; R_l F_l], while R has fewer rows than columns (near the
    output, where n_L is small), and as a dense matrix below; products with F_l are products
    with the shared W_l, scaled by D_{l-1}.
    """
    xp, L, sizes, delta, W = state.xp, state.L, state.net.sizes, state.bwd.delta, state.W
    trace = anc.rho[L - 1] ** 2 * sizes[L]
    R = Q = None  # Q_L = I
    for l in range(L, 1, -1):
        m, D = sizes[l - 1], state.fwd.dphi[l - 1]
        D2 = D * D
        if Q is None:
            RW = None if R is None else R @ W[l]  # (B, k, m)
            columns = xp.sum(W[l] * W[l], axis=0)[None, :]  # |F e_j|^2 = |W e_j|^2 D_j^2
            if RW is not None:
                columns = columns + xp.sum(RW * RW, axis=1)
        else:
            QW = Q @ W[l]  # (B, n, m)
            columns = xp.sum(QW * W[l], axis=1)  # (W^T Q W)_jj
        trace = (trace + anc.rho[l - 2] ** 2 * (m + xp.vecdot(columns, D2))
                 + m * xp.vecdot(delta[l], delta[l]))
        if l == 2:
            break
        if Q is None and sizes[l] + (0 if R is None else R.shape[1]) <= m:
            F = W[l] * D[:, None, :]
            R = F if RW is None else xp.concat([F, RW * D[:, None, :]], axis=1)
        elif Q is None:
            WtW = xp.matrix_transpose(W[l]) @ W[l]
            Q = WtW[None, :, :] if RW is None else WtW + xp.matrix_transpose(RW) @ RW
            Q = _plus_diagonal(state, Q * D[:, :, None] * D[:, None, :], xp.ones_like(D))
        else:
            Q = xp.matrix_transpose(QW) @ W[l]  # (B, m, m): W^T Q W, Q symmetric
            Q = _plus_diagonal(state, Q * D[:, :, None] * D[:, None, :], xp.ones_like(D))
    return trace


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
            p = (apply_Ft(state, l, p) + state.fwd.dphi[l - 1] * psi / lam
                 - gain_t(state, l, sw.levels[l], h0[l]))
    alpha, tau = [None] * (L + 1), [None] * (L + 1)
    x = state.zeros(delta[1].shape)
    for l in range(1, L + 1):
        ah, rho, level = anc.ahat[l - 1], anc.rho[l - 1], sw.levels[l]
        if l == 1:  # x_0 = 0: no gain, no ê
            alpha[l] = -level.pivot.solve(h0[l])
            tau[l] = tau_perp[l] / lam
            x = rho[:, None] * alpha[l]
            continue
        e = _pad(state, state.fwd.dphi[l - 1] * x)
        alpha[l] = -(level.pivot.solve(h0[l]) + gain(state, l, level, x))
        tau[l] = (tau_perp[l] - (e - ah * xp.vecdot(ah, e)[:, None])) / lam
        x = apply_F(state, l, x) + rho[:, None] * alpha[l]
    return Form(alpha, tau)


def sweep_work(sizes) -> int:
    """Multiply-adds of one sample's backward sweep, eqs. (47), (50), (51): most of its direction.

    Per layer l (n = n_l, m = n_{l-1}, k = n_{l+1} + 1): a dense pivot's LU (n^3 / 3), then for
    l >= 2 its m + 1 solves with P_l F_l and F_l^T Y (n^2 (m + 1) + n^2 m + m^2 n); above a
    P_{l-1} of eq. (50), the eigendecomposition of P_l instead (about 5 n^3); a pivot of eq.
    (50) costs n k^2 and the product of eq. (51) below it m^2 (n + k) + m n k.
    """
    work = 0
    for l, n, m, k, below in _level_shapes(sizes):
        if k:
            work += n * k * k + (m * m * (n + k) + m * n * k if l > 1 else 0)
        elif below:
            work += 5 * n ** 3
        else:
            work += n ** 3 // 3 + (0 if l == 1 else n * n * (2 * m + 1) + m * m * n)
    return work


def _level_shapes(sizes):
    """(l, n_l, n_{l-1}, k, below) for l = 1..L, in the form of each layer's pivot.

    k = n_{l+1} + 1 for a pivot of eq. (50), else 0; below: whether P_{l-1} has that form.
    """
    low = pivots.low_rank_costs(sizes)
    for l in range(1, len(sizes)):
        yield l, sizes[l], sizes[l - 1], sizes[l + 1] + 1 if low[l] else 0, low[l - 1]


def sweep_entries(sizes) -> int:
    """Array entries one sample needs at once, eqs. (46)-(48), (50), (51).

    Its direction (P entries), what the forward sweep keeps (each dense pivot's LU factors
    and its Y_l, or P_l's eigenvectors and M_l; Ū, Z and the diagonals of a pivot of eq.
    (50)), the backward sweep's working P_l, Q_l and products, and the largest layer block
    written out at the end.
    """
    kept = 0
    for l, n, m, k, below in _level_shapes(sizes):
        kept += (2 * n * k + 2 * k * k + 3 * n if k
                 else n * n + (0 if l == 1 else n * n if below else n * m))
    work = 8 * max(sizes[1:]) ** 2 + max(n * (m + 1) for n, m in zip(sizes[1:], sizes[:-1],
                                                                      strict=True))
    return sum(n * (m + 1) for n, m in zip(sizes[1:], sizes[:-1], strict=True)) + kept + work
