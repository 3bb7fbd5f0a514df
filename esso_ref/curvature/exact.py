r"""Spectra and damped Newton directions in the layer basis E (docs/math.md §15, eqs. (42)-(44)).

With A^T = E Y (eqs. (40)-(41)) and E^T E = I,

    H = A^T C A = E S E^T,   S = Y C Y^T  (q x q),                                  eq. (42)

so the eigenvalues of H are those of S plus P - q exact zeros, and with b = Y u (g = E b),

    d = -E (S + lam I)^{-1} b,        d_f = -E V diag(1 / (f(mu) + lam)) V^T b      eqs. (43)-(44)

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

import array_api_compat

from .._memory import check_entries
from ..backend import xp_of
from . import linalg
from .basis import basis_columns, basis_size, build_basis
from .core import Rows, apply_core
from .spectral import (
    NotDescentWarning,
    SingularCurvatureError,
    adjust,
    check_direction,
    f_at_zero,
    norms,
    user_stacklevel,
)
from .state import State

__all__ = ["FEWER_SAMPLES", "Coordinates", "check_coordinates", "coordinates", "warn_not_descent"]

FEWER_SAMPLES = "use fewer samples per call (the samples are independent: split the batch)"
"""What to do when a stacked per-sample call does not fit in memory."""

_HINT = ("use fewer samples per call (per-sample routes or a smaller batch), "
         "method='layerwise', or Lanczos on er.as_linear_operator")


@dataclass
class Coordinates:
    """H_g = E_g S_g E_g^T and g_g = E_g b_g for G groups, eq. (42).

    Attributes:
        S: (G, q, q), symmetric up to rounding (each block of eq. (42) is one product):
            the eigensolvers read its lower triangle, the solve of eq. (43) the whole.
        b: (G, q), the gradient's coordinates.
        expand: maps coordinates y of shape (G, k, q) to parameters E y, (G, k, P).
        num_params: P.
        work: the memory of the coordinates Y^T (or of their QR's R), dead once S and b are
            formed: the solve of eq. (43) writes its copy of S there instead of into new
            memory (None: no usable buffer, `linalg.work_buffer`). An eigendecomposition
            releases it first, so that its memory is free for LAPACK.
        hint: what to do instead, in the memory check's error.
    """

    S: Any
    b: Any
    expand: Callable
    num_params: int
    work: Any = None
    hint: str = _HINT

    @property
    def xp(self):
        """The array namespace."""
        return xp_of(self.S)

    @property
    def size(self) -> int:
        """q: the size of S."""
        return int(self.S.shape[-1])

    @property
    def num_zeros(self) -> int:
        """P - q: eigenvalues of H that are exactly zero and not represented in S."""
        return self.num_params - self.size

    def eigvalsh(self):
        """Eigenvalues of every S_g, ascending: (G, q)."""
        self._reserve(1, "the eigenvalues")  # the copy LAPACK overwrites
        return linalg.eigvalsh(self.S)

    def eigh(self):
        """(mu, V) of every S_g."""
        self._reserve(4, "the eigendecomposition")  # copy, V, divide-and-conquer workspace
        return linalg.eigh(self.S)

    def _reserve(self, squares: int, what: str) -> None:
        """Release the work buffer, then check that ``squares`` q x q arrays per group fit."""
        self.work = None
        G, q = int(self.S.shape[0]), self.size
        check_entries(G * squares * q * q, self.S.dtype, f"{what} ({G} matrix(es) of size {q})",
                      self.hint, self.xp)

    def frobenius(self):
        """|H_g|_F = |S_g|_F for every group, as host floats."""
        return norms(self.xp.reshape(self.S, (self.S.shape[0], -1)))

    def newton(self, lam: float, spectral: str | Callable = "none", descent: bool = True):
        """Every group's direction -(f(H_g) + lam I)^{-1} g_g, eqs. (43)-(44): (G, P).

        ``descent=False`` skips the descent test of spectral ``"none"`` (the caller makes it).
        """
        xp = self.xp
        if spectral == "none":
            work, self.work = self.work, None  # one caller at a time writes into it
            if work is None:  # the copy LAPACK overwrites (and S + lam I off NumPy)
                self._reserve(1 if array_api_compat.is_numpy_namespace(xp) else 2, "the solve")
            y = _solve(self.S, self.b, lam, work)
            self.work = work
            scale = self.frobenius()
        else:
            mu, V = self.eigh()
            f = xp.reshape(adjust(spectral, xp.reshape(mu, (-1,))), mu.shape)
            c = (xp.matrix_transpose(V) @ self.b[..., None])[..., 0] / (f + lam)
            y = (V @ c[..., None])[..., 0]
            scale = norms(f)
        self._check(y, lam, spectral, scale, descent)
        return -self.expand(y[:, None, :])[:, 0, :]

    def _check(self, y, lam: float, spectral, scale: list, descent: bool = True) -> None:
        """Apply the singular-to-working-precision rule and the descent test to every group."""
        xp = self.xp
        G = self.S.shape[0]
        both = norms(xp.concat([self.b, y]))  # |b_g| = |g_g| and |y_g| = |d_g| (E orthonormal)
        g_norm, d_norm = both[:G], both[G:]
        eps = float(xp.finfo(self.S.dtype).eps)
        f0 = f_at_zero(spectral, self.S)
        for k in range(self.S.shape[0]):
            check_direction(g_norm[k], d_norm[k], scale[k], lam, self.size,
                            self.num_zeros, eps, f0, adjusted=spectral != "none")
        if spectral != "none" or not descent:
            return
        # the sign of g . d = -y . b, on unit vectors: tiny gradients must not underflow to 0
        y_unit = y / xp.asarray([v if v > 0 else 1.0 for v in d_norm], dtype=y.dtype,
                                device=array_api_compat.device(y))[:, None]
        b_unit = self.b / xp.asarray([v if v > 0 else 1.0 for v in g_norm], dtype=y.dtype,
                                     device=array_api_compat.device(y))[:, None]
        g_dot_d = [-float(v) for v in xp.vecdot(y_unit, b_unit)]
        bad = sum(1 for k, v in enumerate(g_dot_d) if v >= 0 and g_norm[k] > 0)
        if bad:
            warn_not_descent(bad, G, float(xp.min(self.eigvalsh())), lam)


def warn_not_descent(bad: int, total: int, mu_min: float, lam: float) -> None:
    """The NotDescentWarning of spectral "none": ``bad`` of ``total`` directions ascend."""
    warnings.warn(
        f"{bad} of {total} damped Newton directions are not descent directions:"
        f" H + damping I is indefinite, smallest eigenvalue of H = {mu_min:.6e} < "
        f"-damping = {-lam:g}; use spectral='abs' or 'clip', or a larger damping",
        NotDescentWarning, stacklevel=user_stacklevel())


def _solve(S, b, lam: float, work=None):
    """(S + lam I)^{-1} b for every group, eq. (43)."""
    try:
        return linalg.solve_shifted(S, lam, b, work)
    except linalg.LinAlgError as err:
        raise SingularCurvatureError(
            f"H + damping I is singular to working precision for damping = {lam:g}: {err}; "
            "use a larger damping "
            "or a spectral adjustment ('abs', 'clip')") from err


def coordinates(state: State, rows: Rows, s: int) -> Coordinates:
    """S = Y C Y^T / s and b = Y u / s for groups of s samples, eqs. (18), (40)-(42).

    u is zero outside the J_L rows, where it holds delta_L (eq. (18)), so b uses those rows of
    Y^T only.

    s = B gives the batch-mean Hessian, s = 1 every sample's own. Y is compressed by a QR
    when the basis has more columns than A has rows (the Gauss-Newton matrix).
    """
    xp, B, r = state.xp, state.B, rows.r
    check_coordinates(state, rows, s)
    basis = build_basis(state, rows, s)
    Yt, reduce = basis.Yt, None
    if Yt.shape[-1] > Yt.shape[-2]:
        reduce, R = linalg.qr(xp.matrix_transpose(Yt))
        Yt = xp.matrix_transpose(R)
    q = Yt.shape[-1]
    if reduce is None and rows.K:
        S = _core_sandwich(state, rows, basis, s)
    else:
        CY = xp.reshape(apply_core(state, rows, xp.reshape(Yt, (B, r, q))), Yt.shape)
        S = xp.matrix_transpose(Yt) @ CY / s
    n_L = state.net.sizes[-1]
    Y_L = xp.reshape(xp.reshape(Yt, (B // s, s, r, q))[:, :, rows.J[state.L], :],
                     (B // s, s * n_L, q))
    u = xp.reshape(state.bwd.delta[state.L], (B // s, s * n_L, 1))
    b = (xp.matrix_transpose(Y_L) @ u)[..., 0] / s
    basis.Yt = None
    work = linalg.work_buffer(S, Yt if reduce is None else R)
    if reduce is None:
        return Coordinates(S, b, basis.expand, state.net.num_params, work)
    return Coordinates(S, b, lambda y: basis.expand(y @ xp.matrix_transpose(reduce)),
                       state.net.num_params, work)


def check_coordinates(state: State, rows: Rows, s: int, squares: int = 0, extra: int = 0,
                      hint: str = _HINT) -> None:
    """Raise InsufficientMemoryError unless `coordinates` fits in the memory available.

    ``squares``: q x q arrays per group that the caller then needs besides S (its copy for
    LAPACK, eigenvectors, workspace), once the coordinates are freed. The larger of the two
    stages is checked: groups that run in chunks side by side, each chunk in either stage,
    never need more in all (`esso_ref.curvature.workers`). ``extra``: entries per group held
    throughout (the caller's results, such as P-sized directions).
    """
    B, r = state.B, rows.r
    q_E = basis_columns(state.net.sizes, state.net.bias, s, ggn=not rows.K)
    q = basis_size(state.net.sizes, state.net.bias, s, ggn=not rows.K)
    qr = 2 * s * r * q_E if q_E > s * r else 0  # the QR that compresses Y (Gauss-Newton)
    numbers = max(2 * s * r * q_E + q * q + qr, (1 + squares) * q * q) + extra
    check_entries((B // s) * numbers, state.dtype,
                  f"the exact curvature route ({B // s} system(s) of size {q}, "
                  f"{B // s} x {s * r} x {q_E} coordinates)", hint, state.xp)


def _core_sandwich(state: State, rows: Rows, basis, s: int):
    """S = Y C Y^T / s by the blocks of C (eq. (16)) and the zero pattern of Y (eq. (41)).

    J_l rows of Y^T are zero beyond the first parts of layers 1..l (`Basis.prefix`), K_l rows
    outside layer l's two parts, so S = Y_L^T Lam Y_L + sum_l (Y_l^T diag(h_l) Y_l +
    Y_l^T D_l Z_{l+1} + its transpose), each product on its non-zero columns only (Y_l: J_l
    rows, Z_l: K_l rows).
    """
    xp, L, G = state.xp, state.L, basis.groups
    Y4 = xp.reshape(basis.Yt, (G, s, rows.r, basis.size))
    S = state.zeros((G, basis.size, basis.size))

    def block(part, cols):
        """Rows ``part`` of every sample's A (as rows of Y^T), columns ``cols``: (G, s n, k)."""
        Z = Y4[:, :, part, cols]
        return Z[:, 0, ...] if s == 1 else xp.reshape(Z, (G, s * Z.shape[2], Z.shape[3]))

    def per_row(v):
        """Per-sample row weights v (B, n) as one column per group: (G, s n, 1)."""
        return xp.reshape(v, (G, s * v.shape[1], 1))

    pre = basis.prefix(L)
    LamY = xp.reshape(state.Lam, (G, s, *state.Lam.shape[1:])) @ Y4[:, :, rows.J[L], pre]
    S[:, pre, pre] = (xp.matrix_transpose(block(rows.J[L], pre))
                      @ xp.reshape(LamY, (G, s * LamY.shape[2], LamY.shape[3])))
    for l in range(1, L):
        pre = basis.prefix(l)
        Y_l = block(rows.J[l], pre)
        Y_lT, D = xp.matrix_transpose(Y_l), per_row(state.fwd.dphi[l])
        S[:, pre, pre] += Y_lT @ (per_row(state.h[l]) * Y_l)
        for own in basis.spans[l + 1]:
            X = Y_lT @ (D * block(rows.K[l + 1], own))
            S[:, pre, own] += X
            S[:, own, pre] += xp.matrix_transpose(X)
    return S / s if s > 1 else S
