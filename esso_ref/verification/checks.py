"""Every curvature quantity against an independent route (docs/verification.md).

Each ``check_*`` function returns a list of :class:`Check` rows. Errors are max-norm errors
relative to the reference (``rel``), or the stated normalised quantity; tolerances are in units
of the dtype's machine epsilon.
"""

from __future__ import annotations

import math
import warnings

from ..backend import device_of, host_normal, namespace
from ..curvature import linalg
from ..curvature.api import _dense_newton, _layerwise_newton
from ..curvature.dense import dense_state
from ..curvature.factor import HessianFactor
from ..curvature.hvp import hvp_state
from ..curvature.layerwise import layer_block_dense, layer_spectra
from ..curvature.spectral import adjust
from ..curvature.state import State
from . import oracles
from .report import Check

__all__ = ["GROUPS", "Context", "rel"]

GROUPS = ("gradient", "hvp", "hessian", "factor", "spectrum", "newton")

# tolerances in eps units (float64: 450 eps ~ 1e-13, 4.5e7 eps ~ 1e-8)
TOL_EXACT = 450.0
TOL_ADJOINT = 45.0
TOL_IDENTITY = 4500.0
TOL_FD = 4.5e7
TOL_BACKWARD = 1000.0


def rel(a, b) -> float:
    """max|a - b| / max|b| (absolute when b = 0)."""
    xp = namespace(a, b)
    scale = float(xp.max(xp.abs(b))) if b.size else 0.0
    err = float(xp.max(xp.abs(a - b))) if a.size else 0.0
    return err / scale if scale > 0 else err


class Context:
    """Shared inputs of the checks: the state, its eps, a direction v and the dense H (lazy)."""

    def __init__(self, state: State, theta, X, y, damping: float, max_dense: int, seed: int):
        self.state, self.theta, self.X, self.y = state, theta, X, y
        self.net, self.xp = state.net, state.xp
        self.damping, self.max_dense = damping, max_dense
        self.eps = float(self.xp.finfo(state.dtype).eps)
        self.v = self.direction(seed)
        self._dense = None
        self._factors = {}

    def direction(self, seed: int):
        """A seeded standard normal vector in parameter space."""
        host = host_normal(seed, (self.net.num_params,))
        return self.xp.asarray(host, dtype=self.state.dtype, device=device_of(self.theta))

    @property
    def dense_ok(self) -> bool:
        """Whether the dense P x P routes run (P <= max_dense_params)."""
        return self.net.num_params <= self.max_dense

    def skip_reason(self) -> str:
        """Why the dense routes were skipped."""
        return (f"P = {self.net.num_params} > max_dense_params = {self.max_dense}; "
                "raise max_dense_params to run it")

    def dense(self):
        """Dense Hessian from HVP columns (symmetrised)."""
        if self._dense is None:
            self._dense = dense_state(self.state)
        return self._dense

    def factor(self, curvature: str = "hessian") -> HessianFactor:
        """The structured factorisation (cached)."""
        if curvature not in self._factors:
            self._factors[curvature] = HessianFactor(self.state, curvature)
        return self._factors[curvature]

    def compare(self, name, a, b, ref, tol_eps, note="max-norm relative") -> Check:
        """Check ``rel(ref_route_value, reference)``."""
        return Check.compare(name, a, b, rel(ref[0], ref[1]), tol_eps, self.eps, note)

    def skip(self, name, a, b) -> Check:
        """A dense check skipped for size."""
        return Check.skip(name, a, b, self.skip_reason(), self.eps)


def _direct_loss(ctx: Context) -> float:
    """The batch loss by the textbook formula: mean of -log softmax(z)_y, or of (z - y)^2."""
    xp, net = ctx.xp, ctx.net
    z = ctx.state.fwd.z[net.L]
    if net.loss_fn.integer_targets:
        e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
        p = e / xp.sum(e, axis=1, keepdims=True)
        onehot = xp.astype(xp.arange(z.shape[1], device=device_of(z)) == ctx.y[:, None], z.dtype)
        return float(xp.mean(-xp.log(xp.sum(p * onehot, axis=1))))
    return float(xp.mean((z - ctx.y) ** 2))


def check_gradient(ctx: Context) -> list[Check]:
    """Loss vs the textbook formula; gradient vs complex step and Richardson differences."""
    net, th, X, y = ctx.net, ctx.theta, ctx.X, ctx.y
    g = net._gradient(th, X, y)
    loss, direct = float(net._loss(th, X, y)), _direct_loss(ctx)
    names = ("loss/direct_formula", "log-sum-exp eq. (4)-(6)", "mean -log p_y / (z-y)^2")
    if math.isfinite(direct):
        loss_row = Check.compare(*names, abs(loss - direct) / (abs(loss) or 1.0),
                                 64.0 * max(1.0, float(net.sizes[-1])), ctx.eps, "relative")
    else:
        loss_row = Check.skip(*names, "softmax p_y underflows: the textbook formula is not "
                              "defined in floating point here", ctx.eps)
    return [
        loss_row,
        ctx.compare("gradient/complex_step", "backprop eq. (8)", "complex step eq. (38)",
                    (g, oracles.complex_step_gradient(net, th, X, y)), TOL_EXACT),
        ctx.compare("gradient/richardson", "backprop eq. (8)", "central diff eq. (39)",
                    (g, oracles.richardson_gradient(net, th, X, y)), TOL_FD),
    ]


def check_hvp(ctx: Context) -> list[Check]:
    """R-operator HVP vs complex step and Richardson; dot-product symmetry."""
    xp, net, th, X, y, v = ctx.xp, ctx.net, ctx.theta, ctx.X, ctx.y, ctx.v
    u = ctx.direction(12345)
    Hv, Hu = (hvp_state(ctx.state, w[None, :])[0, :] for w in (v, u))
    sym = abs(float(xp.vecdot(u, Hv) - xp.vecdot(v, Hu))) / (float(
        xp.linalg.vector_norm(u) * xp.linalg.vector_norm(Hv)) or 1.0)
    return [
        ctx.compare("hvp/complex_step", "R-operator eq. (11)", "complex step eq. (38)",
                    (Hv, oracles.complex_step_hvp(net, th, X, y, v)), TOL_EXACT),
        ctx.compare("hvp/richardson", "R-operator eq. (11)", "central diff eq. (39)",
                    (Hv, oracles.richardson_hvp(net, th, X, y, v)), TOL_FD),
        Check.compare("hvp/symmetry", "u.(Hv)", "v.(Hu)", sym, TOL_EXACT, ctx.eps,
                      "|u.Hv - v.Hu| / (|u| |Hv|)"),
    ]


def check_hessian(ctx: Context) -> list[Check]:
    """Dense H: symmetry of the raw HVP columns, and H v vs the R-operator."""
    if not ctx.dense_ok:
        return [ctx.skip("hessian/symmetry", "HVP columns", "transpose")]
    raw = dense_state(ctx.state, symmetric=False)
    xp = ctx.xp
    asym = rel(raw, xp.matrix_transpose(raw))
    return [Check.compare("hessian/symmetry", "HVP columns", "transpose", asym, TOL_EXACT,
                          ctx.eps, "max|H - H^T| / max|H|")]


def check_factor(ctx: Context) -> list[Check]:
    """A^T C A vs dense; structured Gram vs materialised A A^T; adjoint dot-product test."""
    xp, f = ctx.xp, ctx.factor()
    w = ctx.xp.asarray(host_normal(7, (f.rank_bound,)), dtype=ctx.state.dtype,
                       device=device_of(ctx.theta))
    Av, ATw = f.apply_A(ctx.v), f.apply_AT(w)
    adj = abs(float(xp.vecdot(Av, w) - xp.vecdot(ctx.v, ATw))) / (float(
        xp.linalg.vector_norm(Av) * xp.linalg.vector_norm(w)) or 1.0)
    rows = [Check.compare("factor/adjoint", "<Av, w>", "<v, A^T w>", adj, TOL_ADJOINT, ctx.eps,
                          "|<Av,w> - <v,A^T w>| / (|Av| |w|)")]
    if not ctx.dense_ok:
        return [*rows, ctx.skip("factor/dense", "A^T C A", "HVP columns"),
                ctx.skip("factor/gram", "structured G", "A A^T materialised")]
    A = f.materialize_A()
    AtCA, AAt = xp.matrix_transpose(A) @ f.C @ A, A @ xp.matrix_transpose(A)
    return [
        *rows,
        ctx.compare("factor/dense", "A^T C A eq. (17)", "HVP columns eq. (12)",
                    (AtCA, ctx.dense()), TOL_EXACT),
        ctx.compare("factor/gram", "structured G eq. (21)", "A A^T materialised",
                    (f.gram(), AAt), TOL_EXACT),
    ]


def check_spectrum(ctx: Context) -> list[Check]:
    """Structured eigenvalues vs dense eigvalsh; trace / Frobenius identities; layer blocks."""
    if not ctx.dense_ok:
        return [ctx.skip("spectrum/dense", "structured eq. (25)", "dense eigvalsh")]
    xp, H = ctx.xp, ctx.dense()
    spec = ctx.factor().eigh()
    ev = linalg.eigvalsh(H)
    norm2 = float(xp.max(xp.abs(ev)))
    scale = norm2 if norm2 > 0 else 1.0
    err = float(xp.max(xp.abs(spec.full() - ev))) / scale
    mu = spec.values
    tr, fro2 = float(xp.linalg.trace(H)), float(xp.sum(H * H))
    nuclear = float(xp.sum(xp.abs(mu))) or 1.0
    rows = [
        Check.compare("spectrum/dense", "structured eq. (25)", "dense eigvalsh", err,
                      50.0 * ctx.factor().rank_bound, ctx.eps, "max|mu - mu_dense| / |H|_2"),
        Check.compare("spectrum/trace", "sum(mu)", "trace(H) dense", abs(float(xp.sum(mu)) - tr)
                      / nuclear, TOL_IDENTITY, ctx.eps, "|sum mu - tr H| / sum|mu|"),
        Check.compare("spectrum/frobenius", "sum(mu^2)", "|H|_F^2 dense",
                      abs(float(xp.sum(mu * mu)) - fro2) / (fro2 or 1.0), TOL_IDENTITY, ctx.eps,
                      "relative"),
    ]
    return rows + _layer_block_checks(ctx, H)


def _layer_block_checks(ctx: Context, H) -> list[Check]:
    """Kronecker layer blocks vs the dense blocks, and their closed-form eigenvalues.

    Errors are relative to the scale of the whole H (max|H| and |H|_2): both routes round
    relative to the terms that make up H, and a block can be far smaller than H.
    """
    xp, net = ctx.xp, ctx.net
    h_max = float(xp.max(xp.abs(H))) or 1.0
    h_2 = float(xp.max(xp.abs(linalg.eigvalsh(H)))) or 1.0
    block_err, eig_err = 0.0, 0.0
    for l, spec in enumerate(layer_spectra(ctx.state), start=1):
        sl = net.layer_slice(l)
        dense_block = H[sl, sl]
        diff = layer_block_dense(ctx.state, l) - dense_block
        block_err = max(block_err, float(xp.max(xp.abs(diff))) / h_max)
        ev = linalg.eigvalsh(dense_block)
        eig_err = max(eig_err, float(xp.max(xp.abs(spec.full() - ev))) / h_2)
    r_block = ctx.state.B * max(net.sizes[1:])
    return [
        Check.compare("spectrum/layer_blocks", "M_l (x) ã ã^T eq. (30)", "dense block",
                      block_err, TOL_EXACT, ctx.eps, "max over layers of max|diff| / max|H|"),
        Check.compare("spectrum/layer_eigenvalues", "|ã|^2 eig(M_l) eq. (32)",
                      "eigvalsh(dense block)", eig_err, 50.0 * r_block, ctx.eps,
                      "max|mu - mu_dense| / |H|_2"),
    ]


def _target_matrix(ctx: Context, method: str, curvature: str):
    """The dense matrix a route's direction should solve with: H, GGN, or their layer blocks."""
    xp = ctx.xp
    M = ctx.dense() if curvature == "hessian" else ctx.factor("ggn").to_dense()
    if method != "layerwise":
        return M
    out = xp.zeros_like(M)
    for l in range(1, ctx.net.L + 1):
        sl = ctx.net.layer_slice(l)
        out[sl, sl] = M[sl, sl]
    return out


def _backward_error(ctx: Context, M, d, g, spectral) -> tuple[float, float]:
    """(|(f(M) + lam I) d + g| / (|f(M) + lam I|_2 |d| + |g|), g.d)."""
    xp = ctx.xp
    mu, V = linalg.eigh(M)
    fmu = adjust(spectral, mu) + ctx.damping
    r = V @ (fmu * (xp.matrix_transpose(V) @ d)) + g
    norm = xp.linalg.vector_norm
    denom = float(xp.max(xp.abs(fmu))) * float(norm(d)) + float(norm(g))
    return float(norm(r)) / (denom or 1.0), float(xp.vecdot(g, d))


def _direction(ctx: Context, method: str, curvature: str, spectral: str):
    lam = ctx.damping
    if method == "structured":
        return ctx.factor(curvature).newton(lam, spectral)
    if method == "layerwise":
        return _layerwise_newton(ctx.state, lam, spectral, curvature == "ggn")
    return _dense_newton(_target_matrix(ctx, "dense", curvature), ctx.factor().gradient(), lam,
                         spectral)


def check_newton(ctx: Context) -> list[Check]:
    """Newton directions: backward error against the dense matrix; descent for abs / clip."""
    if not ctx.dense_ok:
        return [ctx.skip("newton/backward_error", "structured", "dense")]
    g = ctx.factor().gradient()
    rows = []
    for curvature in ("hessian", "ggn"):
        for method in ("structured", "layerwise", "dense"):
            M = _target_matrix(ctx, method, curvature)
            for spectral in ("none", "abs", "clip"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    d = _direction(ctx, method, curvature, spectral)
                berr, gd = _backward_error(ctx, M, d, g, spectral)
                name = f"newton/{method}/{curvature}/{spectral}"
                rows.append(Check.compare(name, f"{method} eq. (27)-(28)", "dense f(H) + lam I",
                                          berr, TOL_BACKWARD, ctx.eps, "normwise backward error"))
                if spectral != "none" and float(ctx.xp.vecdot(g, g)) > 0:
                    rows.append(Check.compare(f"{name}/descent", "g.d", "< 0",
                                              0.0 if gd < 0 else 1.0, 0.0, ctx.eps,
                                              "0 when g.d < 0, else 1"))
    return rows


RUNNERS = {
    "gradient": check_gradient,
    "hvp": check_hvp,
    "hessian": check_hessian,
    "factor": check_factor,
    "spectrum": check_spectrum,
    "newton": check_newton,
}
