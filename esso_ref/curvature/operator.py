r"""The curvature as a SciPy (or CuPy) LinearOperator, for eigsh, cg, minres, lobpcg ...

v -> (H + damping I) v by the R-operator (eqs. (9)-(11)), or v -> (G_GN + damping I) v by the
Gauss-Newton factor (eq. (37)); O(P) per product, no P x P object.
"""

from __future__ import annotations

import array_api_compat

from .._checks import check_choice, check_positive
from .factor import CURVATURES, HessianFactor
from .hvp import hvp_state
from .state import prepare

__all__ = ["as_linear_operator"]


def _linear_operator_class(theta):
    if array_api_compat.is_cupy_array(theta):
        from cupyx.scipy.sparse.linalg import LinearOperator
    else:
        from scipy.sparse.linalg import LinearOperator
    return LinearOperator


def as_linear_operator(net, theta, X, y, curvature: str = "hessian", damping: float = 0.0):
    """(H + damping I) as a ``scipy.sparse.linalg.LinearOperator``, eqs. (9)-(11), (37).

    On CuPy arrays it is a ``cupyx.scipy.sparse.linalg.LinearOperator``. NumPy and CuPy only:
    SciPy's solvers need arrays they can index and reshape freely.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        curvature: ``"hessian"`` (R-operator products) or ``"ggn"`` (Gauss-Newton products).
        damping: lam >= 0 added to the diagonal.

    Returns:
        A symmetric P x P LinearOperator of theta's dtype.

    Raises:
        ValueError, TypeError: bad inputs, negative damping, unknown curvature, other backends.
    """
    check_choice("curvature", curvature, CURVATURES)
    lam = check_positive("damping", damping, allow_zero=True)
    if not (array_api_compat.is_numpy_array(theta) or array_api_compat.is_cupy_array(theta)):
        raise TypeError(f"expected theta as a NumPy or CuPy array, got {type(theta).__name__}")
    state = prepare(net, theta, X, y)
    factor = HessianFactor(state, "ggn") if curvature == "ggn" else None
    P = net.num_params

    def matmat(V):
        W = state.xp.matrix_transpose(state.xp.reshape(V, (P, -1)))
        HW = factor.matvec(W) if factor is not None else hvp_state(state, W)
        return state.xp.matrix_transpose(HW) + lam * state.xp.reshape(V, (P, -1))

    def matvec(v):
        return matmat(v)[:, 0]

    cls = _linear_operator_class(theta)
    return cls((P, P), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=theta.dtype)
