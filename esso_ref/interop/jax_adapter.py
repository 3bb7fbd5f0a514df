"""JAX adapters: a list of {"W", "b"} dicts or a Flax ``nn.Dense`` params tree <-> (MLP, theta).

Two layouts of the same parameters:

- ``"list"``: ``[{"W": (n_l, n_{l-1}), "b": (n_l,)}, ...]``: W stored (out, in) as PyTorch's
  ``nn.Linear.weight`` and esso_ref's ``net.unflatten``; a layer without bias has no ``"b"`` key.
  The forward pass is ``a_l = phi(a_{l-1} @ W.T + b)``.
- ``"flax"``: ``{"params": {"Dense_0": {"kernel": (n_{l-1}, n_l), "bias": (n_l,)}, ...}}``:
  Flax stores kernels (in, out), the transpose of W; layers are ordered by the integer suffix of
  their names (``Dense_10`` after ``Dense_9``), or by insertion order when a name has none.

The activation and loss are not part of a params tree: pass them to `from_jax`. Arrays
are copied without arithmetic, so round trips are bitwise exact. float64 arrays need
``jax.config.update("jax_enable_x64", True)`` (JAX would silently round them to float32
otherwise, so `to_jax` refuses). JAX is imported when a function is called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ._layers import build, split

__all__ = ["LAYOUTS", "from_jax", "to_jax"]

LAYOUTS = ("list", "flax")


def _host(x) -> np.ndarray:
    return np.array(x, copy=True)


def _order(names: list[str]) -> list[str]:
    suffix = [re.search(r"_(\d+)$", name) for name in names]
    if all(suffix):
        return sorted(names, key=lambda n: int(re.search(r"_(\d+)$", n).group(1)))
    return list(names)


def _flax_layers(tree: Mapping) -> list:
    tree = tree["params"] if "params" in tree else tree
    layers = []
    for name in _order(list(tree)):
        layer = tree[name]
        if not isinstance(layer, Mapping) or "kernel" not in layer:
            got = list(layer) if isinstance(layer, Mapping) else type(layer).__name__
            raise ValueError(f"expected Flax Dense params {{'kernel', 'bias'}} in every layer, "
                             f"got {name!r} holding {got}; only Dense layers convert")
        b = layer.get("bias")
        layers.append((_host(layer["kernel"]).T.copy(), None if b is None else _host(b)))
    return layers


def _list_layers(params) -> list:
    layers = []
    for l, layer in enumerate(params, start=1):
        if not isinstance(layer, Mapping) or "W" not in layer:
            raise ValueError(f"expected layer {l} to be a dict with 'W' (out, in) and optional "
                             f"'b', got {type(layer).__name__}")
        b = layer.get("b")
        layers.append((_host(layer["W"]), None if b is None else _host(b)))
    return layers


def from_jax(params, activation: str = "tanh", loss: str = "cross_entropy"):
    """The esso_ref network and flat parameters of JAX / Flax parameters.

    Args:
        params: a list of ``{"W": (out, in), "b": (out,)}`` dicts, or a Flax params tree
            ``{"params": {"Dense_0": {"kernel": (in, out), "bias": (out,)}, ...}}`` (the
            ``"params"`` level may be omitted).
        activation: esso_ref name of the hidden activation (``jax.nn.gelu`` is ``"gelu_tanh"``
            by default, ``"gelu"`` with ``approximate=False``).
        loss: ``"cross_entropy"`` or ``"mse"``.

    Returns:
        (net, theta): an `MLP` and a NumPy theta in the parameters' dtype.

    Raises:
        TypeError: for params that are neither a list nor a mapping.
        ValueError: for layers that do not chain, mixed bias, or mixed dtypes.
    """
    if isinstance(params, Mapping):
        layers = _flax_layers(params)
    elif isinstance(params, list | tuple):
        layers = _list_layers(params)
    else:
        raise TypeError(f"expected a list of {{'W', 'b'}} dicts or a Flax params dict, got "
                        f"{type(params).__name__}")
    return build(layers, activation, loss)


def to_jax(net, theta, layout: str = "list"):
    """The parameters theta as JAX arrays in the ``"list"`` or ``"flax"`` layout.

    See the module docstring for the two layouts.

    Raises:
        ValueError: unknown layout, or float64 theta while JAX's x64 mode is off.
    """
    import jax
    import jax.numpy as jnp

    if layout not in LAYOUTS:
        raise ValueError(f"expected layout in {list(LAYOUTS)}, got {layout!r}")
    layers = split(net, theta)
    if layers[0][0].dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError("expected JAX's x64 mode for float64 parameters, got it off; call "
                         "jax.config.update('jax_enable_x64', True) first")
    if layout == "list":
        return [{"W": jnp.asarray(W)} | ({} if b is None else {"b": jnp.asarray(b)})
                for W, b in layers]
    return {"params": {f"Dense_{i}": {"kernel": jnp.asarray(W.T)}
                       | ({} if b is None else {"bias": jnp.asarray(b)})
                       for i, (W, b) in enumerate(layers)}}
