r"""Per-sample losses l(z, y) of the logits z = z_L, with gradient and Hessian in z.

docs/math.md, eqs. (4)-(6). Batch losses are means over samples, so that esso_ref's batch loss
equals PyTorch's with its default ``reduction="mean"``:

- ``cross_entropy``: :math:`l = \operatorname{lse}(z) - z_y`, :math:`\delta_L = p - e_y`,
  :math:`\Lambda = \operatorname{diag}(p) - p p^T` with :math:`p = \operatorname{softmax}(z)`.
  ``torch.nn.CrossEntropyLoss`` averages over the B samples: same as the batch mean of l.
- ``mse``: :math:`l = \frac{1}{n_L} \lVert z - y \rVert^2`, :math:`\delta_L = \frac{2}{n_L}(z - y)`,
  :math:`\Lambda = \frac{2}{n_L} I`. ``torch.nn.MSELoss`` averages over all B n_L elements, which
  is the batch mean of this per-sample l (hence the 1/n_L inside l).

Rows are samples: ``z`` has shape (B, n_L). Every function is analytic in ``z`` (complex step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import array_api_compat

from .backend import xp_of

__all__ = ["LOSSES", "Loss", "get_loss"]


def _xp(z):
    return xp_of(z)


def _one_hot(y, z):
    """e_y as rows of the dtype of ``z``: shape (B, n_L)."""
    xp = _xp(z)
    classes = xp.arange(z.shape[-1], device=array_api_compat.device(z))
    return xp.astype(classes == y[..., None], z.dtype)


def _softmax_parts(z):
    """(z - m, log s, p, p_bar): softmax parts without cancellation, eq. (5).

    m is the real row maximum, e = exp(z - m) (e_m = 1 at the first maximum for real z),
    s = sum e, log s = log e_m + log1p(sum of the other e / e_m), p = e / s, and
    p_bar = 1 - p computed as the sum of the other classes' e over s.
    """
    xp = _xp(z)
    re = xp.real(z) if xp.isdtype(z.dtype, "complex floating") else z
    shifted = z - xp.max(re, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    s = xp.sum(e, axis=-1, keepdims=True)
    first = _one_hot(xp.argmax(re, axis=-1), z)
    e_m = xp.sum(e * first, axis=-1, keepdims=True)
    rest = xp.sum(e * (1.0 - first), axis=-1, keepdims=True)
    log_s = xp.sum(shifted * first, axis=-1, keepdims=True) + xp.log1p(rest / e_m)
    others = 1.0 - xp.eye(z.shape[-1], dtype=z.dtype, device=array_api_compat.device(z))
    return shifted, log_s, e / s, (e @ others) / s


def _ce_value(z, y):
    shifted, log_s, _, _ = _softmax_parts(z)
    return log_s[..., 0] - _xp(z).sum(shifted * _one_hot(y, z), axis=-1)


def _ce_grad(z, y):
    """delta_L = p - e_y, with the y entry -(1 - p_y) = -p_bar_y."""
    _, _, p, p_bar = _softmax_parts(z)
    onehot = _one_hot(y, z)
    return p * (1.0 - onehot) - p_bar * onehot


def _ce_hess(z, y):
    """Lam = diag(p) - p p^T, with the diagonal p (1 - p) = p p_bar."""
    xp = _xp(z)
    _, _, p, p_bar = _softmax_parts(z)
    eye = xp.eye(z.shape[-1], dtype=z.dtype, device=array_api_compat.device(z))
    return (p * p_bar)[:, :, None] * eye - p[:, :, None] * p[:, None, :] * (1.0 - eye)


def _ce_grad_hess(z, y):
    """(delta_L, Lam) from one set of softmax parts: `_ce_grad` and `_ce_hess` together."""
    xp = _xp(z)
    _, _, p, p_bar = _softmax_parts(z)
    onehot = _one_hot(y, z)
    eye = xp.eye(z.shape[-1], dtype=z.dtype, device=array_api_compat.device(z))
    Lam = (p * p_bar)[:, :, None] * eye - p[:, :, None] * p[:, None, :] * (1.0 - eye)
    return p * (1.0 - onehot) - p_bar * onehot, Lam


def _ce_hess_vec(z, y, zdot):
    """Lam zdot = p * (zdot - p . zdot), as p_i sum_j p_j (zdot_i - zdot_j) (no cancellation)."""
    xp = _xp(z)
    p = _softmax_parts(z)[2]
    diff = zdot[..., :, None] - zdot[..., None, :]
    return p * xp.sum(p[..., None, :] * diff, axis=-1)


def _mse_value(z, y):
    r = z - y
    return _xp(z).sum(r * r, axis=-1) / z.shape[-1]


def _mse_grad(z, y):
    return (2.0 / z.shape[-1]) * (z - y)


def _mse_hess(z, y):
    xp = _xp(z)
    eye = xp.eye(z.shape[-1], dtype=z.dtype, device=array_api_compat.device(z))
    return xp.broadcast_to((2.0 / z.shape[-1]) * eye, (z.shape[0], *eye.shape))


def _mse_hess_vec(z, y, zdot):
    return (2.0 / z.shape[-1]) * zdot


@dataclass(frozen=True)
class Loss:
    """A per-sample loss with its derivatives in the logits (rows = samples), eqs. (4)-(5).

    Attributes:
        name: registry name.
        value: l(z, y), shape (B,).
        grad: delta_L = dl/dz, shape (B, n_L).
        hess: Lam = d^2 l / dz^2, shape (B, n_L, n_L).
        hess_vec: Lam zdot without forming Lam, shape (B, n_L).
        integer_targets: True when y holds class indices (shape (B,)).
    """

    name: str
    value: Callable
    grad: Callable
    hess: Callable
    hess_vec: Callable
    integer_targets: bool

    def derivatives(self, z, y) -> tuple:
        """(delta_L, Lam) = (dl/dz, d^2 l / dz^2) at the logits z, eqs. (4)-(5).

        The built-in cross-entropy computes both from one set of softmax parts; any other
        pair (a user's, or one with ``grad`` or ``hess`` replaced) is called as given.
        """
        both = _FUSED.get((self.grad, self.hess))
        if both is not None:
            return both(z, y)
        return self.grad(z, y), self.hess(z, y)


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", _ce_value, _ce_grad, _ce_hess, _ce_hess_vec, True),
    "mse": Loss("mse", _mse_value, _mse_grad, _mse_hess, _mse_hess_vec, False),
}


_FUSED = {(_ce_grad, _ce_hess): _ce_grad_hess}


def get_loss(name: str | Loss) -> Loss:
    """Return the loss called ``name`` (a [`Loss`][esso_ref.losses.Loss] passes through).

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    from ._checks import lookup

    return lookup("a loss", LOSSES, name, Loss)
