r"""Forward and backward passes of an MLP on a batch (docs/math.md, eqs. (1), (7)-(8)).

Rows are samples: ``a[l]`` and ``z[l]`` have shape (B, n_l). Lists are indexed by the layer
number l of docs/math.md, with ``None`` in the unused slot 0 (``z[0]``, ``W[0]``, ``delta[0]``),
so the code reads like the equations. The passes never validate and never leave the array
namespace of their inputs; complex inputs work (complex-step oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .activations import Activation
from .backend import xp_of

__all__ = ["Backward", "Forward", "backward", "forward", "layer_gradients"]


@dataclass
class Forward:
    """Forward cache of a batch: a_0..a_{L-1}, z_1..z_L, phi'(z_l) and phi''(z_l) for l < L."""

    a: list[Any]
    z: list[Any]
    dphi: list[Any]
    d2phi: list[Any]

    @property
    def L(self) -> int:
        """Number of layers."""
        return len(self.z) - 1


@dataclass
class Backward:
    """Backward quantities: delta_l = dl/dz_l (l = 1..L) and gamma_l = dl/da_l (l < L)."""

    delta: list[Any]
    gamma: list[Any]


def forward(W: list, b: list, X, act: Activation) -> Forward:
    """Forward pass, eq. (1): z_l = a_{l-1} W_l^T + b_l, a_l = phi(z_l) (no activation at l = L).

    Args:
        W: [None, W_1, ..., W_L], W_l of shape (n_l, n_{l-1}), or (k, n_l, n_{l-1}) for k
            parameter vectors at once (then every output gains a leading axis k).
        b: [None, b_1, ..., b_L] (entries None for networks without biases).
        X: inputs a_0, shape (B, n_0).
        act: the activation phi.

    Returns:
        The `Forward` cache.
    """
    L = len(W) - 1
    a, z, dphi, d2phi = [X], [None], [None], [None]
    for l in range(1, L + 1):
        z_l = a[l - 1] @ xp_of(W[l]).matrix_transpose(W[l])
        z.append(z_l if b[l] is None else z_l + b[l][..., None, :])
        if l < L:
            a.append(act.f(z[l]))
            dphi.append(act.df(z[l]))
            d2phi.append(act.d2f(z[l]))
    return Forward(a, z, dphi, d2phi)


def backward(W: list, fwd: Forward, delta_L) -> Backward:
    """Backward pass, eq. (7): gamma_l = delta_{l+1} W_{l+1}, delta_l = phi'(z_l) * gamma_l.

    Args:
        W: [None, W_1, ..., W_L].
        fwd: forward cache.
        delta_L: dl/dz_L per sample, shape (B, n_L) (no 1/B factor).

    Returns:
        The `Backward` quantities.
    """
    L = fwd.L
    delta, gamma = [None] * (L + 1), [None] * L
    delta[L] = delta_L
    for l in range(L - 1, 0, -1):
        gamma[l] = delta[l + 1] @ W[l + 1]
        delta[l] = fwd.dphi[l] * gamma[l]
    return Backward(delta, gamma)


def layer_gradients(fwd: Forward, delta: list, weight: float, bias: bool) -> list:
    """Parameter gradient from per-sample signals, eq. (8): dW_l = w sum_i delta_l a_{l-1}^T.

    Args:
        fwd: forward cache (for a_{l-1}).
        delta: [None, delta_1, ..., delta_L], each (B, n_l).
        weight: the factor w (1/B for a batch mean).
        bias: whether the network has biases (db_l = w sum_i delta_l).

    Returns:
        [(dW_1, db_1), ..., (dW_L, db_L)], db_l None without biases.
    """
    xp = xp_of(delta[-1])
    out = []
    for l in range(1, fwd.L + 1):
        dW = weight * (xp.matrix_transpose(delta[l]) @ fwd.a[l - 1])
        db = weight * xp.sum(delta[l], axis=0) if bias else None
        out.append((dW, db))
    return out
