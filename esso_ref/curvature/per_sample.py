r"""Every sample's own exact damped Newton direction in one stacked call (docs/math.md eq. (36)).

For samples i = 1..B, d_i = -(f(H_i) + lam I)^{-1} g_i with H_i = A_i^T C_i A_i the Hessian of
sample i's own loss l_i. The B systems of size r are solved together: stacked
``solve(C_i G_i + lam I, u_i)`` (eq. (27)) or stacked ``eigh`` of G_i and S_i (eq. (28)), then
one backward pass returns all B directions. Gram truncation (eq. (24)) is done by masking:
1/sqrt(s) is set to 0 for s <= r eps max(s), which drops exactly the same directions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from .._checks import check_choice
from . import linalg
from .factor import CURVATURES, Rows, adjoint, core
from .gram import gram_per_sample
from .lowrank import NotDescentWarning, user_stacklevel
from .spectral import adjust, check_damping, check_spectral
from .state import State, prepare

__all__ = ["per_sample_directions", "per_sample_eigenvalues"]


def _masked_root(state: State, G, r: int):
    """(U, sqrt(s), 1/sqrt(s)) of each G_i, zero where s_i <= r eps max(s_i)."""
    xp = state.xp
    s, U = linalg.eigh(G)
    tau = r * float(xp.finfo(state.dtype).eps)
    keep = s > tau * s[:, -1:]
    s_safe = xp.where(keep, s, xp.ones_like(s))
    zero = xp.zeros_like(s)
    return U, xp.where(keep, xp.sqrt(s_safe), zero), xp.where(keep, 1.0 / xp.sqrt(s_safe), zero)


def _cholesky_root(state: State, G, r: int):
    """(L, d) with D^-1 G_i D^-1 = L_i L_i^T for every sample, or None if one is singular."""
    xp = state.xp
    G_eq, d = linalg.equilibrate(G)
    try:
        L = xp.linalg.cholesky(G_eq)
    except Exception as err:
        if type(err).__name__ != "LinAlgError":
            raise
        return None
    pivots = xp.linalg.diagonal(L) ** 2
    tau = 100.0 * r * float(xp.finfo(state.dtype).eps)
    if not linalg.finite(L) or bool(xp.any(xp.min(pivots, axis=1) <= tau * xp.max(pivots, axis=1))):
        return None
    return L, d


def _solve_adjusted(state: State, C, G, u, lam: float, spectral, r: int):
    """x_i = U_i diag(1/sqrt(s_i)) W_i diag(1/(f(mu_i)+lam)) W_i^T R_i u_i, stacked (eq. (28)).

    When every G_i is numerically non-singular its Cholesky factor replaces the eigenvectors:
    R_i = L_i^T D_i and the back-map is D_i^-1 L_i^-T (one stacked solve), as in eq. (25).
    """
    xp = state.xp
    root = _cholesky_root(state, G, r) if r <= state.net.num_params else None
    if root is not None:
        L, d = root
        R = xp.matrix_transpose(L) * d[:, None, :]
        S = R @ C @ xp.matrix_transpose(R)
        mu, W = linalg.eigh(0.5 * (S + xp.matrix_transpose(S)))
        c = (xp.matrix_transpose(W) @ (R @ u[:, :, None]))[:, :, 0]
        c = c / (adjust(spectral, mu) + lam)
        return linalg.solve(xp.matrix_transpose(L), W @ c[:, :, None])[:, :, 0] / d
    U, sq, inv_sq = _masked_root(state, G, r)
    R = sq[:, :, None] * xp.matrix_transpose(U)
    S = R @ C @ xp.matrix_transpose(R)
    mu, W = linalg.eigh(0.5 * (S + xp.matrix_transpose(S)))
    c = (xp.matrix_transpose(W) @ (R @ u[:, :, None]))[:, :, 0]
    c = c / (adjust(spectral, mu) + lam)
    return (U @ (inv_sq * (W @ c[:, :, None])[:, :, 0])[:, :, None])[:, :, 0]


def per_sample_directions(net, theta, X, y, damping: float = 1e-3,
                          spectral: str | Callable = "none", curvature: str = "hessian"):
    """Each sample's exact damped Newton direction, all in one stacked call, eqs. (27)-(28), (36).

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0).
        y: labels (cross_entropy) or targets (mse).
        damping: lam > 0.
        spectral: ``"none"``, ``"abs"``, ``"clip"`` or a callable (see newton_direction).
        curvature: ``"hessian"`` or ``"ggn"``.

    Returns:
        (D, d_mean): D of shape (B, P) with D[i] = -(f(H_i) + lam I)^{-1} g_i, and its mean.

    Raises:
        ValueError, TypeError: bad inputs, damping <= 0, unknown names.

    Warns:
        NotDescentWarning: with spectral ``"none"``, when some d_i is not a descent direction.
    """
    lam = check_damping(damping)
    spectral = check_spectral(spectral)
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    xp, B = state.xp, state.B
    rows = Rows.of(net.sizes, ggn=curvature == "ggn")
    C, G = core(state, rows), gram_per_sample(state, rows)
    u = state.zeros((B, rows.r))
    u[:, rows.J[net.L]] = state.bwd.delta[net.L]
    if spectral == "none":
        eye = state.eye(rows.r)
        x = linalg.solve(C @ G + lam * eye, u[:, :, None])[:, :, 0]
        g_dot_d = -xp.sum(x * (G @ u[:, :, None])[:, :, 0], axis=1)
        bad = int(xp.count_nonzero(g_dot_d >= 0))
        if bad:
            warnings.warn(f"{bad} of {B} per-sample directions are not descent directions "
                          "(H_i + damping I indefinite); use spectral='abs' or 'clip'",
                          NotDescentWarning, stacklevel=user_stacklevel())
    else:
        x = _solve_adjusted(state, C, G, u, lam, spectral, rows.r)
    D = -adjoint(state, rows, x[None, :, :], per_sample=True)[0, ...]
    return D, xp.mean(D, axis=0)


def per_sample_eigenvalues(net, theta, X, y, curvature: str = "hessian"):
    """Every sample's exact spectrum in one stacked call, eqs. (24)-(25), (36).

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0).
        y: labels (cross_entropy) or targets (mse).
        curvature: ``"hessian"`` or ``"ggn"``.

    Raises:
        ValueError, TypeError: bad inputs or an unknown curvature.

    Returns:
        (B, r) array: row i holds the eigenvalues of H_i that can be non-zero, padded with
        exact zeros where the sample's Gram matrix is rank deficient (H_i also has P - r
        further zero eigenvalues).
    """
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    xp = state.xp
    rows = Rows.of(net.sizes, ggn=curvature == "ggn")
    C, G = core(state, rows), gram_per_sample(state, rows)
    U, sq, _ = _masked_root(state, G, rows.r)
    R = sq[:, :, None] * xp.matrix_transpose(U)
    S = R @ C @ xp.matrix_transpose(R)
    return linalg.eigvalsh(0.5 * (S + xp.matrix_transpose(S)))
