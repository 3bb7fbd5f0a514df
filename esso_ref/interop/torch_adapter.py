"""PyTorch adapters: ``nn.Sequential`` of Linear and activation modules <-> (MLP, theta).

theta is ``parameters_to_vector(module.parameters())`` (W_l row-major then b_l, eq. (3)), so
the conversion is a copy and round trips are bitwise exact. Modules map one-to-one onto
esso_ref activations:

==================================  ==============
module                              activation
==================================  ==============
``nn.Tanh()``                       ``"tanh"``
``nn.Sigmoid()``                    ``"sigmoid"``
``nn.Softplus(beta=1, threshold)``  ``"softplus"``
``nn.ReLU()``                       ``"relu"``
``nn.GELU()``                       ``"gelu"`` (erf form)
``nn.GELU(approximate="tanh")``     ``"gelu_tanh"``
``nn.Identity()`` or nothing        ``"identity"``
`Sin` (this module)          ``"sin"``
==================================  ==============

esso_ref's softplus is exact; ``nn.Softplus`` returns z itself above ``threshold`` (20 by
default). From z = 40 on the two agree to the last bit in float64 (e^{-40} < eps / 2), so
`to_torch` emits ``threshold=40`` and `from_torch` accepts lower thresholds with a
`SoftplusThresholdWarning` (values then differ by up to e^{-threshold}).
PyTorch is imported when a function is called, never at import time.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..activations import ACTIVATIONS
from ._layers import build, check_gelu_names, split

__all__ = ["SOFTPLUS_EXACT_THRESHOLD", "TORCH_ACTIVATIONS", "SoftplusThresholdWarning",
           "from_torch", "sin_module", "to_torch"]

SOFTPLUS_EXACT_THRESHOLD = 40.0

#: esso_ref activations with an exact PyTorch module in this version (both GELU forms need
#: the erf-form ``"gelu"`` next to ``"gelu_tanh"``)
TORCH_ACTIVATIONS = tuple(
    name for name in ("identity", "tanh", "sigmoid", "softplus", "relu", "gelu", "gelu_tanh",
                      "sin")
    if name in ACTIVATIONS and (not name.startswith("gelu") or "gelu_tanh" in ACTIVATIONS))


class SoftplusThresholdWarning(UserWarning):
    """An ``nn.Softplus`` whose linearisation threshold is below the exact-agreement point."""


@functools.cache
def sin_module() -> type:
    """The ``Sin`` module class (sin has no ``torch.nn`` module); built on first use."""
    import torch

    class Sin(torch.nn.Module):
        """phi(z) = sin z, elementwise."""

        def forward(self, x):
            return torch.sin(x)

    return Sin


def _activation_name(module) -> str | None:
    """esso_ref's name for an activation module, None when it is not one."""
    from torch import nn

    simple = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ReLU: "relu", nn.Identity: "identity",
              sin_module(): "sin"}
    if type(module) in simple:
        return simple[type(module)]
    if type(module) is nn.GELU:
        return check_gelu_names("gelu" if module.approximate == "none" else "gelu_tanh")
    if type(module) is nn.Softplus:
        return _softplus_name(module)
    return None


def _softplus_name(module) -> str:
    if module.beta != 1:
        raise ValueError(f"expected nn.Softplus with beta=1 (esso_ref's softplus), got {module}; "
                         "fold beta into the neighbouring Linear layers")
    if module.threshold < SOFTPLUS_EXACT_THRESHOLD:
        warnings.warn(f"{module} returns z above threshold={module.threshold:g} while esso_ref's "
                      f"softplus is exact there (difference up to e^-{module.threshold:g}); use "
                      f"threshold={SOFTPLUS_EXACT_THRESHOLD:g} for agreement to the last bit",
                      SoftplusThresholdWarning, stacklevel=4)
    return "softplus"


def _parse(module) -> tuple[list, str]:
    """[(Linear)...] and the one activation name of a Sequential; ValueError otherwise."""
    from torch import nn

    if not isinstance(module, nn.Sequential):
        raise TypeError(f"expected a torch.nn.Sequential of Linear and activation modules, got "
                        f"{type(module).__name__}")
    linears, gaps, gap = [], [], []
    for i, child in enumerate(module):
        if type(child) is nn.Linear:
            if linears:
                gaps.append(tuple(gap))
            linears.append(child)
            gap = []
        elif linears and (name := _activation_name(child)) is not None:
            gap.append(name)
        else:
            raise ValueError(f"expected Linear layers separated by one supported activation "
                             f"(Tanh, Sigmoid, Softplus, ReLU, GELU, Identity, Sin), got "
                             f"module [{i}] {child} in {type(module).__name__}")
    if not linears or gap:
        raise ValueError("expected the Sequential to start and end with nn.Linear (esso_ref's "
                         f"loss takes the last pre-activation z_L), got {module}")
    return linears, _one_activation(gaps)


def _one_activation(gaps: list[tuple]) -> str:
    names = {("identity",) if gap in ((), ("identity",)) else gap for gap in gaps}
    if any(len(gap) > 1 for gap in names) or len(names) > 1:
        raise ValueError(f"expected the same single activation between all Linear layers, got "
                         f"{[list(gap) for gap in gaps]}")
    return names.pop()[0] if names else "identity"


def from_torch(module, loss: str = "cross_entropy", activation: str | None = None):
    """The esso_ref network and flat parameters of a PyTorch ``nn.Sequential``.

    Args:
        module: ``nn.Sequential(Linear, act, Linear, ..., act, Linear)`` with one kind of
            activation module (see the module docstring), all layers with or all without bias.
        loss: ``"cross_entropy"`` (``nn.CrossEntropyLoss``) or ``"mse"`` (``nn.MSELoss``): the
            loss is not part of a Sequential.
        activation: the activation name for a network with one Linear layer (default
            ``"identity"``); ignored otherwise.

    Returns:
        (net, theta): an `MLP` and a NumPy vector equal to
        ``parameters_to_vector(module.parameters())`` in the module's dtype.

    Raises:
        TypeError: ``module`` is not an ``nn.Sequential``.
        ValueError: naming the first module that does not fit (a non-Linear layer, an
            unsupported or mixed activation, a bias on some layers only, a Softplus with
            beta != 1, a trailing activation).
    """
    linears, name = _parse(module)
    if len(linears) == 1 and activation is not None:
        name = activation
    layers = [(_host(lin.weight), None if lin.bias is None else _host(lin.bias))
              for lin in linears]
    return build(layers, name, loss)


def _host(p) -> np.ndarray:
    return p.detach().cpu().numpy().copy()


def _activation_module(name: str):
    from torch import nn

    modules = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "identity": nn.Identity,
               "sin": sin_module(), "gelu": nn.GELU,
               "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
               "softplus": lambda: nn.Softplus(threshold=SOFTPLUS_EXACT_THRESHOLD)}
    if name not in modules:
        raise ValueError(f"expected an activation with a PyTorch module {sorted(modules)}, "
                         f"got {name!r}")
    return modules[check_gelu_names(name) if name.startswith("gelu") else name]()


def to_torch(net, theta, device=None):
    """``nn.Sequential(Linear, act, ..., Linear)`` holding theta (a copy, theta's dtype).

    Args:
        net: the `MLP`.
        theta: parameters, shape (P,), on any esso_ref backend.
        device: torch device of the module (CPU by default).

    Returns:
        The module; ``parameters_to_vector(module.parameters())`` equals theta bitwise.
    """
    import torch
    from torch import nn

    layers = []
    for l, (W, b) in enumerate(split(net, theta), start=1):
        lin = nn.Linear(W.shape[1], W.shape[0], bias=b is not None,
                        dtype=getattr(torch, str(W.dtype)), device=device)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            if b is not None:
                lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < net.L:
            layers.append(_activation_module(net.activation))
    return nn.Sequential(*layers)
