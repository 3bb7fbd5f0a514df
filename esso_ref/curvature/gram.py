r"""The Gram matrix G = A A^T from closed forms, without any P-sized object (docs/math.md §7).

With the transfer matrices T_{l<-m} = dz_l/dz_m = W_l D_{l-1} ... W_{m+1} D_m (T_{m<-m} = I),
eq. (20), and the rule <u a^T, u' a'^T> = (u . u')(a . a'), for samples i, j,
eqs. (21)-(23) and (35):

    G[J^i_l, J^j_k] = sum_{m <= min(l, k)} (ã^i_{m-1} . ã^j_{m-1}) T^i_{l<-m} (T^j_{k<-m})^T
    G[K^i_l, J^j_k] = a^j_{l-1} (T^j_{k<-l} delta^i_l)^T   for k >= l (0 for k < l)
    G[K^i_l, K^j_k] = (delta^i_l . delta^j_l) I             for k = l (0 otherwise)
"""

from __future__ import annotations

from .._memory import check_entries
from .state import State

__all__ = ["gram", "transfer"]


def transfer(state: State, m: int, keep) -> tuple:
    """T_{l<-m} for the layers l >= m in ``keep``, stacked by rows: (B, R, n_m), eq. (20).

    Returns:
        (T, first): the stacked matrices and the first kept layer.
    """
    xp, fwd = state.xp, state.fwd
    n_m = state.net.sizes[m]
    blocks = [xp.broadcast_to(state.eye(n_m), (state.B, n_m, n_m))] if m in keep else []
    T = None  # T_{m<-m} = I, never multiplied
    for l in range(m + 1, state.L + 1):
        T = (state.W[l] * fwd.dphi[l - 1][:, None, :] if T is None
             else state.W[l] @ (fwd.dphi[l - 1][:, :, None] * T))
        if l in keep:
            blocks.append(T)
    first = min(l for l in keep if l >= m)
    return xp.concat(blocks, axis=1), first


def _span(rows, first: int) -> slice:
    """Rows of J_first, ..., J_L (contiguous)."""
    return slice(rows.J[first].start, rows.J[max(rows.J)].stop)


def gram(state: State, rows):
    """G = A_B A_B^T for the whole batch, (B r, B r), eqs. (21)-(23), (35)."""
    xp, B, r = state.xp, state.B, rows.r
    check_entries(3 * (B * r) ** 2, state.dtype, f"the Gram matrix ({B * r} x {B * r})",
                  "use the default route (the layer basis) or fewer samples", xp)
    G = state.zeros((B, r, B, r))
    for m in range(1, state.L + 1):
        T, first = transfer(state, m, rows.J)
        R, js = T.shape[1], _span(rows, first)
        flat = xp.reshape(T, (B * R, T.shape[2]))
        TT = xp.reshape(flat @ xp.matrix_transpose(flat), (B, R, B, R))
        a = state.a_tilde(m - 1)
        S = a @ xp.matrix_transpose(a)
        G[:, js, :, js] = G[:, js, :, js] + TT * S[:, None, :, None]
    for l in rows.K:
        T, _ = transfer(state, l, rows.J)
        R, js, ks = T.shape[1], _span(rows, l), rows.K[l]
        delta, a = state.bwd.delta[l], state.fwd.a[l - 1]
        Y = xp.reshape(xp.reshape(T, (B * R, T.shape[2])) @ xp.matrix_transpose(delta),
                       (B, R, B))
        KJ = xp.permute_dims(Y, (2, 0, 1))[:, None, :, :] * xp.matrix_transpose(a)[None, :, :, None]
        G[:, ks, :, js] = KJ
        G[:, js, :, ks] = xp.permute_dims(KJ, (2, 3, 0, 1))
        dd = delta @ xp.matrix_transpose(delta)
        G[:, ks, :, ks] = dd[:, None, :, None] * state.eye(a.shape[1])[None, :, None, :]
    return xp.reshape(G, (B * r, B * r))
