r"""Spectra and damped Newton directions in the layer basis E (docs/math.md §9, eqs. (40)-(42)).

With A^T = E Y (eqs. (38)-(39)) and E^T E = I,

    H = A^T C A = E S E^T,   S = Y C Y^T  (q x q),                                  eq. (40)

so the eigenvalues of H are those of S plus P - q exact zeros, and with b = Y u (g = E b),

    d = -E (S + lam I)^{-1} b,        d_f = -E V diag(1 / (f(mu) + lam)) V^T b      eqs. (41)-(42)

where S = V diag(mu) V^T. E is orthonormal by construction and Y is computed entry by entry
from closed forms, so nothing is squared: the routes are as accurate as a QR factorisation of
the materialised A^T, at O(q^3 + P q) cost. ``G`` groups (one batch, or every sample on its
own) are handled in one stacked call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import linalg
from .basis import Basis, build_basis
from .core import Rows, apply_core
from .spectral import (
    NotDescentWarning,
    SingularCurvatureError,
    adjust,
    check_direction,
    f_at_zero,
    user_stacklevel,
)
from .state import State

__all__ = ["Coordinates", "coordinates"]


@dataclass
class Coordinates:
    """H_g = E_g S_g E_g^T and g_g = E_g b_g for G groups, eq. (40).

    Attributes:
        S: (G, q, q) symmetric.
        b: (G, q), the gradient's coordinates.
        basis: the :class:`Basis` E (``expand`` maps coordinates to parameters).
        reduce: (G, q_E, q) orthonormal columns when Y was compressed by a QR (q_E > s r),
            else None; E's coordinates are then ``reduce @ y``.
        num_params: P.
    """

    S: Any
    b: Any
    basis: Basis
    reduce: Any
    num_params: int

    @property
    def size(self) -> int:
        """q: the size of S."""
        return int(self.S.shape[-1])

    @property
    def num_zeros(self) -> int:
        """P - q: eigenvalues of H that are exactly zero and not represented in S."""
        return self.num_params - self.size

    def expand(self, y):
        """Parameters E y for coordinates y of shape (G, k, q): (G, k, P)."""
        if self.reduce is not None:
            xp = self.basis.state.xp
            y = y @ xp.matrix_transpose(self.reduce)
        return self.basis.expand(y)

    def eigvalsh(self):
        """Eigenvalues of every S_g, ascending: (G, q)."""
        return linalg.eigvalsh(self.S)

    def eigh(self):
        """(mu, V) of every S_g."""
        return linalg.eigh(self.S)

    def frobenius(self):
        """|H_g|_F = |S_g|_F for every group, as host floats."""
        xp = self.basis.state.xp
        return [float(v) for v in xp.linalg.matrix_norm(self.S)]

    def newton(self, lam: float, spectral: str | Callable = "none"):
        """Every group's direction -(f(H_g) + lam I)^{-1} g_g, eqs. (41)-(42): (G, P)."""
        xp = self.basis.state.xp
        if spectral == "none":
            eye = xp.eye(self.size, dtype=self.S.dtype, device=_device(self.S))
            y = _solve(self.S + lam * eye, self.b, lam)
            scale = self.frobenius()
        else:
            mu, V = self.eigh()
            f = xp.reshape(adjust(spectral, xp.reshape(mu, (-1,))), mu.shape)
            c = (xp.matrix_transpose(V) @ self.b[..., None])[..., 0] / (f + lam)
            y = (V @ c[..., None])[..., 0]
            scale = [float(v) for v in xp.linalg.vector_norm(f, axis=-1)]
        self._check(y, lam, spectral, scale)
        return -self.expand(y[:, None, :])[:, 0, :]

    def _check(self, y, lam: float, spectral, scale: list) -> None:
        """Apply the singular-to-working-precision rule and the descent test to every group."""
        xp = self.basis.state.xp
        g_norm = xp.linalg.vector_norm(self.b, axis=-1)
        d_norm = xp.linalg.vector_norm(y, axis=-1)
        eps = float(xp.finfo(self.S.dtype).eps)
        f0 = f_at_zero(spectral, self.S)
        for k in range(self.S.shape[0]):
            check_direction(float(g_norm[k]), float(d_norm[k]), scale[k], lam, self.size,
                            self.num_zeros, eps, f0, adjusted=spectral != "none")
        if spectral != "none":
            return
        g_dot_d = -xp.sum(y * self.b, axis=-1)
        bad = int(xp.count_nonzero((g_dot_d >= 0) & (g_norm > 0)))
        if bad:
            mu_min = float(xp.min(self.eigvalsh()))
            warnings.warn(
                f"{bad} of {self.S.shape[0]} damped Newton directions are not descent directions:"
                f" H + damping I is indefinite, smallest eigenvalue of H = {mu_min:.6e} < "
                f"-damping = {-lam:g}; use spectral='abs' or 'clip', or a larger damping",
                NotDescentWarning, stacklevel=user_stacklevel())


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


def _solve(M, b, lam: float):
    try:
        return linalg.solve(M, b[..., None])[..., 0]
    except linalg.LinAlgError as err:
        raise SingularCurvatureError(
            f"H + damping I is singular for damping = {lam:g}: {err}; use a larger damping "
            "or a spectral adjustment ('abs', 'clip')") from err


def coordinates(state: State, rows: Rows, s: int) -> Coordinates:
    """S = Y C Y^T / s and b = Y u / s for groups of s samples, eqs. (38)-(40).

    s = B gives the batch-mean Hessian, s = 1 every sample's own. Y is compressed by a QR
    when the basis has more columns than A has rows (the Gauss-Newton matrix).
    """
    xp, B, r = state.xp, state.B, rows.r
    basis = build_basis(state, rows, s)
    Yt, reduce = basis.Yt, None
    if Yt.shape[-1] > Yt.shape[-2]:
        reduce, R = linalg.qr(xp.matrix_transpose(Yt))
        Yt = xp.matrix_transpose(R)
    q = Yt.shape[-1]
    CY = xp.reshape(apply_core(state, rows, xp.reshape(Yt, (B, r, q))), Yt.shape)
    S = xp.matrix_transpose(Yt) @ CY / s
    S = 0.5 * (S + xp.matrix_transpose(S))
    u = state.zeros((B, r))
    u[:, rows.J[state.L]] = state.bwd.delta[state.L]
    b = (xp.matrix_transpose(Yt) @ xp.reshape(u, (B // s, s * r, 1)))[..., 0] / s
    return Coordinates(S, b, basis, reduce, state.net.num_params)
