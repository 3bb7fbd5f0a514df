r"""Independent derivative oracles (docs/verification.md).

- Complex step, eq. (38): for f analytic and real on real inputs,
  f'(x) v = Im f(x + i h v) / h + O(h^2), with no subtraction, so h = 1e-30 gives the derivative
  to machine precision. Applied to the loss (gradient) and to the analytic gradient (HVP).
- Central differences with Richardson extrapolation, eq. (39):
  D(h) = (f(x + h v) - f(x - h v)) / (2h) = f'(x) v + c_2 h^2 + c_4 h^4 + ...;
  D_1(h) = (4 D(h/2) - D(h)) / 3 and D_2(h) = (16 D_1(h/2) - D_1(h)) / 15 cancel the h^2 and h^4
  terms, leaving O(h^6) truncation plus O(eps / h) round-off.

These use only the network's loss and gradient code, never the curvature code they check.
"""

from __future__ import annotations

from ..backend import device_of, namespace

__all__ = ["complex_step_gradient", "complex_step_hvp", "richardson_gradient", "richardson_hvp"]

_CHUNK = 128


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


def _kink_safe(net, theta, X, E, h: float) -> float:
    """The largest step h' = h / 4^k that crosses no kink of phi (h for smooth phi).

    No hidden pre-activation may change sign between theta and theta +- h' E (rows of E are
    directions); the search stops at 1e-9.
    """
    if not net.act.kink:
        return h
    xp = namespace(theta)
    from ..passes import forward

    def signs(t):
        W, b = net._Wb(t)
        fwd = forward(W, b, X, net.act)
        return [fwd.z[l] > 0 for l in range(1, net.L)]

    ref = signs(theta)
    while h > 1e-9:
        same = all(bool(xp.all(s == r)) for step in (h, -h)
                   for s, r in zip(signs(theta[None, :] + step * E), ref, strict=True))
        if same:
            return h
        h /= 4.0
    return h


def _richardson(D, h: float):
    """Two Richardson levels on the central difference D(h), eq. (39)."""
    D0 = [D(h), D(h / 2), D(h / 4)]
    D1 = [(4.0 * D0[1] - D0[0]) / 3.0, (4.0 * D0[2] - D0[1]) / 3.0]
    return (16.0 * D1[1] - D1[0]) / 15.0


def richardson_gradient(net, theta, X, y, h: float = 1e-2):
    """Gradient by central differences of the loss with Richardson extrapolation, eq. (39)."""
    xp, P = namespace(theta), net.num_params
    eye = xp.eye(P, dtype=theta.dtype, device=device_of(theta))
    parts = []
    for j in range(0, P, _CHUNK):
        E = eye[j:min(j + _CHUNK, P), :]

        def D(step, E=E):
            up, down = net._loss(theta[None, :] + step * E, X, y), net._loss(
                theta[None, :] - step * E, X, y)
            return (up - down) / (2.0 * step)

        parts.append(_richardson(D, _kink_safe(net, theta, X, E, h)))
    return xp.concat(parts)


def richardson_hvp(net, theta, X, y, v, h: float = 1e-2):
    """H v by central differences of the gradient along v, Richardson-extrapolated, eq. (39)."""

    def D(step):
        up = net._gradient(theta + step * v, X, y)
        down = net._gradient(theta - step * v, X, y)
        return (up - down) / (2.0 * step)

    return _richardson(D, _kink_safe(net, theta, X, v[None, :], h))
