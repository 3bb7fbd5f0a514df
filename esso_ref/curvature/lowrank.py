r"""Exact spectrum and Newton direction of H = A^T C A from r x r matrices (docs/math.md §6-§7).

Given the core C (n x n), the Gram matrix G = A A^T (n x n), the gradient's coordinates u
(g = A^T u) and a routine applying A^T, everything is computed in n-space plus one A^T pass:

- eq. (24): G = U diag(s) U^T, keep s_i > tau max(s) with tau = n eps (a singular G, e.g. dead
  ReLUs or delta_l = 0, loses only directions with A^T w = 0 up to round-off);
  R = diag(sqrt(s)) U^T, S = R C R^T = W diag(mu) W^T. The mu are the eigenvalues of H that can
  be non-zero; the remaining P - n' are exactly zero. Eigenvectors Q W, Q = A^T U diag(s^{-1/2}).
- eq. (26), push-through: d = -(H + lam I)^{-1} g = -A^T (C G + lam I)^{-1} u.
- eq. (27), spectral adjustment: d_f = -Q W diag(1 / (f(mu) + lam)) W^T R u.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import array_api_compat

from . import linalg
from .spectral import Spectrum, adjust, check_damping, check_spectral

__all__ = ["LowRank", "NotDescentWarning", "SingularCurvatureError"]


class SingularCurvatureError(ValueError):
    """H + damping I is singular to working precision (damping equals minus an eigenvalue)."""


class NotDescentWarning(RuntimeWarning):
    """The damped Newton direction is not a descent direction (H + damping I indefinite)."""


class LowRank:
    """H = A^T C A held by C, G = A A^T, u and the adjoint map A^T.

    Args:
        C: core, (n, n) symmetric.
        G: Gram matrix A A^T, (n, n) symmetric positive semi-definite.
        u: gradient coordinates, (n,), with g = A^T u.
        adjoint: maps w of shape (k, n) to A^T w of shape (k, P).
        num_params: P.
    """

    def __init__(self, C, G, u, adjoint: Callable, num_params: int):
        self.C, self.G, self.u = C, G, u
        self.adjoint = adjoint
        self.num_params = num_params
        self.xp = array_api_compat.array_namespace(C)
        self._root = None

    @property
    def n(self) -> int:
        """Rows of A."""
        return int(self.C.shape[0])

    @property
    def tau(self) -> float:
        """Relative truncation tolerance of the Gram spectrum: n * eps."""
        return self.n * float(self.xp.finfo(self.C.dtype).eps)

    def root(self):
        """(U_k, sqrt(s_k)): the kept eigenpairs of G, eq. (24)."""
        if self._root is None:
            s, U = linalg.eigh(self.G)
            top = float(s[-1]) if self.n else 0.0
            k = int(self.xp.count_nonzero(s > self.tau * top)) if top > 0 else 0
            self._root = (U[:, self.n - k:], self.xp.sqrt(s[self.n - k:]))
        return self._root

    def _eig_core(self, vectors: bool):
        """Eigen-decomposition of S = R C R^T; returns (mu, W or None), eq. (25)."""
        U, sq = self.root()
        R = sq[:, None] * self.xp.matrix_transpose(U)
        S = R @ self.C @ self.xp.matrix_transpose(R)
        S = 0.5 * (S + self.xp.matrix_transpose(S))
        if S.shape[0] == 0:
            return S[:, 0], (S if vectors else None)
        if vectors:
            return linalg.eigh(S)
        return linalg.eigvalsh(S), None

    def eigh(self, vectors: bool = False) -> Spectrum:
        """Exact eigenvalues of H (those that can be non-zero) and the count of exact zeros.

        Args:
            vectors: also return the orthonormal eigenvectors Q W, shape (P, n').
        """
        mu, Wv = self._eig_core(vectors)
        Q = None
        if vectors:
            U, sq = self.root()
            Q = self.xp.matrix_transpose(self.adjoint(self.xp.matrix_transpose(U / sq @ Wv)))
        return Spectrum(mu, self.num_params - int(mu.shape[0]), Q)

    def newton(self, damping: float, spectral: str | Callable = "none"):
        """Exact damped Newton direction d = -(f(H) + lam I)^{-1} g, eqs. (26)-(27)."""
        lam = check_damping(damping)
        spectral = check_spectral(spectral)
        if spectral == "none":
            return self._push_through(lam)
        mu, Wv = self._eig_core(vectors=True)
        U, sq = self.root()
        c = self.xp.matrix_transpose(Wv) @ (sq * (self.xp.matrix_transpose(U) @ self.u))
        c = c / (adjust(spectral, mu) + lam)
        return -self.adjoint(((U / sq) @ (Wv @ c))[None, :])[0, :]

    def _push_through(self, lam: float):
        """d = -A^T (C G + lam I)^{-1} u, eq. (26), with singularity and descent checks."""
        xp = self.xp
        eye = xp.eye(self.n, dtype=self.C.dtype, device=array_api_compat.device(self.C))
        try:
            x = linalg.solve(self.C @ self.G + lam * eye, self.u)
        except linalg.LinAlgError as err:
            raise SingularCurvatureError(
                f"H + damping I is singular for damping = {lam:g}: {err}; "
                "use a different damping or a spectral adjustment ('abs', 'clip')"
            ) from err
        self._check_solution(x, lam)
        return -self.adjoint(x[None, :])[0, :]

    def _check_solution(self, x, lam: float) -> None:
        """Raise when H + lam I is singular to working precision; warn when d is not descent.

        With |H| <= |C|_F trace(G) =: h, and |d| <= |g| / min|mu + lam|: if
        |g| <= 100 n eps h |d|, then min|mu + lam| <= 100 n eps h, singular to working precision.
        """
        xp = self.xp
        Gx, Gu = self.G @ x, self.G @ self.u
        g_norm = math.sqrt(max(float(xp.vecdot(self.u, Gu)), 0.0))
        d_norm = math.sqrt(max(float(xp.vecdot(x, Gx)), 0.0))
        h = float(xp.linalg.vector_norm(self.C)) * float(xp.linalg.trace(self.G)) + lam
        if d_norm > 0 and g_norm <= 100.0 * self.tau * h * d_norm:
            raise SingularCurvatureError(
                f"H + damping I is singular to working precision for damping = {lam:g} "
                f"(|d| = {d_norm:.3e} for |g| = {g_norm:.3e}); use a different damping or a "
                "spectral adjustment ('abs', 'clip')"
            )
        g_dot_d = -float(xp.vecdot(x, Gu))
        if g_dot_d >= 0 and g_norm > 0:
            mu_min = float(xp.min(self._eig_core(vectors=False)[0]))
            warnings.warn(
                f"the damped Newton direction is not a descent direction (g.d = {g_dot_d:.3e}): "
                f"H + damping I is indefinite, smallest eigenvalue of H = {mu_min:.6e} < "
                f"-damping = {-lam:g}; use spectral='abs' or 'clip', or a larger damping",
                NotDescentWarning,
                stacklevel=4,
            )
