r"""Per-sample directions as pairs of vectors, one pair a layer (docs/math.md §16, eq. (45)).

Every per-layer matrix met by the layer-by-layer elimination has the form

    X_l = alpha_l â^T + delta_l tau_l^T,        â = ã_{l-1} / |ã_{l-1}|,             eq. (45)

so a direction is stored as the pairs (alpha_l, tau_l): 2 vectors a layer instead of a P-sized
block. This module holds the pairs, the exact Hessian-vector product and the norms on them, and
writes them out as (B, P) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import array_api_compat

from ..backend import xp_of
from ..mlp import flatten

__all__ = ["Anchors", "Form", "anchors", "form_norms", "form_sum", "gradient_form", "hvp_form",
           "materialise", "row_norms", "unit_rows"]

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


def form_sum(state, anc: Anchors, v: Form, keep=None):
    """The sum over the samples of the directions' P-vectors, (P,), eq. (45), without them.

    Per layer, alpha^T â + delta^T tau (n_l x ñ_{l-1}), W_l row-major then b_l as `materialise`
    writes them: O(sum_l B n_l ñ_{l-1}) and no read of the (B, P) array. ``keep`` (B,) bool:
    only those samples (the others contribute 0, whatever their pairs hold).
    """
    xp, net = state.xp, state.net
    params = []
    for l in range(1, state.L + 1):
        alpha, tau = v.alpha[l], v.tau[l]
        if keep is not None:
            alpha = xp.where(keep[:, None], alpha, xp.zeros_like(alpha))
            tau = xp.where(keep[:, None], tau, xp.zeros_like(tau))
        block = (xp.matrix_transpose(alpha) @ anc.ahat[l - 1]
                 + xp.matrix_transpose(state.bwd.delta[l]) @ tau)
        n_in = net.sizes[l - 1]
        params.append((block[:, :n_in], block[:, n_in] if net.bias else None))
    return flatten(params)


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


def _matvec(M, v):
    """Stacked matrix-vector products M_i v_i: (B, n, m) and (B, m) to (B, n)."""
    return (M @ v[..., None])[..., 0]
