r"""Independent derivative oracles (docs/verification.md).

- Complex step, eq. (38): for f analytic and real on real inputs,
  f'(x) v = Im f(x + i h v) / h + O(h^2), with no subtraction, so h = 1e-30 gives the derivative
  to machine precision. Applied to the loss (gradient), to the analytic gradient (HVP), to the
  logits (the Jacobian J of the Gauss-Newton reference) and to the loss gradient in the logits
  (the loss Hessian Lam).
- Central differences with Richardson extrapolation, eq. (39):
  D(h) = (f(x + h v) - f(x - h v)) / (2h) = f'(x) v + c_2 h^2 + c_4 h^4 + ...;
  D_1(h) = (4 D(h/2) - D(h)) / 3 and D_2(h) = (16 D_1(h/2) - D_1(h)) / 15 cancel the h^2 and h^4
  terms. Its own error estimate is |D_2 - D_1(h/2)| (D_1's error bounds D_2's) plus the
  round-off noise of f amplified by 1/h.

These use only the network's loss, gradient and forward code, never the curvature code they
check. Differences never cross a kink of phi (relu): directions that move a pre-activation across
0 (or off an exact 0) at every step are reported as invalid, since there the package's convention
phi'(0) = 0 applies and a difference quotient does not estimate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import device_of, namespace
from ..passes import forward

__all__ = [
    "FiniteDifference",
    "complex_step_gradient",
    "complex_step_hvp",
    "complex_step_jacobian",
    "complex_step_loss_hessian",
    "richardson_gradient",
    "richardson_hvp",
    "step_size",
]

_CHUNK = 128
_LEVELS = 8  # steps h, h/4, ..., h/4^7 tried for kink-free differences


def step_size(net, dtype_eps: float) -> float:
    """The complex step h: 1e-30 (float64) or 1e-12 (float32).

    For a kinked phi (relu) h is so small that h^2 underflows to 0 (1e-170, 1e-23): the real
    parts of a complex evaluation then equal the real evaluation exactly, and relu branches on
    them as on the real input, so the step follows the convention phi'(0) = 0 at an exact kink
    instead of a side chosen by the O(h^2) real parts.
    """
    if dtype_eps < 1e-10:
        return 1e-170 if net.act.kink else 1e-30
    return 1e-23 if net.act.kink else 1e-12


def _complex(theta):
    xp = namespace(theta)
    ctype = xp.complex128 if theta.dtype == xp.float64 else xp.complex64
    return xp, xp.astype(theta, ctype)


def complex_step_gradient(net, theta, X, y, h: float = 1e-30):
    """Gradient of the batch-mean loss by the complex step on the loss, eq. (38).

    All P directions e_j are evaluated as one batched forward pass per chunk of directions.
    """
    xp, theta_c = _complex(theta)
    P = net.num_params
    eye = xp.eye(P, dtype=theta_c.dtype, device=device_of(theta))
    parts = []
    for j in range(0, P, _CHUNK):
        shifted = theta_c[None, :] + (1j * h) * eye[j:min(j + _CHUNK, P), :]
        parts.append(xp.imag(net._loss(shifted, X, y)) / h)
    return xp.concat(parts)


def complex_step_hvp(net, theta, X, y, v, h: float = 1e-30):
    """H v = Im grad(theta + i h v) / h, eq. (38), on the analytic gradient of eq. (8)."""
    xp, theta_c = _complex(theta)
    return xp.imag(net._gradient(theta_c + (1j * h) * xp.astype(v, theta_c.dtype), X, y)) / h


def complex_step_jacobian(net, theta, X, h: float = 1e-30):
    """J_i = dz_L^i / dtheta for every sample, (B, n_L, P), from forward passes only, eq. (38)."""
    xp, theta_c = _complex(theta)
    P = net.num_params
    eye = xp.eye(P, dtype=theta_c.dtype, device=device_of(theta))
    Xc = xp.astype(X, theta_c.dtype)
    parts = []
    for j in range(0, P, _CHUNK):
        W, b = net._Wb(theta_c[None, :] + (1j * h) * eye[j:min(j + _CHUNK, P), :])
        parts.append(xp.imag(forward(W, b, Xc, net.act).z[net.L]) / h)   # (k, B, n_L)
    return xp.permute_dims(xp.concat(parts, axis=0), (1, 2, 0))


def complex_step_loss_hessian(net, z, y, h: float = 1e-30):
    """Lam_i = d^2 l / dz^2 for every sample, (B, n_L, n_L), by the complex step on dl/dz."""
    xp, zc = _complex(z)
    n = z.shape[1]
    eye = xp.eye(n, dtype=zc.dtype, device=device_of(z))
    cols = [xp.imag(net.loss_fn.grad(zc + (1j * h) * eye[k, :], y)) / h for k in range(n)]
    return xp.stack(cols, axis=2)


@dataclass
class FiniteDifference:
    """Richardson-extrapolated differences with their own error estimate.

    Attributes:
        value: D_2 per direction (rows of the directions; for the gradient, (P,)).
        error: estimated absolute error per entry: |D_2 - D_1| + amplified round-off.
        valid: per direction, False where every step crosses a kink (value is then meaningless).
    """

    value: Any
    error: Any
    valid: Any


def _signs(net, theta, X):
    """sign(z_l) of the hidden layers, concatenated: (..., B, sum n_l)."""
    xp = namespace(theta)
    W, b = net._Wb(theta)
    fwd = forward(W, b, X, net.act)
    if net.L == 1:
        return None
    return xp.concat([xp.sign(fwd.z[l]) for l in range(1, net.L)], axis=-1)


def _safe_steps(net, theta, X, E, h: float):
    """Per direction (rows of E), the largest h / 4^k whose evaluation points cross no kink.

    Returns a host list of steps, 0.0 where none of h, h/4, ..., h/4^7 is safe.
    """
    k = E.shape[0]
    if not net.act.kink or net.L == 1:
        return [h] * k
    xp = namespace(theta)
    ref = _signs(net, theta, X)
    steps = [0.0] * k
    for level in range(_LEVELS):
        step = h / 4.0**level
        same = xp.ones((k,), dtype=xp.bool, device=device_of(theta))
        for s in (step, -step, step / 2, -step / 2, step / 4, -step / 4):
            moved = _signs(net, theta[None, :] + s * E, X)
            same = same & xp.all(xp.reshape(moved == ref, (k, -1)), axis=1)
        for i, ok in enumerate(bool(v) for v in same):
            if ok and steps[i] == 0.0:
                steps[i] = step
        if all(s > 0 for s in steps):
            break
    return steps


def _richardson(D, h: float, noise, D_twin=None):
    """(D_2, |D_2 - D_1(h/2)| + round-off) from D(h), D(h/2), D(h/4), eq. (39).

    ``noise`` is the round-off of one evaluation of f; D_2 = (64 D(h/4) - 20 D(h/2) + D(h)) / 45
    amplifies it by at most (64 * 4 + 20 * 2 + 1) / 45 / h < 7 / h. ``D_twin`` evaluates D on
    the eps-perturbed input: 2 |D(h/4) - D_twin(h/4)| measures the round-off directly (it
    matters where f is flat, e.g. at an exactly zero gradient).
    """
    D0 = [D(h), D(h / 2), D(h / 4)]
    D1 = [(4.0 * D0[1] - D0[0]) / 3.0, (4.0 * D0[2] - D0[1]) / 3.0]
    D2 = (16.0 * D1[1] - D1[0]) / 15.0
    xp = namespace(D2)
    err = xp.abs(D2 - D1[1]) + 7.0 * noise / h
    if D_twin is not None:
        err = err + 2.0 * xp.abs(D0[2] - D_twin(h / 4))
    return D2, err


def richardson_gradient_estimate(net, theta, X, y, noise: float, h: float = 1e-2, twin=None):
    """Gradient by Richardson differences with its error estimate (`FiniteDifference`).

    Args:
        net: the network.
        theta: parameters (P,).
        X: inputs (B, n_0).
        y: labels or targets.
        noise: round-off of one loss evaluation (absolute).
        twin: (theta', X') perturbed by a few roundings, to measure the round-off of D.
        h: largest step; directions that would cross a kink use h / 4^k.
    """
    xp, P = namespace(theta), net.num_params
    eye = xp.eye(P, dtype=theta.dtype, device=device_of(theta))
    values, errors, valid = [], [], []
    for j in range(0, P, _CHUNK):
        E = eye[j:min(j + _CHUNK, P), :]
        steps = _safe_steps(net, theta, X, E, h)
        value = xp.zeros((E.shape[0],), dtype=theta.dtype, device=device_of(theta))
        error = xp.zeros_like(value)
        for step in sorted(set(steps) - {0.0}):

            def D(s, E=E, th=theta, X=X):
                up, down = net._loss(th[None, :] + s * E, X, y), net._loss(
                    th[None, :] - s * E, X, y)
                return (up - down) / (2.0 * s)

            D_twin = None if twin is None else (lambda s, E=E: D(s, E, *twin))
            v, e = _richardson(D, step, noise, D_twin)
            mask = xp.asarray([s == step for s in steps], device=device_of(theta))
            value, error = xp.where(mask, v, value), xp.where(mask, e, error)
        values.append(value)
        errors.append(error)
        valid += [s > 0 for s in steps]
    value, error = xp.concat(values), xp.concat(errors)
    return FiniteDifference(value, error, valid)


def richardson_hvp_estimate(net, theta, X, y, v, noise: float, h: float = 1e-2, twin=None):
    """H v by Richardson differences of the gradient along v, with its error estimate.

    ``noise`` is the round-off of one gradient evaluation (max-norm); ``twin`` as for
    `richardson_gradient_estimate`.
    """
    step = _safe_steps(net, theta, X, v[None, :], h)[0]
    if step == 0.0:
        return FiniteDifference(None, None, [False])

    def D(s, th=theta, X=X):
        return (net._gradient(th + s * v, X, y) - net._gradient(th - s * v, X, y)) / (2 * s)

    D_twin = None if twin is None else (lambda s: D(s, *twin))
    value, error = _richardson(D, step, noise, D_twin)
    return FiniteDifference(value, error, [True])


def richardson_gradient(net, theta, X, y, h: float = 1e-2):
    """Gradient by central differences of the loss with Richardson extrapolation, eq. (39)."""
    return richardson_gradient_estimate(net, theta, X, y, 0.0, h).value


def richardson_hvp(net, theta, X, y, v, h: float = 1e-2):
    """H v by central differences of the gradient along v, Richardson-extrapolated, eq. (39)."""
    return richardson_hvp_estimate(net, theta, X, y, v, 0.0, h).value
