"""Plug a PyTorch (torch.func) implementation into `esso_ref.check_implementation`.

`torch_callable` turns a function of PyTorch objects::

    fn(model, criterion, theta, X, y[, extra]) -> torch.Tensor

into the framework-neutral contract of ``check_implementation`` (NumPy in, array out):
``model`` is `to_torch` of the case's network, ``criterion`` its loss
module (``nn.CrossEntropyLoss()`` or ``nn.MSELoss()``, mean reduction), ``theta`` the flat
float parameters (``parameters_to_vector`` order, requires no grad), ``X`` / ``y`` tensors and
``extra`` the direction v (HVP) or the damping (Newton, a float). `flat_loss` gives the loss
as a function of the flat theta, the usual starting point of ``torch.func.grad`` / ``hessian``.
"""

from __future__ import annotations

import numpy as np

from .torch_adapter import to_torch

__all__ = ["criterion", "flat_loss", "torch_callable"]


def criterion(net):
    """The PyTorch loss module of ``net`` with mean reduction (equal to ``net.loss``)."""
    from torch import nn

    return nn.CrossEntropyLoss() if net.loss_name == "cross_entropy" else nn.MSELoss()


def flat_loss(model, crit):
    """``f(theta, X, y) = crit(model with parameters theta (X), y)``, differentiable in theta.

    theta is split in ``model.parameters()`` order (``parameters_to_vector``) and applied with
    ``torch.func.functional_call``, so ``torch.func.grad(f)`` / ``hessian(f)`` are flat.
    """
    import torch

    shapes = [(name, p.shape, p.numel()) for name, p in model.named_parameters()]

    def f(theta, X, y):
        params, start = {}, 0
        for name, shape, size in shapes:
            params[name] = theta[start:start + size].reshape(shape)
            start += size
        return crit(torch.func.functional_call(model, params, (X,)), y)

    return f


def _tensor(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def torch_callable(fn):
    """Wrap ``fn(model, criterion, theta, X, y[, extra])`` into the NumPy contract.

    Returns:
        ``g(net, theta, X, y[, extra])`` converting NumPy inputs to tensors (dtype kept, on the
        CPU), calling ``fn`` and returning its result as a NumPy array.
    """

    def wrapped(net, theta, X, y, *extra):
        model = to_torch(net, theta)
        args = [_tensor(a) for a in (theta, X, y)]
        more = [_tensor(e) if isinstance(e, np.ndarray) else e for e in extra]
        out = fn(model, criterion(net), *args, *more)
        return out.detach().cpu().numpy()

    wrapped.__name__ = getattr(fn, "__name__", "torch_callable")
    wrapped.__doc__ = fn.__doc__
    return wrapped
