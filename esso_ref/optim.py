r"""Optimizers with one functional interface (optax-like).

``state = opt.init(theta)``; ``theta, state, info = opt.step(theta, state, net, X, y)``. The
baselines also expose ``opt.update(grad, state, theta) -> (delta, state)`` so that identical
gradient sequences can be compared with ``torch.optim``.

- [`ESSO`][esso_ref.optim.ESSO]: exact stochastic second order, theta <- theta + lr d with d
  the exact damped, spectrally adjusted Newton direction of the batch (eqs. (43)-(44), (33),
  (36), (37)).
- [`SGD`][esso_ref.optim.SGD]: theta <- theta - lr (g + wd theta), heavy-ball / Nesterov
  momentum exactly as ``torch.optim.SGD`` (first step: buf = g).
- [`Adam`][esso_ref.optim.Adam]: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
  theta <- theta - lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps), as ``torch.optim.Adam``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from ._checks import check_choice, check_flag, check_positive
from .backend import namespace
from .curvature import (
    NotDescentWarning,
    hessian_factor,
    newton_direction,
    per_sample_directions,
)
from .curvature.api import METHODS
from .curvature.factor import CURVATURES
from .curvature.lowrank import ROUTES
from .curvature.spectral import check_spectral

__all__ = ["ESSO", "SGD", "Adam", "make_optimizer"]


def _check_state(name: str, state, theta, arrays: tuple, scalars: tuple) -> None:
    """Raise ValueError unless ``state`` has exactly these keys, arrays shaped like theta."""
    if not isinstance(state, dict) or set(state) != set(arrays + scalars):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"expected a {name} state with keys {sorted(arrays + scalars)}, got "
                         f"{got}; use the state of {name}.init")
    for key in arrays:
        value = state[key]
        if value is None and key == "buf":
            continue
        if tuple(getattr(value, "shape", ())) != tuple(theta.shape):
            raise ValueError(f"expected {name} state {key!r} of shape {tuple(theta.shape)} "
                             f"(theta's), got {tuple(getattr(value, 'shape', ()))}")
    if not isinstance(state["t"], int) or state["t"] < 0:
        raise ValueError(f"expected a step count t >= 0 in the {name} state, got {state['t']!r}")


class _FirstOrder:
    """A gradient method: ``step`` applies ``update`` to the batch gradient."""

    STATE_ARRAYS = ()

    def check_state(self, state: dict, theta) -> None:
        """Raise ValueError unless ``state`` belongs to this optimizer and theta's size."""
        _check_state(type(self).__name__, state, theta, self.STATE_ARRAYS, ("t",))

    def step(self, theta, state: dict, net, X, y):
        """One step on the batch (X, y); info holds the loss before the step and the step norm."""
        self.check_state(state, theta)
        g = net.gradient(theta, X, y)
        delta, state = self.update(g, state, theta)
        return theta + delta, state, _info(net, theta, X, y, delta)


@dataclass
class SGD(_FirstOrder):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    STATE_ARRAYS = ("buf",)

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_positive("momentum", self.momentum, allow_zero=True)
        if not self.momentum < 1:  # the buffer would grow without bound
            raise ValueError(f"expected momentum in [0, 1), got {self.momentum!r}")
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_flag("nesterov", self.nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("expected momentum > 0 with nesterov=True, got momentum = 0")

    def init(self, theta) -> dict:
        """Optimizer state: the momentum buffer (None until the first step) and step count."""
        return {"buf": None, "t": 0}

    def update(self, g, state: dict, theta):
        """(delta, state): the change of theta for gradient g."""
        if self.weight_decay:
            g = g + self.weight_decay * theta
        buf = state["buf"]
        if self.momentum:
            buf = g if buf is None else self.momentum * buf + g
            g = g + self.momentum * buf if self.nesterov else buf
        return -self.lr * g, {"buf": buf, "t": state["t"] + 1}


@dataclass
class Adam(_FirstOrder):
    """Adam with L2 weight decay (as ``torch.optim.Adam``, not AdamW)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    STATE_ARRAYS = ("m", "v")

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_positive("eps", self.eps)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"expected betas in [0, 1), got {self.betas}")

    def init(self, theta) -> dict:
        """First and second moment estimates (zeros) and the step count."""
        xp = namespace(theta)
        return {"m": xp.zeros_like(theta), "v": xp.zeros_like(theta), "t": 0}

    def update(self, g, state: dict, theta):
        """(delta, state) for gradient g."""
        xp = namespace(theta)
        self.check_state(state, theta)
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * theta
        t = state["t"] + 1
        m = b1 * state["m"] + (1 - b1) * g
        v = b2 * state["v"] + (1 - b2) * g * g
        denom = xp.sqrt(v) / math.sqrt(1 - b2**t) + self.eps
        return -(self.lr / (1 - b1**t)) * m / denom, {"m": m, "v": v, "t": t}


@dataclass
class ESSO:
    """Exact stochastic second-order steps: theta <- theta + lr d, d = -(f(H) + lam I)^{-1} g.

    Args:
        lr: step length on the Newton direction (1 is the full step).
        damping: lam > 0.
        spectral: ``"abs"`` (default, the absolute Hessian), ``"clip"``, ``"none"``, callable.
        method: ``"structured"`` (full Hessian, eqs. (43)-(44)) or ``"layerwise"`` (eq. (33)).
        curvature: ``"hessian"`` or ``"ggn"`` (eq. (37)).
        batch_mode: ``"exact"`` (the batch-mean Hessian, eq. (34)) or ``"per_sample_mean"``
            (the mean of every sample's own direction, eq. (36)).
        adaptive: adapt lam by the Levenberg-Marquardt rule: rho = actual / predicted decrease,
            predicted = -(g.d + d^T f(H) d / 2) = (-g.d + lam |d|^2) / 2; lam *= 3 when
            rho < 1/4, lam /= 3 when rho > 3/4, kept in [min_damping, max_damping].
        max_damping: upper bound of the adaptive damping (default: the larger of 1e6 and
            ``damping``).
        min_damping: lower bound of the adaptive damping (default: ``damping`` itself). The
            decrease rho is measured on the step's own batch, which a small batch's Newton step
            fits well even when the training loss grows; letting lam fall below the configured
            damping drove batch-size-1 runs to losses of 1e9 and more.
        route: basis of the structured route (default ``"auto"``: the layer basis of
            eqs. (40)-(44), O(q^3 + P) per step, backward stable; ``"gram"`` / ``"qr"`` are
            the routes of eqs. (24)-(26)).
    """

    lr: float = 1.0
    damping: float = 1e-2
    spectral: str | Callable = "abs"
    method: str = "structured"
    curvature: str = "hessian"
    batch_mode: str = "exact"
    adaptive: bool = False
    min_damping: float | None = None
    max_damping: float | None = None
    route: str = "auto"

    def __post_init__(self):
        check_positive("lr", self.lr)
        check_positive("damping", self.damping)
        if self.min_damping is None:
            self.min_damping = float(self.damping)
        check_positive("min_damping", self.min_damping)
        if self.max_damping is None:
            self.max_damping = max(1e6, float(self.damping))
        check_positive("max_damping", self.max_damping)
        if not self.min_damping <= self.damping <= self.max_damping:
            raise ValueError(f"expected min_damping <= damping <= max_damping, got "
                             f"{self.min_damping} <= {self.damping} <= {self.max_damping}")
        check_flag("adaptive", self.adaptive)
        check_spectral(self.spectral)
        check_choice("method", self.method, [m for m in METHODS if m != "dense"])
        check_choice("curvature", self.curvature, CURVATURES)
        check_choice("batch_mode", self.batch_mode, ("exact", "per_sample_mean"))
        check_choice("route", self.route, ROUTES)

    def init(self, theta) -> dict:
        """The current damping and step count."""
        return {"damping": float(self.damping), "t": 0}

    def check_state(self, state: dict, theta) -> None:
        """Raise ValueError unless ``state`` is an ESSO state (damping > 0, step count)."""
        _check_state("ESSO", state, theta, (), ("damping", "t"))
        check_positive("damping in the ESSO state", state["damping"])

    def memory_estimate(self, net, batch: int) -> float:
        """Peak bytes of one step at this batch size.

        About four (B r)^2 Gram-sized arrays on the structured route, four (B n_l)^2 on the
        layerwise route.
        """
        r = max(net.sizes[1:]) if self.method == "layerwise" else net.rank_bound
        if self.batch_mode == "per_sample_mean":
            return 4.0 * batch * r * r * 8
        return 4.0 * (batch * r) ** 2 * 8

    def direction(self, theta, state: dict, net, X, y):
        """The exact damped, spectrally adjusted Newton direction at theta."""
        lam = state["damping"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotDescentWarning)
            if self.batch_mode == "per_sample_mean":
                return per_sample_directions(net, theta, X, y, lam, self.spectral,
                                             self.curvature)[1]
            if self.method == "layerwise":
                return newton_direction(net, theta, X, y, lam, self.spectral, "layerwise",
                                        self.curvature)
            factor = hessian_factor(net, theta, X, y, self.curvature, route=self.route)
            return factor.newton(lam, self.spectral)

    def step(self, theta, state: dict, net, X, y):
        """One step; info: loss, step_norm, damping, rho (adaptive only)."""
        self.check_state(state, theta)
        d = self.direction(theta, state, net, X, y)
        new = theta + self.lr * d
        info = _info(net, theta, X, y, self.lr * d)
        info["damping"] = state["damping"]
        lam = state["damping"]
        if self.adaptive:
            xp = namespace(theta)
            g = net.gradient(theta, X, y)
            s = self.lr * d
            predicted = 0.5 * (-float(xp.vecdot(g, s)) + lam * float(xp.vecdot(s, s)))
            actual = info["loss"] - float(net.loss(new, X, y))
            rho = actual / predicted if predicted > 0 else 0.0
            info["rho"] = rho
            if rho < 0.25:
                lam = min(lam * 3.0, self.max_damping)
            elif rho > 0.75:
                lam = max(lam / 3.0, self.min_damping)
        return new, {"damping": lam, "t": state["t"] + 1}, info


def _info(net, theta, X, y, delta) -> dict:
    xp = namespace(theta)
    return {"loss": float(net.loss(theta, X, y)),
            "step_norm": float(xp.linalg.vector_norm(delta))}


def make_optimizer(name: str, **kw):
    """Build an optimizer by name: ``"esso"``, ``"sgd"`` or ``"adam"`` (keywords passed on)."""
    classes = {"esso": ESSO, "sgd": SGD, "adam": Adam}
    check_choice("optimizer", name, classes)
    return classes[name](**kw)
