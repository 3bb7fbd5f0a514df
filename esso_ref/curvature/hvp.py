r"""Hessian-vector products by Pearlmutter's R-operator, derived by hand (docs/math.md §4).

Forward tangents, eq. (9):
    adot_0 = 0,  zdot_l = a_{l-1} V_l^T + c_l + adot_{l-1} W_l^T,  adot_l = phi'(z_l) * zdot_l.
Backward, eq. (10):
    ddelta_L = Lam zdot_L,
    ddelta_l = phi''(z_l) * zdot_l * g_l + phi'(z_l) * (delta_{l+1} V_{l+1} + ddelta_{l+1} W_{l+1}).
Result, eq. (11):
    (Hv)_{W_l} = (1/B) sum_i (ddelta_l a_{l-1}^T + delta_l adot_{l-1}^T),
    (Hv)_{b_l} = (1/B) sum_i ddelta_l.

Directions may carry a leading batch axis: v of shape (k, P) gives k products at once.
"""

from __future__ import annotations

from .._checks import check_vector
from ..mlp import flatten
from .state import State, prepare

__all__ = ["hvp", "hvp_state", "tangents"]


def tangents(state: State, v) -> tuple[list, list, list]:
    """Forward tangents of eq. (9) for directions v of shape (k, P).

    Returns:
        (zdot, adot, V): zdot[l] (k, B, n_l) for l = 1..L, adot[l] (k, B, n_l) for l < L
        (adot[0] = None stands for 0), and V = [None, V_1, ..., V_L] of shape (k, n_l, n_{l-1}).
    """
    xp, fwd = state.xp, state.fwd
    V, c = state.net._Wb(v)
    zdot, adot = [None], [None]
    for l in range(1, state.L + 1):
        zdot_l = fwd.a[l - 1] @ xp.matrix_transpose(V[l])
        if c[l] is not None:
            zdot_l = zdot_l + c[l][:, None, :]
        if adot[l - 1] is not None:
            zdot_l = zdot_l + adot[l - 1] @ xp.matrix_transpose(state.W[l])
        zdot.append(zdot_l)
        if l < state.L:
            adot.append(fwd.dphi[l] * zdot_l)
    return zdot, adot, V


def hvp_state(state: State, v):
    """H v for directions v of shape (k, P) (no validation); returns (k, P), eqs. (9)-(11)."""
    xp, fwd, bwd, W = state.xp, state.fwd, state.bwd, state.W
    L = state.L
    zdot, adot, V = tangents(state, v)
    ddelta = [None] * (L + 1)
    ddelta[L] = state.net.loss_fn.hess_vec(fwd.z[L], None, zdot[L])
    for l in range(L - 1, 0, -1):
        ddelta[l] = state.h[l] * zdot[l] + fwd.dphi[l] * (
            bwd.delta[l + 1] @ V[l + 1] + ddelta[l + 1] @ W[l + 1]
        )
    out = []
    for l in range(1, L + 1):
        HW = xp.matrix_transpose(ddelta[l]) @ fwd.a[l - 1]
        if adot[l - 1] is not None:
            HW = HW + xp.matrix_transpose(bwd.delta[l]) @ adot[l - 1]
        Hb = xp.sum(ddelta[l], axis=-2) if state.net.bias else None
        out.append((HW / state.B, None if Hb is None else Hb / state.B))
    return flatten(out)


def hvp(net, theta, X, y, v):
    """Hessian-vector product of the batch-mean loss, eqs. (9)-(11).

    Costs about two gradient evaluations; no P x P object is formed.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        v: direction, shape (P,).

    Returns:
        H v, shape (P,).

    Raises:
        ValueError, TypeError: for inputs of the wrong shape, dtype, namespace or values.
    """
    state = prepare(net, theta, X, y)
    check_vector("v", v, net.num_params, theta)
    return hvp_state(state, v[None, :])[0, :]

