r"""The core C of H = A^T C A and the row layout of A (docs/math.md §6, eq. (16)).

Per sample, A stacks J_l (l = 1..L) and K_l (l = 2..L): r = n_L + 2 (n_1 + ... + n_{L-1})
rows, eq. (15); the Gauss-Newton matrix keeps J_L only, eq. (37). C is zero except

    C[J_L, J_L] = Lam,  C[J_l, J_l] = diag(phi''(z_l) * g_l) (l < L),
    C[K_l, J_{l-1}] = C[J_{l-1}, K_l] = diag(phi'(z_{l-1})) (l = 2..L).
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import State

__all__ = ["Rows", "apply_core", "core"]


@dataclass(frozen=True)
class Rows:
    """Row blocks of one sample's A: J[l] for l = 1..L, K[l] for l = 2..L (GGN: J[L] only)."""

    J: dict
    K: dict
    r: int

    @classmethod
    def of(cls, sizes, ggn: bool = False) -> Rows:
        """Row layout [J_1, ..., J_L, K_2, ..., K_L] for widths (n_0, ..., n_L)."""
        L = len(sizes) - 1
        if ggn:
            return cls({L: slice(0, sizes[L])}, {}, sizes[L])
        J, K, start = {}, {}, 0
        for l in range(1, L + 1):
            J[l] = slice(start, start + sizes[l])
            start += sizes[l]
        for l in range(2, L + 1):
            K[l] = slice(start, start + sizes[l - 1])
            start += sizes[l - 1]
        return cls(J, K, start)


def core(state: State, rows: Rows):
    """Each sample's C_i (B, r, r), eq. (16), without the 1/B of the batch mean."""
    B = state.B
    C = state.zeros((B, rows.r, rows.r))
    L = state.L
    C[:, rows.J[L], rows.J[L]] = state.Lam
    for l in rows.K:
        C[:, rows.J[l - 1], rows.J[l - 1]] = state.h[l - 1][:, :, None] * state.eye(
            state.net.sizes[l - 1])
        D = state.fwd.dphi[l - 1][:, :, None] * state.eye(state.net.sizes[l - 1])
        C[:, rows.K[l], rows.J[l - 1]] = D
        C[:, rows.J[l - 1], rows.K[l]] = D
    return C


def apply_core(state: State, rows: Rows, M):
    """C_i M_i for every sample, M of shape (B, r, k), by the blocks of eq. (16): O(B r k).

    Row blocks: J_L -> Lam M[J_L]; J_l -> h_l * M[J_l] + phi'(z_l) * M[K_{l+1}];
    K_l -> phi'(z_{l-1}) * M[J_{l-1}]. No dense C is formed.
    """
    xp, L = state.xp, state.L
    parts = []
    for l in rows.J:
        if l == L:
            parts.append(state.Lam @ M[:, rows.J[L], :])
            continue
        part = state.h[l][:, :, None] * M[:, rows.J[l], :]
        parts.append(part + state.fwd.dphi[l][:, :, None] * M[:, rows.K[l + 1], :])
    for l in rows.K:
        parts.append(state.fwd.dphi[l - 1][:, :, None] * M[:, rows.J[l - 1], :])
    return xp.concat(parts, axis=1)
