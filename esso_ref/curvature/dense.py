r"""Dense reference route: H from P Hessian-vector products (docs/math.md §4, eq. (12)).

Column j of H is H e_j (eq. (11)); the P x P result is symmetrised, H = (H_raw + H_raw^T) / 2,
and the asymmetry |H_raw - H_raw^T|_F / |H_raw|_F is an independent round-off check.
For small networks only: O(P^2) memory and O(P) passes.
"""

from __future__ import annotations

from .._memory import check_entries
from .hvp import hvp_state
from .state import State, prepare, sample_state

__all__ = ["dense_state", "hessian"]

_CHUNK = 256


def dense_state(state: State, symmetric: bool = True):
    """Dense batch-mean Hessian (P x P) of a prepared state from HVP columns, eq. (12)."""
    xp, P = state.xp, state.net.num_params
    check_entries(3 * P * P, state.dtype, f"the dense Hessian (P x P, P = {P})",
                  "use the structured routes (eigenvalues, hessian_factor, newton_direction) "
                  "or hvp instead", xp)
    eye = state.eye(P)
    cols = [hvp_state(state, eye[j:min(j + _CHUNK, P), :]) for j in range(0, P, _CHUNK)]
    H = xp.matrix_transpose(xp.concat(cols, axis=0))
    return 0.5 * (H + xp.matrix_transpose(H)) if symmetric else H


def hessian(net, theta, X, y, symmetric: bool = True, per_sample: bool = False):
    """Dense Hessian of the batch-mean loss from P Hessian-vector products, eq. (12).

    With ``per_sample``, every sample's own Hessian H_i (of its loss l_i) instead, from the
    batch's forward pass: the dense reference of `esso_ref.per_sample_eigenvalues` and
    `esso_ref.per_sample_directions`.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        symmetric: return (H + H^T) / 2 (default); False returns the raw HVP columns.
        per_sample: return each sample's own Hessian, shape (B, P, P).

    Returns:
        H, shape (P, P) (or (B, P, P) with ``per_sample``).

    Raises:
        ValueError, TypeError: for inputs of the wrong shape, dtype, namespace or values.
    """
    state = prepare(net, theta, X, y)
    if not per_sample:
        return dense_state(state, symmetric=symmetric)
    return state.xp.stack([dense_state(sample_state(state, i), symmetric=symmetric)
                           for i in range(state.B)])
