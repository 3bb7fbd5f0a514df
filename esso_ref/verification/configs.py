"""Seeded random valid configurations (net, theta, X, y) for property tests of every route.

``random_configuration(seed)`` draws depth 1-5, widths 1-40 (log-uniform, so most networks are
small), every activation and loss, bias on / off, batch 1-6 and a parameter scale 0.01-5. One
seed in three (``seed % 3 == 0``) also forces one or two edge cases from `EDGE_CASES`:

- ``width1``: a hidden width of 1;            - ``output1``: n_L = 1;
- ``depth1``: L = 1;                          - ``r_gt_p``: more rows r than parameters P;
- ``dead_relu``: relu with large negative biases (dead units);
- ``saturated``: tanh / sigmoid with large first-layer weights;
- ``zero_gradient``: mse with y = net.predict(theta, X), so g = 0 exactly;
- ``repeated``: duplicated samples;            - ``kink``: relu with some z exactly 0.

Everything is drawn on the host with NumPy's PCG64 (test-data generation, not library math) and
returned as NumPy float64 arrays (or moved with ``xp`` / ``device``).
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import ACTIVATIONS
from ..losses import LOSSES
from ..mlp import MLP

__all__ = ["EDGE_CASES", "Configuration", "random_configuration"]

EDGE_CASES = ("width1", "output1", "depth1", "r_gt_p", "dead_relu", "saturated",
              "zero_gradient", "repeated", "kink")

Configuration = tuple  # (net, theta, X, y)


def _width(rng) -> int:
    return round(math.exp(rng.uniform(0.0, math.log(40.0))))


def _spec(rng, edges: set) -> dict:
    """Sizes, activation, loss and bias, with the structural edge cases applied."""
    L = 1 if "depth1" in edges else int(rng.integers(1, 6))
    sizes = [_width(rng) for _ in range(L + 1)]
    act = str(rng.choice(sorted(ACTIVATIONS)))
    loss = str(rng.choice(sorted(LOSSES)))
    bias = bool(rng.integers(0, 2))
    if "width1" in edges and L > 1:
        sizes[int(rng.integers(1, L))] = 1
    if "output1" in edges:
        sizes[-1] = 1
    if "r_gt_p" in edges:
        L = max(L, 2)
        sizes = [1] + [1] * (L - 1) + [int(rng.integers(2, 5))]
        bias = False
    if "dead_relu" in edges or "kink" in edges:
        act, bias = "relu", True if "dead_relu" in edges else bias
    if "saturated" in edges:
        act = str(rng.choice(["tanh", "sigmoid"]))
    if "zero_gradient" in edges or sizes[-1] == 1:  # one softmax output: constant loss
        loss = "mse"
    return {"sizes": sizes, "activation": act, "loss": loss, "bias": bias}


def _parameters(rng, net: MLP, scale: float, edges: set) -> np.ndarray:
    """Weights uniform on scale * [-1, 1] / sqrt(n_in), then the parameter edge cases."""
    params = []
    for l in range(1, net.L + 1):
        n_in, n_out = net.sizes[l - 1], net.sizes[l]
        W = scale * rng.uniform(-1.0, 1.0, (n_out, n_in)) / math.sqrt(n_in)
        b = scale * rng.uniform(-1.0, 1.0, n_out) / math.sqrt(n_in) if net.bias else None
        params.append([W, b])
    if "dead_relu" in edges and net.L > 1:
        for W, b in params[:-1]:
            dead = rng.random(b.shape[0]) < 0.5
            b[dead] = -50.0 * (1.0 + np.abs(W[dead]).sum(axis=1))
    if "saturated" in edges and net.L > 1:
        params[0][0] *= 30.0
    if "kink" in edges:
        for W, b in params[1:-1]:   # a unit with z = 0 exactly in every deeper hidden layer
            W[0, :] = 0.0
            if b is not None:
                b[0] = 0.0
        if net.bias:
            params[0][1][0] = 0.0   # with X[0] = 0 below, z_1[0, 0] = 0 exactly
    return np.concatenate([np.concatenate([W.ravel()] + ([b] if b is not None else []))
                           for W, b in params])


def _edges(seed: int, rng) -> set:
    if seed % 3 != 0:
        return set()
    k = int(rng.integers(1, 3))
    return {str(e) for e in rng.choice(EDGE_CASES, size=k, replace=False)}


def random_configuration(seed: int, xp=None, device=None, return_edges: bool = False):
    """A seeded valid configuration (net, theta, X, y) for property tests.

    Args:
        seed: non-negative integer; ``seed % 3 == 0`` forces edge cases.
        xp: backend name or namespace for the arrays (NumPy by default).
        device: device of that backend.
        return_edges: also return the sorted list of forced edge cases.

    Returns:
        (net, theta, X, y) in float64, or (net, theta, X, y, edges) with ``return_edges``.
    """
    rng = np.random.default_rng([int(seed), 20261128])
    edges = _edges(seed, rng)
    net = MLP(**_spec(rng, edges))
    scale = 10.0 ** rng.uniform(-2.0, math.log10(5.0))
    theta = _parameters(rng, net, scale, edges)
    B = int(rng.integers(1, 7))
    X = rng.standard_normal((B, net.sizes[0]))
    if "repeated" in edges and B > 1:
        X[B // 2:] = X[:B - B // 2]
    if "kink" in edges:
        X[0, :] = 0.0
    if net.loss_fn.integer_targets:
        y = rng.integers(0, net.sizes[-1], B)
        if "repeated" in edges and B > 1:
            y[B // 2:] = y[:B - B // 2]
    else:
        y = rng.standard_normal((B, net.sizes[-1]))
        if "repeated" in edges and B > 1:
            y[B // 2:] = y[:B - B // 2]
    if "zero_gradient" in edges:
        y = np.array(net.predict(theta, X))
    out = _to(xp, device, theta, X, y)
    return (net, *out, sorted(edges)) if return_edges else (net, *out)


def _to(xp, device, *arrays):
    if xp is None:
        return arrays
    from ..backend import to_namespace

    return tuple(to_namespace(a, xp, device) for a in arrays)
