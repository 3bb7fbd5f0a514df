r"""Layer blocks of the Hessian in closed Kronecker form (docs/math.md §10).

For one sample, the diagonal block of layer l in the [W_l | b_l] ordering is, eq. (30),

    H_ll = M_l (x) ã_{l-1} ã_{l-1}^T,
    M_L = Lam,  M_l = D_l W_{l+1}^T M_{l+1} W_{l+1} D_l + diag(phi''(z_l) * g_l)   (eq. (31))

(the Gauss-Newton block drops the diag term). Its eigenvalues are |ã_{l-1}|^2 eig(M_l) and 0
with multiplicity n_l n_{l-1}, eq. (32), and the block Newton direction is, eq. (33),
x = V diag(1 / (f(c mu) + lam)) V^T delta_l, dW_l = -x a_{l-1}^T, db_l = -x (c = |ã_{l-1}|^2).

A mini-batch block (1/B) sum_i M^i_l (x) ã^i ã^i^T is the factorisation A^T C A with
A = [I (x) ã^1^T; ...], C = (1/B) blockdiag(M^i_l) and G = (ã^i . ã^j) I: the B n_l x B n_l
route of eqs. (24)-(28), which for B = 1 is exactly eqs. (32)-(33).
"""

from __future__ import annotations

from . import linalg
from .lowrank import LowRank
from .spectral import Spectrum
from .state import State

__all__ = ["backprop_M", "layer_block_dense", "layer_lowrank", "layer_spectra"]


def backprop_M(state: State, ggn: bool = False) -> list:
    """[None, M_1, ..., M_L]: each sample's pre-activation Hessian, (B, n_l, n_l), eq. (31)."""
    xp, L = state.xp, state.L
    M = [None] * (L + 1)
    M[L] = state.Lam
    for l in range(L - 1, 0, -1):
        WD = state.W[l + 1] * state.fwd.dphi[l][:, None, :]
        M[l] = xp.matrix_transpose(WD) @ M[l + 1] @ WD
        if not ggn:
            M[l] = M[l] + state.h[l][:, :, None] * state.eye(state.net.sizes[l])
    return M


def layer_lowrank(state: State, l: int, M_l) -> LowRank:
    """Layer l's block as A^T C A with C = (1/B) blockdiag(M^i_l), G = (ã^i . ã^j) I."""
    xp, B, n = state.xp, state.B, state.net.sizes[l]
    a_t = state.a_tilde(l - 1)
    S = a_t @ xp.matrix_transpose(a_t)
    G = xp.reshape(S[:, None, :, None] * state.eye(n)[None, :, None, :], (B * n, B * n))
    C = xp.reshape(M_l[:, :, None, :] * state.eye(B)[:, None, :, None], (B * n, B * n)) / B
    u = xp.reshape(state.bwd.delta[l], (B * n,)) / B

    def adjoint(w):
        """W_l-part sum_i w_i a^i^T and b_l-part sum_i w_i, in theta order."""
        w = xp.reshape(w, (w.shape[0], B, n))
        dW = xp.reshape(xp.matrix_transpose(w) @ state.fwd.a[l - 1], (w.shape[0], -1))
        parts = [dW, xp.sum(w, axis=1)] if state.net.bias else [dW]
        return xp.concat(parts, axis=-1)

    size = n * a_t.shape[1]
    return LowRank(C, G, u, adjoint, size, batch=B)


def layer_spectra(state: State, ggn: bool = False) -> list[Spectrum]:
    """Exact eigenvalues of every layer block, eq. (32); one :class:`Spectrum` per layer."""
    xp = state.xp
    M = backprop_M(state, ggn)
    out = []
    for l in range(1, state.L + 1):
        if state.B == 1:
            a_t = state.a_tilde(l - 1)
            c = xp.sum(a_t * a_t)
            mu = c * linalg.eigvalsh(M[l][0, ...])
            out.append(Spectrum(mu, state.net.sizes[l] * (a_t.shape[1] - 1)))
        else:
            out.append(layer_lowrank(state, l, M[l]).eigh())
    return out


def layer_block_dense(state: State, l: int, ggn: bool = False):
    """Dense layer block (1/B) sum_i M^i_l (x) ã^i ã^i^T, permuted to theta order (tests)."""
    xp, B = state.xp, state.B
    M = backprop_M(state, ggn)[l]
    a_t = state.a_tilde(l - 1)
    n, m = M.shape[1], a_t.shape[1]
    K = xp.sum(M[:, :, None, :, None] * (a_t[:, None, :, None, None] * a_t[:, None, None, None, :]),
               axis=0) / B
    K = xp.reshape(K, (n * m, n * m))
    if not state.net.bias:
        return K
    # [W_l | b_l] row-major index p*m + a  ->  theta index: W_l[p, a] at p*(m-1) + a, b_l[p] after
    order = [p * m + a for p in range(n) for a in range(m - 1)] + [p * m + m - 1 for p in range(n)]
    idx = xp.asarray(order, device=state.device)
    return xp.take(xp.take(K, idx, axis=0), idx, axis=1)
