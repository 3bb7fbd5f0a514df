r"""Error estimates for one input, and reference eigendecompositions (docs/verification.md).

Every tolerance of ``er.verify`` is ``c * eps * scale + C_PERT * est`` for that input:

- ``scale``: the magnitude of the quantities summed (max|reference|, or a running-absolute-value
  bound such as max(|A|^T |C| |A|) for a product, or |H|_2 for eigenvalues);
- ``est``: the change of the reference when theta and X are perturbed by independent relative
  amounts of 2 to 4 eps. Rounding errors are backward errors of that size, so this measures
  how strongly the quantity amplifies them at this input (large weights, saturated units,
  cancellation in sums); it is 0 for an exactly zero gradient and never divides by anything.

Reference eigendecompositions of the dense matrices use their known rank bound k (H = A^T C A
has at most B r non-zero eigenvalues): a randomised range Q = orth(H Omega) with k + 10 columns,
then eigh(Q^T H Q). The residual max|H - V diag(mu) V^T| is checked, and a full eigh is used
whenever it is not at round-off level (or k is not much smaller than P).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..backend import device_of, host_normal, host_rng, namespace
from ..curvature import linalg

__all__ = ["C_PERT", "Eig", "max_abs", "perturb", "reference_eigh", "tolerance"]

C_PERT = 64.0
"""Safety factor on the perturbation estimate (one random perturbation, typical not worst)."""


def max_abs(x) -> float:
    """The largest |x| as a float (0 for an empty array)."""
    xp = namespace(x)
    return float(xp.max(xp.abs(x))) if x.size else 0.0


def fro(x) -> float:
    """Frobenius / 2-norm of x as a float, with x divided by its largest |entry| first.

    No square over- or underflows: |H| of a network with inputs of 1e100 is about 1e200.
    """
    xp = namespace(x)
    top = max_abs(x)
    if not top > 0 or not math.isfinite(top):
        return top
    w = x / top
    return top * float(xp.sqrt(xp.sum(w * w)))


def perturb(x, seed: int):
    """The array x (1 + eps u), |u| uniform on [2, 4] with random signs.

    Every non-zero entry moves by a few roundings (with |u| < 1/2 it would round back to x).
    """
    xp = namespace(x)
    eps = float(xp.finfo(x.dtype).eps)
    rng = host_rng(seed)
    u = rng.uniform(2.0, 4.0, tuple(x.shape)) * rng.choice([-1.0, 1.0], tuple(x.shape))
    return x * (1.0 + eps * xp.asarray(u, dtype=x.dtype, device=device_of(x)))


def tolerance(scale: float, est: float, c_eps: float, eps: float) -> tuple[float, float]:
    """(S, tol_eps): the normaliser S of an absolute error and its tolerance in eps units.

    The absolute tolerance is c_eps eps scale + C_PERT est; the reported error is err / S with
    S = max(scale, est) (1 when both are 0, where only an exact match passes).
    """
    S = max(scale, est)
    if not S > 0 or not math.isfinite(S):
        return 1.0, 0.0
    return S, c_eps * scale / S + C_PERT * (est / S) / eps  # S eps may underflow


@dataclass
class Eig:
    """Eigenpairs of a symmetric P x P matrix: values mu (k,), vectors V (P, k); others are 0."""

    mu: Any
    V: Any
    P: int

    def full(self):
        """All P eigenvalues, ascending (the implicit zeros included)."""
        xp = namespace(self.mu)
        zeros = xp.zeros((self.P - self.mu.shape[0],), dtype=self.mu.dtype,
                         device=device_of(self.mu))
        return xp.sort(xp.concat([self.mu, zeros]))

    def norm2(self) -> float:
        """|M|_2."""
        return max_abs(self.mu)

    def apply(self, fmu, lam: float, d):
        """(f(M) + lam I) d, with f(0) = 0 on the implicit zero eigenvalues."""
        xp = namespace(d)
        return self.V @ (fmu * (xp.matrix_transpose(self.V) @ d)) + lam * d


def reference_eigh(H, rank: int, seed: int = 0) -> Eig:
    """Eigenpairs of the symmetric H whose rank is at most ``rank`` (module docstring)."""
    xp, P = namespace(H), H.shape[0]
    k = rank + 10
    if 2 * k < P:
        Omega = xp.asarray(host_normal(seed, (P, k)), dtype=H.dtype, device=device_of(H))
        Q, _ = linalg.qr(H @ Omega)
        S = xp.matrix_transpose(Q) @ H @ Q
        mu, W = linalg.eigh(0.5 * (S + xp.matrix_transpose(S)))
        V = Q @ W
        resid = max_abs(H - (V * mu) @ xp.matrix_transpose(V))
        eps = float(xp.finfo(H.dtype).eps)
        if resid <= 10.0 * k * eps * max_abs(H):
            return Eig(mu, V, P)
    mu, V = linalg.eigh(H)
    return Eig(mu, V, P)
