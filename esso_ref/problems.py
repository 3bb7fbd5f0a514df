"""Seeded random problems (theta, X, y) for a network: checks, examples and the CLI."""

from __future__ import annotations

from .backend import device_of, host_integers, host_normal
from .mlp import MLP

__all__ = ["random_problem"]


def random_problem(net: MLP, batch: int = 2, seed: int = 0, dtype: str = "float64", xp=None,
                   device=None):
    """Parameters, inputs and labels/targets drawn from ``seed``.

    theta is ``net.init(seed)``; X has standard normal entries; cross-entropy labels are
    uniform on the n_L classes; mse targets are standard normal.

    Args:
        net: the network.
        batch: B >= 1.
        seed: non-negative integer.
        dtype: ``"float64"`` or ``"float32"``.
        xp: backend name or namespace (NumPy by default).
        device: device of that backend.

    Returns:
        (theta (P,), X (B, n_0), y (B,) int64 labels or (B, n_L) targets).
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"expected batch to be a positive int, got {batch!r}")
    theta = net.init(seed, dtype=dtype, xp=xp, device=device)
    from .backend import namespace

    ns, dev = namespace(theta), device_of(theta)
    X = ns.asarray(host_normal(seed + 1, (batch, net.sizes[0])), dtype=theta.dtype, device=dev)
    if net.loss_fn.integer_targets:
        y = ns.asarray(host_integers(seed + 2, net.sizes[-1], batch), dtype=ns.int64, device=dev)
    else:
        y = ns.asarray(host_normal(seed + 2, (batch, net.sizes[-1])), dtype=theta.dtype,
                       device=dev)
    return theta, X, y
