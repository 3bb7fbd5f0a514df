"""The networks and inputs an implementation is checked on: seeded edge cases plus draws.

Edge cases (each on a network drawn from the allowed activations / losses, skipped when they
need one that is not allowed): ``width_1`` (hidden layers of one unit), ``output_1`` (n_L = 1, mse),
``depth_1`` (one Linear layer, no activation), ``r_gt_P`` (the factor's rank B R exceeds P),
``dead_relu`` (half the first layer's ReLUs off on every sample, the others on),
``saturated`` (tanh / sigmoid first-layer pre-activations |z| >= 30, phi' ~ 0),
``zero_gradient`` (mse, W_L = 0, b_L = 0, y = 0: the gradient is exactly zero, the Hessian is
not), ``repeated_samples`` (every sample twice).
Random draws: 1-3 layers, widths 1-5, batches 1-4. Everything is host NumPy, from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import ACTIVATIONS
from ..losses import LOSSES
from ..mlp import MLP
from ..problems import random_problem

__all__ = ["Case", "default_cases"]


@dataclass
class Case:
    """One network and point: ``net, theta, X, y`` plus a direction ``v``, with its origin."""

    name: str
    net: MLP
    theta: np.ndarray
    X: np.ndarray
    y: np.ndarray
    v: np.ndarray
    seed: int

    @property
    def batch(self) -> int:
        """B, the number of samples."""
        return int(self.X.shape[0])

    def describe(self) -> dict:
        """The reproducer's recipe: name, sizes, activation, loss, bias, batch and seed."""
        net = self.net
        return {"case": self.name, "sizes": list(net.sizes), "activation": net.activation,
                "loss": net.loss_name, "bias": net.bias, "batch": self.batch, "seed": self.seed}


def _make(name, sizes, act, loss, bias, batch, seed) -> Case:
    net = MLP(sizes, act, loss, bias=bias)
    theta, X, y = random_problem(net, batch, seed)
    v = np.random.default_rng(seed + 3).standard_normal(net.num_params)
    return Case(name, net, theta, X, y, v, seed)


def _signed_first_layer(case: Case, sign: np.ndarray, scale: float, floor: float) -> Case:
    """Inputs >= 1, layer 1's row i (and bias) of sign ``sign[i]``: z_1 has those signs.

    Weights become ``scale * sign * (|W| + floor)``, so |z_1| >= scale * floor * n_0.
    """
    W, b = case.net.unflatten(case.theta)[0]
    W[...] = scale * sign[:, None] * (np.abs(W) + floor)
    if b is not None:
        b[...] = scale * sign * np.abs(b)
    case.X = np.abs(case.X) + 1.0
    return case


def _dead_relu(case: Case) -> Case:
    """The first half of layer 1's units off on every sample, the others on."""
    n = case.net.sizes[1]
    return _signed_first_layer(case, np.where(np.arange(n) < max(1, n // 2), -1.0, 1.0), 1.0, 0.0)


def _saturated(case: Case) -> Case:
    """|z_1| >= 10 n_0 = 30 everywhere, alternating signs: phi'(z_1) ~ 0 (tanh / sigmoid)."""
    n = case.net.sizes[1]
    return _signed_first_layer(case, np.where(np.arange(n) % 2 == 0, 1.0, -1.0), 20.0, 0.5)


def _zero_gradient(case: Case) -> Case:
    case.theta[case.net.layer_slice(case.net.L)] = 0.0
    case.y = np.zeros_like(case.y)
    return case


def _repeated(case: Case) -> Case:
    half = case.batch // 2
    case.X[half:2 * half] = case.X[:half]
    case.y[half:2 * half] = case.y[:half]
    return case


# name: (sizes, batch, activations it needs, losses it needs, modification)
EDGES = {
    "width_1": ([3, 1, 1, 3], 3, None, None, None),
    "output_1": ([3, 4, 1], 3, None, ("mse",), None),  # one softmax output: constant loss
    "depth_1": ([4, 3], 3, None, None, None),
    "r_gt_P": ([2, 2, 2], 8, None, None, None),
    "dead_relu": ([3, 4, 3, 2], 3, ("relu",), None, _dead_relu),
    "saturated": ([3, 5, 2], 3, ("tanh", "sigmoid"), None, _saturated),
    "zero_gradient": ([3, 4, 2], 3, None, ("mse",), _zero_gradient),
    "repeated_samples": ([3, 4, 3], 4, None, None, _repeated),
}


def _pick(rng, allowed, needed):
    names = [n for n in allowed if needed is None or n in needed]
    return str(rng.choice(names)) if names else None


def default_cases(activations=None, losses=None, bias=None, n_random: int = 12,
                  seed: int = 0) -> list[Case]:
    """The edge cases (see the module docstring) then ``n_random`` seeded draws.

    Args:
        activations: esso_ref activation names to draw from (all by default).
        losses: loss names to draw from (all by default).
        bias: True / False to fix it, None to draw it.
        n_random: number of random networks after the edge cases.
        seed: seed of every choice and every array.
    """
    activations = sorted(activations or ACTIVATIONS)
    losses = sorted(losses or LOSSES)
    rng = np.random.default_rng(seed)
    cases = []
    for i, (name, (sizes, batch, acts, loss_set, modify)) in enumerate(EDGES.items()):
        act, loss = _pick(rng, activations, acts), _pick(rng, losses, loss_set)
        with_bias = bool(rng.integers(2)) if bias is None else bias
        if act is None or loss is None:
            continue
        case = _make(f"edge/{name}", sizes, act, loss, with_bias, batch, 1000 * seed + 10 * i)
        cases.append(modify(case) if modify else case)
    for i in range(n_random):
        L = int(rng.integers(1, 4))
        sizes = [int(n) for n in rng.integers(1, 6, L + 1)]
        act, loss = _pick(rng, activations, None), _pick(rng, losses, None)
        if loss == "cross_entropy" and sizes[-1] == 1:
            sizes[-1] = 2  # one softmax output makes a constant loss (MLP refuses it)
        with_bias = bool(rng.integers(2)) if bias is None else bias
        cases.append(_make(f"random/{i}", sizes, act, loss, with_bias, int(rng.integers(1, 5)),
                           1000 * seed + 500 + 10 * i))
    return cases
