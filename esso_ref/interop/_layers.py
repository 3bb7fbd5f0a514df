"""Framework-neutral half of the adapters: a list of (W, b) host arrays <-> (MLP, theta).

Every adapter reduces a model to ``[(W_1, b_1), ..., (W_L, b_L)]`` as NumPy arrays with W_l of
shape (n_l, n_{l-1}) (PyTorch's ``nn.Linear.weight`` layout, esso_ref's ``net.unflatten``) and
b_l None for layers without a bias, plus one activation name; this module checks the layers fit
together and builds the `MLP` and its flat theta (``er.flatten``, eq. (3)).
Conversions are copies without arithmetic, so round trips are bitwise exact.
"""

from __future__ import annotations

import numpy as np

from ..activations import ACTIVATIONS
from ..mlp import MLP, flatten

__all__ = ["build", "check_gelu_names", "host_layers", "split"]


def check_gelu_names(name: str) -> str:
    """Return ``name``; refuse the GELU names when this esso_ref lacks the exact (erf) form.

    ``"gelu"`` is PyTorch's default ``nn.GELU()`` (erf form) and ``"gelu_tanh"`` its
    ``approximate="tanh"`` form; an esso_ref without ``"gelu_tanh"`` still calls the tanh form
    ``"gelu"``, so mapping a module there would silently change the function.
    """
    if name.startswith("gelu") and "gelu_tanh" not in ACTIVATIONS:
        raise ValueError(f"expected an esso_ref with the activations 'gelu' (erf form) and "
                         f"'gelu_tanh', got only {sorted(ACTIVATIONS)}; upgrade esso_ref to "
                         "convert GELU models")
    return name


def _check_pair(l: int, W, b, n_prev: int | None, dtype) -> None:
    if W.ndim != 2:
        raise ValueError(f"expected layer {l}'s weight to be 2-d (out, in), got shape {W.shape}")
    if n_prev is not None and W.shape[1] != n_prev:
        raise ValueError(f"expected layer {l} to take {n_prev} inputs (the previous layer's "
                         f"outputs), got a weight of shape {W.shape}")
    if b is not None and b.shape != (W.shape[0],):
        raise ValueError(f"expected layer {l}'s bias of shape ({W.shape[0]},), got {b.shape}")
    for name, x in (("weight", W), ("bias", b)):
        if x is not None and x.dtype != dtype:
            raise ValueError(f"expected every parameter to share one dtype ({dtype}), got "
                             f"layer {l}'s {name} in {x.dtype}; cast the model first")
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"expected float32 or float64 parameters, got {dtype}")


def host_layers(layers: list) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Check that host layers [(W, b), ...] fit one MLP.

    Sizes must chain, all arrays share one float dtype, and every layer or none has a bias.

    Raises:
        ValueError: naming the first layer that does not fit.
    """
    if not layers:
        raise ValueError("expected at least one linear layer, got none")
    dtype, n_prev = layers[0][0].dtype, None
    with_bias = layers[0][1] is not None
    for l, (W, b) in enumerate(layers, start=1):
        _check_pair(l, W, b, n_prev, dtype)
        if (b is not None) != with_bias:
            raise ValueError(
                f"expected every layer to have a bias or none to (esso_ref's MLP has one bias "
                f"flag), got layer 1 bias={with_bias} and layer {l} bias={b is not None}")
        n_prev = W.shape[0]
    return layers


def build(layers: list, activation: str, loss: str):
    """(MLP, theta) of checked host layers; theta is a NumPy array in the layers' dtype."""
    layers = host_layers(layers)
    sizes = [layers[0][0].shape[1]] + [W.shape[0] for W, _ in layers]
    net = MLP(sizes, activation, loss, bias=layers[0][1] is not None)
    return net, flatten([(np.asarray(W), b) for W, b in layers])


def split(net: MLP, theta) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """[(W_l, b_l)] of theta as NumPy host copies (W_l of shape (n_l, n_{l-1}))."""
    from ..backend import to_host

    host = np.asarray(to_host(net.check_theta(theta)))
    return [(W.copy(), None if b is None else b.copy()) for W, b in net.unflatten(host)]
