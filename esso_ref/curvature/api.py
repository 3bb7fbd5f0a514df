r"""Public curvature entry points: exact spectra and damped Newton directions (docs/math.md).

``method`` picks the route: ``"structured"`` (H = A^T C A, eqs. (24)-(28)), ``"dense"`` (P x P
from HVP columns, eq. (12)) or ``"layerwise"`` (block-diagonal Kronecker form, eqs. (30)-(33)).
``curvature`` picks the matrix: the Hessian, or the Gauss-Newton matrix J^T Lam J (eq. (37)).
"""

from __future__ import annotations

from collections.abc import Callable

import array_api_compat

from .._checks import check_choice
from ..backend import xp_of
from ..threads import batch_system_size, limit_blas_for
from . import linalg
from .basis import basis_size
from .dense import dense_state
from .factor import CURVATURES, HessianFactor
from .layerwise import backprop_M, layer_coordinates, layer_spectra
from .spectral import (
    SingularCurvatureError,
    Spectrum,
    adjust,
    check_damping,
    check_direction,
    check_spectral,
    f_at_zero,
    norms,
)
from .state import State, prepare

__all__ = ["METHODS", "eigenvalues", "newton_direction"]

METHODS = ("structured", "dense", "layerwise")


def _dense_matrix(state: State, curvature: str):
    """Dense Hessian, or dense GGN = A^T C A of the Gauss-Newton factor (materialised)."""
    if curvature == "hessian":
        return dense_state(state)
    return HessianFactor(state, "ggn").to_dense()


@limit_blas_for(batch_system_size)
def eigenvalues(net, theta, X, y, method: str = "structured", curvature: str = "hessian"):
    """Exact eigenvalues of the batch-mean Hessian (or Gauss-Newton matrix).

    Implements eq. (42) (structured: the eigenvalues of S = Y C Y^T in the layer basis, §15;
    ``hessian_factor(..., route="gram")`` gives eqs. (24)-(26)), (12) (dense) and (32)
    (layerwise).

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        method: ``"structured"``, ``"dense"`` or ``"layerwise"``.
        curvature: ``"hessian"`` or ``"ggn"``.

    Returns:
        structured / dense: a [`Spectrum`][esso_ref.curvature.Spectrum] (``values``
        ascending, ``num_zeros`` exact zeros not listed; dense lists all P values and has
        ``num_zeros = 0``);
        layerwise: a list with one [`Spectrum`][esso_ref.curvature.Spectrum] per layer block.

    Raises:
        ValueError, TypeError: for bad inputs or unknown method / curvature names.
    """
    check_choice("method", method, METHODS)
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    if method == "structured":
        return HessianFactor(state, curvature).eigh()
    if method == "dense":
        return Spectrum(linalg.eigvalsh(_dense_matrix(state, curvature)), 0)
    return layer_spectra(state, ggn=curvature == "ggn")


def _dense_newton(H, g, lam: float, spectral, num_zeros: int):
    """The direction -(f(H) + lam I)^{-1} g on a dense matrix (reference route), same rule."""
    xp = xp_of(H)
    eye = xp.eye(H.shape[0], dtype=H.dtype, device=array_api_compat.device(H))
    if spectral == "none":
        try:
            d = -linalg.solve(H + lam * eye, g)
        except linalg.LinAlgError as err:
            raise SingularCurvatureError(
                f"H + damping I is singular to working precision for damping = {lam:g}: {err}; "
                "use a larger "
                "damping or a spectral adjustment ('abs', 'clip')") from err
        scale = norms(xp.reshape(H, (1, -1)))[0]
    else:
        mu, V = linalg.eigh(H)
        f = adjust(spectral, mu)
        d = -(V @ ((xp.matrix_transpose(V) @ g) / (f + lam)))
        scale = norms(f[None, :])[0]
    check_direction(norms(g[None, :])[0], norms(d[None, :])[0], scale,
                    lam, int(H.shape[0]), num_zeros, float(xp.finfo(H.dtype).eps),
                    f_at_zero(spectral, H), adjusted=spectral != "none")
    return d


def _layerwise_newton(state: State, lam: float, spectral, ggn: bool):
    """Concatenated block Newton directions, eq. (33)."""
    M = backprop_M(state, ggn)
    parts = [layer_coordinates(state, l, M[l]).newton(lam, spectral)[0, :]
             for l in range(1, state.L + 1)]
    return state.xp.concat(parts)


@limit_blas_for(batch_system_size)
def newton_direction(net, theta, X, y, damping: float = 1e-3,
                     spectral: str | Callable = "none", method: str = "structured",
                     curvature: str = "hessian"):
    """Exact damped Newton direction d = -(f(H) + damping I)^{-1} g.

    Implements eqs. (43)-(44) (structured: d = -E (f(S) + damping I)^{-1} b in the layer
    basis, §15; ``hessian_factor(..., route="gram")`` gives eq. (27), the push-through, and
    eq. (28)), eq. (33) (layer blocks) and eq. (37) (Gauss-Newton).

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        damping: lam > 0.
        spectral: ``"none"`` (f(mu) = mu), ``"abs"`` (|mu|), ``"clip"`` (max(mu, 0)) or a
            callable returning finite values >= 0.
        method: ``"structured"``, ``"dense"`` or ``"layerwise"``.
        curvature: ``"hessian"`` or ``"ggn"``.

    Returns:
        d, shape (P,).

    Raises:
        ValueError: damping <= 0 or non-finite; unknown names; a callable spectral returning
            negative or non-finite values;
            [`SingularCurvatureError`][esso_ref.curvature.SingularCurvatureError] when
            spectral is ``"none"`` and H + damping I is singular.

    Warns:
        NotDescentWarning: spectral ``"none"`` and d is not a descent direction; the message
            names the smallest eigenvalue of H.
    """
    lam = check_damping(damping)
    spectral = check_spectral(spectral)
    check_choice("method", method, METHODS)
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    if method == "structured":
        return HessianFactor(state, curvature).newton(lam, spectral)
    if method == "layerwise":
        return _layerwise_newton(state, lam, spectral, curvature == "ggn")
    factor = HessianFactor(state, curvature)
    H, g = _dense_matrix(state, curvature), factor.gradient()
    q = basis_size(net.sizes, net.bias, state.B, ggn=curvature == "ggn")
    return _dense_newton(H, g, lam, spectral, net.num_params - q)

