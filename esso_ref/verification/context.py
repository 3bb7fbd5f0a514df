"""Shared inputs of the checks: the state, a perturbed copy, and cached dense references."""

from __future__ import annotations

import math

from ..backend import device_of, host_normal, namespace
from ..curvature.dense import dense_state
from ..curvature.factor import HessianFactor
from ..curvature.state import State, build_state, prepare
from . import errors, oracles
from .report import Check

__all__ = ["Context", "rel"]


def rel(a, b) -> float:
    """max|a - b| / max|b| (absolute when b = 0)."""
    xp = namespace(a, b)
    scale = float(xp.max(xp.abs(b))) if b.size else 0.0
    err = float(xp.max(xp.abs(a - b))) if a.size else 0.0
    return err / scale if scale > 0 else err


class Context:
    """The state at (theta, X, y), its eps-perturbed twin, a direction v and lazy references."""

    def __init__(self, state: State, theta, X, y, damping: float, max_dense: int, seed: int):
        self.state, self.theta, self.X, self.y = state, theta, X, y
        self.net, self.xp = state.net, state.xp
        self.damping, self.max_dense, self.seed = damping, max_dense, seed
        self.eps = float(self.xp.finfo(state.dtype).eps)
        self.tiny = float(self.xp.finfo(state.dtype).smallest_normal)
        self.v = self.direction(seed)
        self.theta_p = errors.perturb(theta, 1000 + seed)
        self.X_p = errors.perturb(X, 2000 + seed)
        self.state_p = build_state(self.net, self.theta_p, self.X_p, y)
        self._cache = {}

    def cached(self, key, build):
        """``build()`` once per key."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def direction(self, seed: int):
        """A seeded standard normal vector in parameter space."""
        host = host_normal(seed, (self.net.num_params,))
        return self.xp.asarray(host, dtype=self.state.dtype, device=device_of(self.theta))

    @property
    def dense_ok(self) -> bool:
        """Whether the dense P x P routes run (P <= max_dense_params)."""
        return self.net.num_params <= self.max_dense

    def skip_reason(self) -> str:
        """Why the dense routes were skipped, and how to run them."""
        return (f"P = {self.net.num_params} > max_dense_params = {self.max_dense}: the dense "
                f"P x P reference needs {8 * self.net.num_params**2 / 2**20:.0f} MiB per matrix; "
                f"pass max_dense_params={self.net.num_params} (--max-dense-params) to run it")

    def dense(self, perturbed: bool = False):
        """Dense Hessian from HVP columns (symmetrised), at the input or its perturbed twin."""
        return self.cached(("H", perturbed), lambda: dense_state(
            self.state_p if perturbed else self.state))

    def dense_change(self):
        """(max|H' - H|, |H' - H|_F): the Hessian's response to the eps perturbation."""
        def build():
            D = self.dense(True) - self.dense()
            return errors.max_abs(D), errors.fro(D)
        return self.cached("dH", build)

    def factor(self, curvature: str = "hessian", perturbed: bool = False) -> HessianFactor:
        """The structured factorisation (cached)."""
        state = self.state_p if perturbed else self.state
        return self.cached(("factor", curvature, perturbed),
                           lambda: HessianFactor(state, curvature))

    def eig(self, key, M, rank: int):
        """Cached reference eigendecomposition of the dense M (rank bound ``rank``)."""
        return self.cached(("eig", key), lambda: errors.reference_eigh(M, rank, self.seed + 7))

    def jacobian(self, perturbed: bool = False):
        """J_i = dz_L^i / dtheta, (B, n_L, P), by the complex step (cached)."""
        def build():
            th, X = (self.theta_p, self.X_p) if perturbed else (self.theta, self.X)
            return oracles.complex_step_jacobian(self.net, th, X,
                                                 oracles.step_size(self.net, self.eps))
        return self.cached(("J", perturbed), build)

    def loss_terms(self):
        """T_i (B, n_L, n_L): magnitudes of the terms of Lam_i, diag(p) + p p^T or (2/n_L) I.

        Lam = diag(p) - p p^T cancels as p_y -> 1, so its rounding is eps T, not eps |Lam|.
        """
        xp, z = self.xp, self.state.fwd.z[self.net.L]
        n = z.shape[1]
        eye = xp.eye(n, dtype=z.dtype, device=device_of(z))
        if not self.net.loss_fn.integer_targets:
            return xp.broadcast_to((2.0 / n) * eye, (z.shape[0], n, n))
        e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
        p = e / xp.sum(e, axis=1, keepdims=True)
        return p[:, :, None] * eye + p[:, :, None] * p[:, None, :]

    def hessian_terms(self):
        """Per-sample |J_i|^T T_i |J_i| (B, P, P): the Gauss-Newton terms before cancellation."""
        def build():
            aJ = self.xp.abs(self.jacobian())
            return self.xp.matrix_transpose(aJ) @ self.loss_terms() @ aJ
        return self.cached("Ht", build)

    def terms_scale(self) -> tuple[float, float]:
        """(max, Frobenius norm) of the batch mean of `hessian_terms`."""
        def build():
            Ht = self.xp.mean(self.hessian_terms(), axis=0)
            return errors.max_abs(Ht), errors.fro(Ht)
        return self.cached("Ht_scale", build)

    def step_underflow(self, value, what: str) -> str | None:
        """Why a complex-step reference of ``value``'s size cannot be checked against (or None).

        Its imaginary parts are h |value|: below smallest normal / eps they carry no precision.
        """
        top = errors.max_abs(value)
        h = oracles.step_size(self.net, self.eps)
        if top == 0 or h * top >= self.tiny / self.eps:
            return None
        return (f"the complex step's imaginary parts h |{what}| ({h * top:.1e}) are below the "
                "normal range: the reference has no precision left")

    def jacobian_underflow(self) -> str | None:
        """`step_underflow` of the complex-step Jacobian, the Gauss-Newton references' base."""
        return self.step_underflow(self.jacobian(), "J")

    def ggn(self, perturbed: bool = False):
        """Per-sample J_i^T Lam_i J_i (B, P, P) with J and Lam from the complex step."""
        def build():
            state = self.state_p if perturbed else self.state
            h = oracles.step_size(self.net, self.eps)
            J = self.jacobian(perturbed)
            Lam = oracles.complex_step_loss_hessian(self.net, state.fwd.z[self.net.L], self.y, h)
            Jt = self.xp.matrix_transpose(J)
            G = Jt @ Lam @ J
            absG = self.xp.abs(Jt) @ self.xp.abs(Lam) @ self.xp.abs(J)
            return 0.5 * (G + self.xp.matrix_transpose(G)), absG
        return self.cached(("ggn", perturbed), build)

    def batch_ggn(self, perturbed: bool = False):
        """The batch-mean Gauss-Newton reference (1/B) sum_i J_i^T Lam_i J_i, (P, P)."""
        return self.cached(("GGN", perturbed), lambda: self.xp.mean(self.ggn(perturbed)[0], axis=0))

    def sample_hessian(self, i: int, perturbed: bool = False):
        """Sample i's own Hessian (of l_i, no 1/B) from P HVPs on the one-sample batch."""
        def build():
            th, X = (self.theta_p, self.X_p) if perturbed else (self.theta, self.X)
            return dense_state(prepare(self.net, th, X[i:i + 1, :], self.y[i:i + 1, ...]))
        return self.cached(("H_i", i, perturbed), build)

    def bounded(self, name, route_a, route_b, diff: float, scale: float, est: float,
                c_eps: float, note: str) -> Check:
        """A check of an absolute error ``diff`` against c_eps eps scale + C_PERT est.

        Skipped when the reference's scale overflows, or when the scale and the difference
        both lie below smallest normal / eps, where the operands' low bits are subnormal and no
        relative check is possible (a larger difference still fails).
        """
        if scale == math.inf:
            return self.skip(name, route_a, route_b, "the reference overflows: no check possible")
        if scale < self.tiny / self.eps and diff < self.tiny / self.eps:
            return self.skip(name, route_a, route_b, f"the quantities ({scale:.1e}) are below "
                             "the normal range: their rounding is not relative")
        S, tol_eps = errors.tolerance(scale, est, c_eps, self.eps)
        return Check.compare(name, route_a, route_b, diff / S, tol_eps, self.eps, note)

    def skip(self, name, a, b, reason: str | None = None) -> Check:
        """A check skipped (for size unless ``reason`` says otherwise)."""
        return Check.skip(name, a, b, reason or self.skip_reason(), self.eps)
