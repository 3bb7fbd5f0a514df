r"""Exact spectrum and Newton direction of H = A^T C A from r x r matrices (docs/math.md §8-§9).

Given the core C (n x n), the Gram matrix G = A A^T (n x n), the gradient's coordinates u
(g = A^T u) and a routine applying A^T, everything is computed in n-space plus one A^T pass:

- eq. (24): G = U diag(s) U^T, keep s_i > tau max(s) with tau = n eps (a singular G, e.g. dead
  ReLUs or delta_l = 0, loses only directions with A^T w = 0 up to round-off);
  R = diag(sqrt(s)) U^T, S = R C R^T = W diag(mu) W^T. The mu are the eigenvalues of H that can
  be non-zero; the remaining P - n' are exactly zero. Eigenvectors Q W, Q = A^T U diag(s^{-1/2}).
- eq. (27), push-through: d = -(H + lam I)^{-1} g = -A^T (C G + lam I)^{-1} u.
- eq. (28), spectral adjustment: d_f = -Q W diag(1 / (f(mu) + lam)) W^T R u.
- eq. (26), QR basis: A^T = Q_1 R_1, H = Q_1 (R_1 C R_1^T) Q_1^T, d_f = -Q_1 W' diag(1 /
  (f(mu) + lam)) W'^T R_1 u, and d = -Q_1 (R_1 C R_1^T + lam I)^{-1} R_1 u for f = identity.
  Backward stable; used while the P x n array A^T is affordable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import array_api_compat

from .._checks import check_choice
from ..backend import xp_of
from . import linalg
from .spectral import (
    NotDescentWarning,
    SingularCurvatureError,
    Spectrum,
    adjust,
    check_damping,
    check_direction,
    check_spectral,
    f_at_zero,
    norms,
    user_stacklevel,
)

__all__ = ["ROUTES", "LowRank"]

ROUTES = ("auto", "basis", "gram", "qr")
"""``"basis"``: the layer basis of eqs. (40)-(44), O(q^3 + P q), no P x n array, as accurate
as a QR of A^T (the default, ``"auto"``). ``"gram"``: eqs. (24)-(25), O(n^3 + P n'), no P x n
array; accuracy degrades like eps cond(G) in weakly represented directions. ``"qr"``: eq. (26),
A^T = Q_1 R_1 materialised, O(P n^2), backward stable (a reference route)."""



class LowRank:
    """H = A^T C A held by C, G = A A^T, u and the adjoint map A^T.

    Args:
        C: core, (n, n) symmetric, or a function building it (then only built when asked).
        G: Gram matrix A A^T, (n, n) symmetric positive semi-definite, or a function
            building it (then only built when asked).
        u: gradient coordinates, (n,), with g = A^T u.
        adjoint: maps w of shape (k, n) to A^T w of shape (k, P).
        num_params: P.
        route: basis of range(A^T) for spectra and adjusted directions, see `ROUTES`.
        apply_C: M -> C M for M of shape (n, k), exploiting C's structure (default: C @ M).
    """

    def __init__(self, C, G, u, adjoint: Callable, num_params: int, route: str = "auto",
                 apply_C: Callable | None = None):
        self._C, self._G, self.u = C, G, u
        self._apply_C = apply_C
        self.adjoint = adjoint
        self._route = check_choice("route", route, ROUTES)
        self._qr = None
        self.num_params = num_params
        self.xp = xp_of(u)
        self._root = None

    def apply_C(self, M):
        """C M for M of shape (n, k): the structured product when one was given, else C @ M."""
        return self.C @ M if self._apply_C is None else self._apply_C(M)

    @property
    def G(self):
        """The Gram matrix A A^T (n x n), built on first use when given as a function."""
        if callable(self._G):
            self._G = self._G()
        return self._G

    @property
    def C(self):
        """The dense core C (n x n), built on first use when given as a function."""
        if callable(self._C):
            self._C = self._C()
        return self._C

    @property
    def n(self) -> int:
        """Rows of A."""
        return int(self.u.shape[0])

    @property
    def tau(self) -> float:
        """Relative truncation tolerance of the Gram spectrum: n * eps."""
        return self.n * float(self.xp.finfo(self.u.dtype).eps)

    def root(self):
        """(U_k, sqrt(s_k), rho): kept eigenpairs of the equilibrated Gram matrix, eq. (24).

        G' = N^{-1} G N^{-1} with N = diag(rho), rho_i = |row i of A| = sqrt(G_ii) (1 for zero
        rows), is the Gram matrix of the row-normalised factor N^{-1} A; the scaling is exact
        and keeps rows of very different norms (large weights, small delta_l) from drowning
        each other in round-off.
        """
        if self._root is None:
            xp = self.xp
            G_eq, rho = linalg.equilibrate(self.G)
            s, U = linalg.eigh(G_eq)
            top = float(s[-1]) if self.n else 0.0
            k = int(xp.count_nonzero(s > self.tau * top)) if top > 0 else 0
            self._root = (U[:, self.n - k:], xp.sqrt(s[self.n - k:]), rho)
        return self._root

    def _eig_core(self, vectors: bool):
        """Eigen-decomposition of S = R C R^T, R = diag(sqrt s) U^T N; (mu, W or None), eq. (25)."""
        U, sq, rho = self.root()
        R = sq[:, None] * self.xp.matrix_transpose(U) * rho[None, :]
        S = self._sandwich(R)
        if S.shape[0] == 0:
            return self.xp.reshape(S, (0,)), (S if vectors else None)  # no column to index
        if vectors:
            return linalg.eigh(S)
        return linalg.eigvalsh(S), None

    @property
    def route(self) -> str:
        """The basis for spectra and adjusted directions: ``"qr"`` or ``"gram"`` (`ROUTES`).

        ``"auto"`` is the Gram route here (subclasses with a layer basis take ``"basis"``).
        """
        return "gram" if self._route == "auto" else self._route

    @property
    def solve_route(self) -> str:
        """The route of the plain damped direction (spectral ``"none"``).

        ``"auto"`` is the push-through of eq. (27) here.
        """
        return self.route

    def qr_basis(self):
        """(Q_1, R_1) with A^T = Q_1 R_1 (reduced QR, Q_1 of shape (P, min(P, n))), eq. (26)."""
        if self._qr is None:
            xp = self.xp
            eye = xp.eye(self.n, dtype=self.G.dtype, device=array_api_compat.device(self.G))
            self._qr = linalg.qr(xp.matrix_transpose(self.adjoint(eye)))
        return self._qr

    def _qr_core(self, vectors: bool):
        """Eigen-decomposition of S' = R_1 C R_1^T; H = Q_1 S' Q_1^T exactly, eq. (26)."""
        R1 = self.qr_basis()[1]
        S = self._sandwich(R1)
        return linalg.eigh(S) if vectors else (linalg.eigvalsh(S), None)

    def _sandwich(self, R):
        """R C R^T, symmetrised; C applied by its structure (one dense matmul)."""
        xp = self.xp
        S = R @ self.apply_C(xp.matrix_transpose(R))
        return 0.5 * (S + xp.matrix_transpose(S))

    def eigh(self, vectors: bool = False) -> Spectrum:
        """Exact eigenvalues of H (those that can be non-zero) and the count of exact zeros.

        Args:
            vectors: also return orthonormal eigenvectors Q_1 W (P x n'); always computed on
                the QR basis (eq. (26)), which holds a P x n array.
        """
        if vectors:
            mu, Wv = self._qr_core(vectors=True)
            return Spectrum(mu, self.num_params - int(mu.shape[0]), self.qr_basis()[0] @ Wv)
        if self.route == "qr":
            mu = self._qr_core(vectors=False)[0]
        else:
            mu = self._cholesky_eigvals()
            mu = self._eig_core(vectors=False)[0] if mu is None else mu
        return Spectrum(mu, self.num_params - int(mu.shape[0]))

    def _cholesky_eigvals(self):
        """Eigenvalues by G' = L L^T, S = L^T D C D L, when G' is numerically non-singular.

        The same similarity as eq. (25) with the Cholesky factor in place of the eigenvectors
        (R = L^T D): a Cholesky factorisation costs a fraction of a symmetric eigensolver.
        Returns None (and the caller takes eq. (24)) when G' is singular to working precision.
        """
        xp = self.xp
        if self.n == 0 or self.n > self.num_params:  # rank(A) <= P < n: G is singular
            return None
        G_eq, rho = linalg.equilibrate(self.G)
        try:
            L = xp.linalg.cholesky(G_eq)
        except Exception as err:
            if type(err).__name__ != "LinAlgError":
                raise
            return None
        pivots = xp.linalg.diagonal(L)
        if not linalg.finite(L) or float(xp.min(pivots)) ** 2 <= 100.0 * self.tau * float(
                xp.max(pivots)) ** 2:
            return None
        return linalg.eigvalsh(self._sandwich(xp.matrix_transpose(L) * rho[None, :]))

    def newton(self, damping: float, spectral: str | Callable = "none"):
        """Exact damped Newton direction d = -(f(H) + lam I)^{-1} g, eqs. (27)-(28)."""
        lam = check_damping(damping)
        spectral = check_spectral(spectral)
        if spectral == "none":
            return self._qr_solve(lam) if self.solve_route == "qr" else self._push_through(lam)
        xp = self.xp
        if self.route == "qr":
            Q1, R1 = self.qr_basis()
            mu, Wv = self._qr_core(vectors=True)
            c = xp.matrix_transpose(Wv) @ (R1 @ self.u)
        else:
            mu, Wv = self._eig_core(vectors=True)
            U, sq, rho = self.root()
            c = xp.matrix_transpose(Wv) @ (sq * (xp.matrix_transpose(U) @ (rho * self.u)))
        f = adjust(spectral, mu)
        y = c / (f + lam)
        check_direction(norms(c[None, :])[0], norms(y[None, :])[0],
                        norms(f[None, :])[0], lam, int(mu.shape[0]),
                        self.num_params - int(mu.shape[0]),
                        float(xp.finfo(self.u.dtype).eps), f_at_zero(spectral, mu))
        if self.route == "qr":
            return -(Q1 @ (Wv @ y))
        return -self.adjoint((((U / sq) @ (Wv @ y)) / rho)[None, :])[0, :]

    def _push_through(self, lam: float):
        """Push-through d = -A^T (C G + lam I)^{-1} u, eq. (27), checked (singular, descent)."""
        xp = self.xp
        eye = xp.eye(self.n, dtype=self.G.dtype, device=array_api_compat.device(self.G))
        CG = self.apply_C(self.G)
        x = self._solve(CG + lam * eye, self.u, lam)
        Gu = self.G @ self.u
        h = norms(xp.reshape(CG, (1, -1)))[0] + lam  # |H|_2 = rho(C G) <= |C G|_F (scaled)
        x_norm, Gu_norm = norms(xp.stack([x, Gu]))
        cos = _unit_dot(x, Gu, x_norm, Gu_norm)
        self._check_solution(_G_norm(self.G, self.u), _G_norm(self.G, x), -cos, h, lam,
                             g_dot_d=-cos * x_norm * Gu_norm)
        return -self.adjoint(x[None, :])[0, :]

    def _qr_solve(self, lam: float):
        """Symmetric solve d = -Q_1 (R_1 C R_1^T + lam I)^{-1} R_1 u, eqs. (26)-(27)."""
        xp = self.xp
        Q1, R1 = self.qr_basis()
        S = self._sandwich(R1)
        c = R1 @ self.u
        eye = xp.eye(S.shape[0], dtype=S.dtype, device=array_api_compat.device(S))
        y = self._solve(S + lam * eye, c, lam)
        h = norms(xp.reshape(S, (1, -1)))[0] + lam
        c_norm, y_norm = norms(xp.stack([c, y]))
        self._check_solution(c_norm, y_norm, -_unit_dot(c, y, c_norm, y_norm), h, lam)
        return -(Q1 @ y)

    @staticmethod
    def _solve(M, b, lam: float):
        try:
            return linalg.solve(M, b)
        except linalg.LinAlgError as err:
            raise SingularCurvatureError(
                f"H + damping I is singular to working precision for damping = {lam:g}: {err}; "
                "use a different damping or a spectral adjustment ('abs', 'clip')"
            ) from err

    def _check_solution(self, g_norm: float, d_norm: float, descent: float, h: float,
                        lam: float, g_dot_d: float | None = None) -> None:
        """The singular rule of `check_direction`; warn when d is not descent.

        ``descent`` has the sign of g . d (computed on unit vectors, so that tiny gradients do
        not underflow to 0); ``g_dot_d`` is g . d for the message (default: descent |g| |d|,
        right when descent is the cosine of g and d).
        """
        eps = float(self.xp.finfo(self.u.dtype).eps)
        check_direction(g_norm, d_norm, h - lam, lam, self.n, self.num_params - self.n, eps)
        g_dot_d = descent * g_norm * d_norm if g_dot_d is None else g_dot_d
        if descent >= 0 and g_norm > 0:
            mu_min = float(self.xp.min(self.eigh().values))
            warnings.warn(
                f"the damped Newton direction is not a descent direction (g.d = {g_dot_d:.3e}): "
                f"H + damping I is indefinite, smallest eigenvalue of H = {mu_min:.6e} < "
                f"-damping = {-lam:g}; use spectral='abs' or 'clip', or a larger damping",
                NotDescentWarning,
                stacklevel=user_stacklevel(),
            )


def _G_norm(G, v) -> float:
    """|A^T v| = sqrt(v . G v), with v scaled by its largest entry first (no underflow)."""
    xp = xp_of(v)
    top = float(xp.max(xp.abs(v)))
    if top == 0.0 or not math.isfinite(top):
        return top
    w = v / top
    return top * math.sqrt(max(float(xp.vecdot(w, G @ w)), 0.0))


def _unit_dot(a, b, a_norm: float, b_norm: float) -> float:
    """The cosine (a / |a|) . (b / |b|) as a host float: the sign of a . b without underflow.

    0 for a zero vector, NaN for a non-finite norm.
    """
    if not (math.isfinite(a_norm) and math.isfinite(b_norm)):
        return math.nan
    if a_norm == 0 or b_norm == 0:
        return 0.0
    return float(xp_of(a).vecdot(a / a_norm, b / b_norm))
