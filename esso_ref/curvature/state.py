r"""Everything the curvature routes need at (theta, X, y), computed once.

docs/math.md, eqs. (1)-(8) and (16): the forward cache, the backward signals delta_l and g_l,
the loss Hessians Lam_i in the logits, and the activation-curvature weights
h_l = phi''(z_l) * g_l that form the diagonal blocks of C.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import passes
from ..backend import device_of, namespace
from ..mlp import MLP

__all__ = ["EYE_CACHE", "State", "build_state", "prepare", "sample_state", "subset_state"]

EYE_CACHE = 1024
"""Identities up to this size are cached in a `State` (small, and asked for many times)."""


@dataclass
class State:
    """Per-sample quantities of a batch at theta (rows = samples).

    Attributes:
        net: the network.
        xp: array namespace.
        W: [None, W_1, ..., W_L].
        b: [None, b_1, ..., b_L] (entries None without biases).
        fwd: forward cache (a_l, z_l, phi'(z_l), phi''(z_l)).
        bwd: backward signals (delta_l, g_l), per sample, without the 1/B.
        Lam: loss Hessians in the logits, (B, n_L, n_L).
        h: [None, h_1, ..., h_{L-1}], h_l = phi''(z_l) * g_l, each (B, n_l).
        y: the validated labels or targets.
    """

    net: MLP
    xp: Any
    W: list
    b: list
    fwd: passes.Forward
    bwd: passes.Backward
    Lam: Any
    h: list
    y: Any
    _eyes: dict = field(default_factory=dict, repr=False, compare=False)
    _a_tilde: dict = field(default_factory=dict, repr=False, compare=False)
    _device: Any = field(default=None, repr=False, compare=False)

    @property
    def B(self) -> int:
        """Batch size."""
        return self.fwd.a[0].shape[0]

    @property
    def L(self) -> int:
        """Number of layers."""
        return self.net.L

    @property
    def dtype(self):
        """Floating dtype of theta."""
        return self.fwd.a[0].dtype

    @property
    def device(self):
        """Device of the arrays (looked up once)."""
        if self._device is None:
            self._device = device_of(self.fwd.a[0])
        return self._device

    def eye(self, n: int):
        """Identity of size n in the namespace, dtype and device of the state (do not modify).

        Identities up to `EYE_CACHE` rows are made once per state and shared.
        """
        if n > EYE_CACHE:
            return self.xp.eye(n, dtype=self.dtype, device=self.device)
        if n not in self._eyes:
            self._eyes[n] = self.xp.eye(n, dtype=self.dtype, device=self.device)
        return self._eyes[n]

    def zeros(self, shape):
        """Zeros in the namespace, dtype and device of the state."""
        return self.xp.zeros(shape, dtype=self.dtype, device=self.device)

    def a_tilde(self, l: int):
        """ã_l = [a_l, 1] (a_l itself without biases), (B, n_l (+1)); shared: never modify."""
        a = self.fwd.a[l]
        if not self.net.bias:
            return a
        if l not in self._a_tilde:
            ones = self.xp.ones((a.shape[0], 1), dtype=a.dtype, device=self.device)
            self._a_tilde[l] = self.xp.concat([a, ones], axis=1)
        return self._a_tilde[l]


def build_state(net: MLP, theta, X, y) -> State:
    """Build the `State` of validated inputs (X of shape (B, n_0))."""
    xp = namespace(theta)
    W, b = net._Wb(theta)
    fwd = passes.forward(W, b, X, net.act)
    z_L = fwd.z[net.L]
    delta_L, Lam = net.loss_fn.derivatives(z_L, y)
    bwd = passes.backward(W, fwd, delta_L)
    h = [None] + [fwd.d2phi[l] * bwd.gamma[l] for l in range(1, net.L)]
    return State(net, xp, W, b, fwd, bwd, Lam, h, y)


def prepare(net: MLP, theta, X, y) -> State:
    """Validate (theta, X, y) against ``net`` and build their `State`."""
    if not isinstance(net, MLP):
        raise TypeError(f"expected net to be an esso_ref.MLP, got {type(net).__name__}")
    theta, X, y = net.check_inputs(theta, X, y)
    return build_state(net, theta, X, y)


def sample_state(state: State, i: int) -> State:
    """The `State` of sample i alone, sharing the batch's forward and backward values.

    Per-sample routes and their dense references then see the very same rounded forward
    pass (a forward pass of one row can round differently from the same row in a batch).
    """
    return subset_state(state, [i])


def subset_state(state: State, samples: list[int] | slice) -> State:
    """The `State` of the listed samples (in that order), from the batch's values.

    One sample and a slice of samples are views of the batch's rows; several listed samples are
    copies (``take``).
    """
    xp = state.xp
    if isinstance(samples, slice):
        def take(v):
            return v[samples, ...]
    elif len(samples) == 1:
        i = samples[0]

        def take(v):
            return v[i:i + 1, ...]
    else:
        index = xp.asarray(samples, device=state.device)

        def take(v):
            return xp.take(v, index, axis=0)

    def rows(values: list) -> list:
        return [None if v is None else take(v) for v in values]

    fwd = passes.Forward(rows(state.fwd.a), rows(state.fwd.z), rows(state.fwd.dphi),
                         rows(state.fwd.d2phi))
    bwd = passes.Backward(rows(state.bwd.delta), rows(state.bwd.gamma))
    return State(state.net, state.xp, state.W, state.b, fwd, bwd, take(state.Lam),
                 rows(state.h), take(state.y))
