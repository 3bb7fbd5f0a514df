r"""Layer blocks of the Hessian in closed Kronecker form (docs/math.md §10).

For one sample, the diagonal block of layer l in the [W_l | b_l] ordering is, eq. (30),

    H_ll = M_l (x) ã_{l-1} ã_{l-1}^T,
    M_L = Lam,  M_l = D_l W_{l+1}^T M_{l+1} W_{l+1} D_l + diag(phi''(z_l) * g_l)   (eq. (31))

(the Gauss-Newton block drops the diag term). Its eigenvalues are |ã_{l-1}|^2 eig(M_l) and 0
with multiplicity n_l n_{l-1}, eq. (32), and the block Newton direction is, eq. (33),
x = V diag(1 / (f(c mu) + lam)) V^T delta_l, dW_l = -x a_{l-1}^T, db_l = -x (c = |ã_{l-1}|^2).

A mini-batch block (1/B) sum_i M^i_l (x) ã^i ã^i^T is the factorisation A^T C A with
A = [I (x) ã^1^T; ...] and C = (1/B) blockdiag(M^i_l); in the basis I (x) Q_a of eq. (40)
(Q_a an orthonormal basis of the ã^i) it is E S E^T with S of size n_l min(B, ñ), and the
routes of eqs. (42)-(44) apply; for B = 1 they are exactly eqs. (32)-(33).
"""

from __future__ import annotations

from .._memory import check_entries
from . import linalg
from .exact import Coordinates
from .spectral import Spectrum
from .state import State

__all__ = ["backprop_M", "layer_block_dense", "layer_coordinates", "layer_spectra"]


def backprop_M(state: State, ggn: bool = False) -> list:
    """[None, M_1, ..., M_L]: each sample's pre-activation Hessian, (B, n_l, n_l), eq. (31).

    With ``ggn`` the diag(phi'' * gamma) term is dropped: the Gauss-Newton blocks, eq. (37).
    """
    xp, L = state.xp, state.L
    M = [None] * (L + 1)
    M[L] = state.Lam
    for l in range(L - 1, 0, -1):
        WD = state.W[l + 1] * state.fwd.dphi[l][:, None, :]
        M[l] = xp.matrix_transpose(WD) @ M[l + 1] @ WD
        if not ggn:
            M[l] = M[l] + state.h[l][:, :, None] * state.eye(state.net.sizes[l])
    return M


_LAYER_HINT = ("use fewer samples per call (a layer block of B samples has size n_l min(B, "
               "n_(l-1) + 1)), or Lanczos on er.as_linear_operator")


def layer_coordinates(state: State, l: int, M_l) -> Coordinates:
    """Layer l's block, eqs. (30)-(33), as E S E^T with the basis E = I (x) Q_a of eq. (40).

    Q_a (ñ x k) is an orthonormal basis holding every ã^i_{l-1} (reduced Householder QR),
    c^i = Q_a^T ã^i, and then S = (1/B) sum_i M^i_l (x) c^i c^i^T (n_l k x n_l k) and
    b = (1/B) sum_i delta^i_l (x) c^i, so the routes of eqs. (42)-(44) apply; for B = 1 this is
    eqs. (32)-(33).
    """
    xp, B, n, n_prev = state.xp, state.B, state.net.sizes[l], state.net.sizes[l - 1]
    a_t = state.a_tilde(l - 1)
    k = min(B, a_t.shape[1])
    check_entries(3 * (n * k) ** 2 + B * k * k, state.dtype, f"layer {l}'s block (size {n * k})",
                  _LAYER_HINT, xp)
    Q_a = linalg.qr(xp.matrix_transpose(a_t))[0]
    c = a_t @ Q_a
    k = c.shape[1]
    cc = xp.reshape(c[:, :, None] * c[:, None, :], (B, k * k))
    S = xp.matrix_transpose(xp.reshape(M_l, (B, n * n))) @ cc / B
    S = xp.reshape(xp.permute_dims(xp.reshape(S, (n, n, k, k)), (0, 2, 1, 3)), (n * k, n * k))
    b = xp.reshape(xp.matrix_transpose(state.bwd.delta[l]) @ c, (n * k,)) / B

    def expand(y):
        """Parameters [W_l, b_l] of coordinates y (G, m, n k), in theta order."""
        X = xp.reshape(y, (*y.shape[:2], n, k)) @ xp.matrix_transpose(Q_a)
        W = xp.reshape(X[..., :n_prev], (*y.shape[:2], n * n_prev))
        return xp.concat([W, X[..., n_prev]], axis=-1) if state.net.bias else W

    return Coordinates(S[None, ...], b[None, ...], expand, n * a_t.shape[1],
                       hint=_LAYER_HINT)


def layer_spectra(state: State, ggn: bool = False) -> list[Spectrum]:
    """Exact eigenvalues of every layer block, eq. (32); one `Spectrum` per layer."""
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
            co = layer_coordinates(state, l, M[l])
            out.append(Spectrum(co.eigvalsh()[0, :], co.num_zeros))
    return out


def layer_block_dense(state: State, l: int, ggn: bool = False):
    """Dense layer block (1/B) sum_i M^i_l (x) ã^i ã^i^T, eq. (30), in theta order (tests)."""
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
