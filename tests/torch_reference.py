"""The equivalent float64 PyTorch network of an esso_ref MLP (for cross-checks only)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from esso_ref import to_host


class Sin(nn.Module):
    """sin as a module."""

    def forward(self, x):
        return torch.sin(x)


def _activation(name: str) -> nn.Module:
    return {
        "identity": nn.Identity(),
        "tanh": nn.Tanh(),
        "sigmoid": nn.Sigmoid(),
        # PyTorch linearises softplus above threshold=20 by default; esso_ref is exact
        "softplus": nn.Softplus(threshold=float("inf")),
        "relu": nn.ReLU(),
        "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"),
        "sin": Sin(),
    }[name]


def build(net) -> nn.Sequential:
    """nn.Sequential(Linear, act, ..., Linear) with the architecture of ``net``."""
    layers = []
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:], strict=True), start=1):
        layers.append(nn.Linear(n_in, n_out, bias=net.bias, dtype=torch.float64))
        if l < net.L:
            layers.append(_activation(net.activation))
    return nn.Sequential(*layers)


def criterion(net):
    """The PyTorch loss with mean reduction."""
    return nn.CrossEntropyLoss() if net.loss_name == "cross_entropy" else nn.MSELoss()


def tensors(theta, X, y):
    """theta, X, y as float64 / int64 torch tensors."""
    t = torch.from_numpy(np.asarray(to_host(theta), dtype=np.float64))
    return t, torch.from_numpy(np.asarray(to_host(X))), torch.from_numpy(np.asarray(to_host(y)))


def loss_fn(net):
    """theta -> mean loss, written with torch.func.functional_call (differentiable in theta)."""
    model, crit = build(net), criterion(net)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def f(theta, X, y):
        params, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            params[name] = theta[start:start + size].reshape(shape)
            start += size
        out = torch.func.functional_call(model, params, (X,))
        return crit(out, y)

    return f, model
