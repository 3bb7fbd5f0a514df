r"""The multilayer perceptron: spec, seeded init, flat parameters, loss, gradients.

docs/math.md, eqs. (1)-(8). The flat parameter vector theta stores, for l = 1..L, W_l row-major
then b_l: exactly the order of ``torch.nn.utils.parameters_to_vector`` on
``nn.Sequential(Linear, act, ..., Linear)``, so vectors and P x P matrices compare one-to-one.
"""

from __future__ import annotations

from typing import Any

from . import passes
from ._checks import check_batch, check_finite, check_real_float, check_sizes
from .activations import get_activation
from .backend import get_namespace, namespace, xp_of
from .losses import get_loss

__all__ = ["MLP", "flatten"]


def flatten(params: list) -> Any:
    """Stack [(W_1, b_1), ..., (W_L, b_L)] into theta (W_l row-major, then b_l), eq. (3).

    Args:
        params: list of (W_l, b_l); W_l of shape (n_l, n_{l-1}) or (k, n_l, n_{l-1}) (leading
            batch dimensions are kept); b_l None for networks without biases.

    Returns:
        theta of shape (P,) (or (k, P)), in PyTorch's ``parameters_to_vector`` order.

    Raises:
        ValueError: for an empty list.
    """
    if not params:
        raise ValueError("expected at least one (W, b) pair, got an empty list")
    xp = xp_of(params[0][0])
    lead = tuple(params[0][0].shape[:-2])
    parts = []
    for W, b in params:
        parts.append(xp.reshape(W, (*lead, -1)))
        if b is not None:
            parts.append(b)
    return xp.concat(parts, axis=-1)


class MLP:
    """A multilayer perceptron with a per-sample loss on its last pre-activation z_L.

    Args:
        sizes: widths (n_0, n_1, ..., n_L); at least two entries, all positive.
        activation: name of the hidden activation (see ``esso_ref.activations.ACTIVATIONS``).
        loss: ``"cross_entropy"`` (integer labels) or ``"mse"``.
        bias: whether every layer has a bias b_l (``False`` as ``nn.Linear(bias=False)``).

    Raises:
        ValueError: for bad sizes or unknown activation / loss names, and for
            ``cross_entropy`` with a single output (its loss is identically 0).
    """

    def __init__(self, sizes, activation: str = "tanh", loss: str = "cross_entropy",
                 bias: bool = True):
        self.sizes = check_sizes(sizes)
        self.act = get_activation(activation)
        self.loss_fn = get_loss(loss)
        if self.loss_fn.name == "cross_entropy" and self.sizes[-1] < 2:
            raise ValueError(
                f"expected at least 2 outputs for loss 'cross_entropy', got sizes "
                f"{list(self.sizes)}: the softmax of one logit is 1, so the loss, its gradient "
                "and its Hessian are identically 0; use 2 outputs for 2 classes, or loss 'mse'")
        if not isinstance(bias, bool):
            raise TypeError(f"expected bias to be True or False, got {bias!r}")
        self.bias = bias
        self.L = len(self.sizes) - 1
        self._offsets = self._layout()

    def __repr__(self) -> str:
        return (f"MLP({list(self.sizes)}, activation={self.act.name!r}, "
                f"loss={self.loss_fn.name!r}, bias={self.bias})")

    @property
    def activation(self) -> str:
        """Name of the hidden activation."""
        return self.act.name

    @property
    def loss_name(self) -> str:
        """Name of the loss."""
        return self.loss_fn.name

    def _layout(self) -> list[tuple[int, int, int]]:
        """(start of W_l, start of b_l, end of layer l) in theta, for l = 1..L."""
        out, start = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            mid = start + n_out * n_in
            end = mid + (n_out if self.bias else 0)
            out.append((start, mid, end))
            start = end
        return out

    @property
    def num_params(self) -> int:
        """P = sum_l n_l (n_{l-1} + 1) (without the +1 when there are no biases)."""
        return self._offsets[-1][2]

    @property
    def rank_bound(self) -> int:
        """Rows of the factor A of one sample: r = n_L + 2 (n_1 + ... + n_{L-1}), eq. (15)."""
        return self.sizes[-1] + 2 * sum(self.sizes[1:-1])

    def layer_slice(self, l: int) -> slice:
        """The slice of theta holding layer l's parameters (W_l, then b_l), l = 1..L."""
        start, _, end = self._offsets[l - 1]
        return slice(start, end)

    def init(self, seed: int = 0, dtype: str = "float64", xp=None, device=None) -> Any:
        """Seeded parameters theta, eq. (3), drawn as PyTorch's default ``nn.Linear`` init.

        W_l and b_l are uniform on [-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})], drawn on the host by
        NumPy's PCG64 generator seeded with ``seed`` (layer by layer, W then b), then moved to
        the requested backend. The same seed gives the same theta on every backend.

        Args:
            seed: non-negative integer seed.
            dtype: ``"float64"`` (default) or ``"float32"``.
            xp: backend: ``None``/``"numpy"``, ``"cupy"``, ``"array_api_strict"`` or a namespace.
            device: a device of that backend (default device when None).

        Returns:
            theta, shape (P,).
        """
        from .backend import host_uniform

        if dtype not in ("float32", "float64"):
            raise ValueError(f"expected dtype 'float32' or 'float64', got {dtype!r}")
        target = get_namespace(xp) if xp is None or isinstance(xp, str) else xp
        parts = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            bound = 1.0 / n_in**0.5
            count = n_out * n_in + (n_out if self.bias else 0)
            parts.append((count, bound))
        host = host_uniform(seed, parts)
        kw = {} if device is None else {"device": device}
        return target.asarray(host, dtype=getattr(target, dtype), **kw)

    def unflatten(self, theta) -> list[tuple[Any, Any]]:
        """Split theta (..., P), ordered as in eq. (3), into [(W_1, b_1), ..., (W_L, b_L)].

        b_l is None for networks without biases.
        """
        xp = xp_of(theta)
        lead = tuple(theta.shape[:-1])
        out = []
        for (start, mid, end), n_in, n_out in zip(
            self._offsets, self.sizes[:-1], self.sizes[1:], strict=True
        ):
            W = xp.reshape(theta[..., start:mid], (*lead, n_out, n_in))
            b = theta[..., mid:end] if self.bias else None
            out.append((W, b))
        return out

    def _Wb(self, theta) -> tuple[list, list]:
        """[None, W_1..W_L] and [None, b_1..b_L] views of theta (no validation)."""
        params = self.unflatten(theta)
        return [None] + [W for W, _ in params], [None] + [b for _, b in params]

    # ---- validation -----------------------------------------------------------------------
    def check_theta(self, theta) -> Any:
        """Validate theta: a finite float32/float64 array of shape (P,)."""
        namespace(theta, names=("theta",))
        check_real_float("theta", theta)
        if tuple(theta.shape) != (self.num_params,):
            raise ValueError(
                f"expected theta of shape ({self.num_params},) for {self!r}, "
                f"got {tuple(theta.shape)}"
            )
        check_finite("theta", theta)
        return theta

    def check_inputs(self, theta, X, y):
        """Validate theta, X and y; return (theta, X (B, n_0), y)."""
        self.check_theta(theta)
        X, y = check_batch(self.sizes, self.loss_fn.integer_targets, theta, X, y)
        return theta, X, y

    # ---- passes ----------------------------------------------------------------------------
    def forward(self, theta, X) -> passes.Forward:
        """Forward cache (z_l, a_l, phi'(z_l), phi''(z_l)) of X at theta, eq. (1)."""
        self.check_theta(theta)
        xp = namespace(theta, X, names=("theta", "X"))
        if X.ndim == 1:
            X = xp.reshape(X, (1, -1))
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"expected X of shape (B, {self.sizes[0]}), got {tuple(X.shape)}")
        check_real_float("X", X)
        check_finite("X", X)
        W, b = self._Wb(theta)
        return passes.forward(W, b, X, self.act)

    def predict(self, theta, X) -> Any:
        """Logits / predictions z_L of the forward pass, eq. (1), shape (B, n_L)."""
        return self.forward(theta, X).z[self.L]

    def _loss(self, theta, X, y):
        W, b = self._Wb(theta)
        fwd = passes.forward(W, b, X, self.act)
        xp = xp_of(theta)
        return xp.mean(self.loss_fn.value(fwd.z[self.L], y), axis=-1)

    def _gradient(self, theta, X, y):
        """Batch-mean gradient without validation (complex-safe), eq. (8)."""
        W, b = self._Wb(theta)
        fwd = passes.forward(W, b, X, self.act)
        bwd = passes.backward(W, fwd, self.loss_fn.grad(fwd.z[self.L], y))
        grads = passes.layer_gradients(fwd, bwd.delta, 1.0 / X.shape[0], self.bias)
        return flatten(grads)

    def loss(self, theta, X, y) -> Any:
        """Batch-mean loss (1/B) sum_i l(z_L^i, y_i), eq. (6); a 0-d array."""
        theta, X, y = self.check_inputs(theta, X, y)
        return self._loss(theta, X, y)

    def gradient(self, theta, X, y) -> Any:
        """Gradient of the batch-mean loss, eqs. (7)-(8); shape (P,)."""
        theta, X, y = self.check_inputs(theta, X, y)
        return self._gradient(theta, X, y)

    def per_sample_gradients(self, theta, X, y) -> Any:
        """Gradient of each sample's own loss l_i (no 1/B), eq. (8); shape (B, P)."""
        theta, X, y = self.check_inputs(theta, X, y)
        xp = namespace(theta)
        W, b = self._Wb(theta)
        fwd = passes.forward(W, b, X, self.act)
        bwd = passes.backward(W, fwd, self.loss_fn.grad(fwd.z[self.L], y))
        parts = []
        for l in range(1, self.L + 1):
            outer = bwd.delta[l][:, :, None] * fwd.a[l - 1][:, None, :]
            parts.append(xp.reshape(outer, (X.shape[0], -1)))
            if self.bias:
                parts.append(bwd.delta[l])
        return xp.concat(parts, axis=-1)
