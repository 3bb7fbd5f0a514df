r"""The pivots Pi_l = lam I + rho^2 P_l of the backward sweep (docs/math.md §16, eqs. (46), (50)).

Below a narrow layer the cost P_l of eq. (47) is a diagonal plus a matrix of small rank,

    P_l = diag(d) + U K U^T,   U = [F_{l+1}^T | D_l â_W],   k = n_{l+1} + 1 columns,   eq. (50)

so Pi_l = Delta + rho^2 U K U^T with Delta = lam + rho^2 d, and by the Woodbury identity

    Pi_l^{-1} = Delta^{-1} - rho^2 Ū Z Ū^T,   M_l = Pi_l^{-1} P_l = diag(d / Delta) + lam Ū Z Ū^T,
    Ū = Delta^{-1} U,   Z = (I + rho^2 K U^T Ū)^{-1} K,

in O(n_l k^2) instead of an O(n_l^3) factorisation. The small dense pivot above such a layer
gives its M_l from the eigenvalues of P_l (`SpectralPivot`); every other pivot is dense and
factorised (`DensePivot`, `linalg.LU`). Either way the sweep is certified afterwards (eq. (49)):
a pivot that loses digits costs a refinement step or a fallback, never a wrong direction.
"""

from __future__ import annotations

from ..backend import xp_of
from . import linalg
from .pairs import _matvec

__all__ = ["DensePivot", "LowRankPivot", "SpectralPivot", "low_rank_costs"]


def low_rank_costs(sizes) -> list[bool]:
    """[False, c_1, ..., c_L]: whether the sweep keeps P_l in the form of eq. (50).

    P_L = Lambda is dense. Below a dense P_{l+1}, P_l is kept as a diagonal plus rank
    n_{l+1} + 1 when that rank is at most half of n_l; below a P_{l+1} of eq. (50), P_l is
    dense (eq. (51)).
    """
    L = len(sizes) - 1
    low = [False] * (L + 1)
    for l in range(L - 1, 0, -1):
        low[l] = not low[l + 1] and 2 * (sizes[l + 1] + 1) <= sizes[l]
    return low


def _mT(M):
    return xp_of(M).matrix_transpose(M)


class DensePivot:
    """Pi_l = lam I + rho^2 P_l for a dense P_l (B, n, n), factorised once, eq. (46)."""

    def __init__(self, P, rho, lam: float, eye):
        Pi = (rho * rho)[:, None, None] * P
        Pi += lam * eye
        self.lu = linalg.LU(Pi, overwrite=True)

    def solve(self, h):
        """Pi_l^{-1} h for h of shape (B, n) or (B, n, j)."""
        return self.lu.solve(h)


class SpectralPivot:
    """Pi_l = lam I + rho^2 P_l for a small dense symmetric P_l = V diag(p) V^T, eq. (50).

    Pi_l^{-1} = V diag(1 / (lam + rho^2 p)) V^T and M_l = Pi_l^{-1} P_l =
    V diag(p / (lam + rho^2 p)) V^T: each eigenvalue is mapped on its own, so M_l is symmetric
    (to rounding) and accurate to its own size even where Pi_l is ill-conditioned (an LU solve
    for M_l loses cond(Pi_l) eps of its largest entry; measured: 228 rejected certificates
    against 134, and 125 with dense pivots only, on 1,440 samples of ReLU and GELU networks
    without biases, weights x 10 and x 30). A sample whose P_l is not finite gets NaN.

    Attributes:
        M: M_l (B, n, n).

    Raises:
        LinAlgError: the eigendecomposition failed.
    """

    def __init__(self, P, rho, lam: float):
        xp = xp_of(P)
        finite = xp.all(xp.isfinite(P), axis=(1, 2))
        p, self.V = linalg.eigh(xp.where(finite[:, None, None], P, xp.zeros_like(P)))
        p = xp.where(finite[:, None], p, xp.full_like(p, float("nan")))
        denominator = lam + (rho * rho)[:, None] * p
        self.inverse, self.mu = 1 / denominator, p / denominator
        self.M = (self.V * self.mu[:, None, :]) @ xp.matrix_transpose(self.V)

    def _spectral(self, f, h):
        """V diag(f) V^T h for h of shape (B, n)."""
        return _matvec(self.V, f * _matvec(_mT(self.V), h))

    def solve(self, h):
        """Pi_l^{-1} h, (B, n)."""
        return self._spectral(self.inverse, h)

    def apply_M(self, y):
        """M_l y, (B, n)."""
        return self._spectral(self.mu, y)


class LowRankPivot:
    """Pi_l = Delta + rho^2 U K U^T of eq. (50), solved by the Woodbury identity.

    Args:
        d: (B, n), the diagonal of P_l.
        U: (B, n, k).
        K: (B, k, k), symmetric.
        rho: (B,), rho_{l-1}.
        lam: the damping.
        eye: the k x k identity.

    Attributes:
        mu: d / Delta, the diagonal of M_l.
        Ubar: Delta^{-1} U.
        Z: (I + rho^2 K U^T Ū)^{-1} K.

    Raises:
        LinAlgError: I + rho^2 K U^T Ū is singular (so is Pi_l).
    """

    def __init__(self, d, U, K, rho, lam: float, eye):
        xp = xp_of(d)
        rho2 = rho * rho
        self.Delta = lam + rho2[:, None] * d
        self.Ubar = U / self.Delta[:, :, None]
        N = eye + rho2[:, None, None] * (K @ (xp.matrix_transpose(U) @ self.Ubar))
        self.Z = linalg.solve(N, K, check_finite=False)  # non-finite: eta is NaN, rejected
        self.mu, self.rho2, self.lam = d / self.Delta, rho2, lam

    def _low(self, y):
        """Ū Z Ū^T y for y of shape (B, n)."""
        return _matvec(self.Ubar, _matvec(self.Z, _matvec(_mT(self.Ubar), y)))

    def solve(self, h):
        """Pi_l^{-1} h = h / Delta - rho^2 Ū Z Ū^T h, (B, n)."""
        return h / self.Delta - self.rho2[:, None] * self._low(h)

    def apply_M(self, y):
        """M_l y = (d / Delta) y + lam Ū Z Ū^T y, (B, n)."""
        return self.mu * y + self.lam * self._low(y)
