"""Derivative checks: loss, gradient, HVP, dense Hessian and the factorisation A^T C A.

Each ``check_*`` function returns a list of `Check` rows. Errors are absolute errors
divided by the scale of the reference; every tolerance comes from an error bound or estimate for
the input at hand (:mod:`esso_ref.verification.errors`): c eps times the magnitude of the terms
summed, plus the measured response of the reference to an eps-relative perturbation of theta
and X, plus (finite differences) Richardson's own error estimate.
"""

from __future__ import annotations

import math

from ..backend import device_of, host_normal
from ..curvature.dense import dense_state
from ..curvature.hvp import hvp_state
from . import oracles
from .context import Context, rel
from .errors import C_PERT, max_abs
from .report import Check

__all__ = ["Context", "check_factor", "check_gradient", "check_hessian", "check_hvp", "rel"]

C_SUM = 64.0        # rounding of a sum of O(L) products, in eps times the terms' magnitude
FD_SAFETY = 10.0    # safety factor on Richardson's own error estimate
FD_USEFUL = 1e-4    # above this estimated relative error a difference quotient says nothing


def _direct_loss(ctx: Context) -> float:
    """The batch loss by the textbook formula: mean of -log softmax(z)_y, or of (z - y)^2."""
    xp, net = ctx.xp, ctx.net
    z = ctx.state.fwd.z[net.L]
    if net.loss_fn.integer_targets:
        e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
        p = e / xp.sum(e, axis=1, keepdims=True)
        onehot = xp.astype(xp.arange(z.shape[1], device=device_of(z)) == ctx.y[:, None], z.dtype)
        p_y = xp.sum(p * onehot, axis=1)
        if bool(xp.any(p_y == 0)):
            return math.inf  # log(0): the caller skips the row
        return float(xp.mean(-xp.log(p_y)))
    return float(xp.mean((z - ctx.y) ** 2))


def _loss_row(ctx: Context, loss: float, loss_p: float) -> Check:
    names = ("loss/direct_formula", "log-sum-exp eq. (4)-(6)", "mean -log p_y / (z-y)^2")
    direct = _direct_loss(ctx)
    if not math.isfinite(direct):
        return ctx.skip(*names, "softmax p_y underflows: the textbook formula is not defined "
                        "in floating point here")
    n = float(ctx.net.sizes[-1])
    # -log p_y has absolute error ~ n eps whatever its value (a sum of n exponentials)
    floor = n * ctx.eps if ctx.net.loss_fn.integer_targets else 0.0
    return ctx.bounded(*names, abs(loss - direct), abs(loss), abs(loss_p - loss) + floor, C_SUM * n,
                       "|loss - direct| / max(|loss|, estimate)")


def _fd_row(ctx: Context, name, route, exact, fd, scale, est, noun) -> Check:
    """Compare ``exact`` with a `FiniteDifference` on its valid directions."""
    xp = ctx.xp
    ref = "central diff eq. (39)"
    n_bad = sum(1 for ok in fd.valid if not ok)
    if n_bad == len(fd.valid):
        return ctx.skip(name, route, ref, f"every {noun} crosses a ReLU kink (an input on a kink: "
                        "the convention phi'(0) = 0 applies; the complex step row checks it)")
    mask = xp.asarray(fd.valid, device=device_of(exact))
    zero = xp.zeros_like(exact)
    diff = max_abs(xp.where(mask, exact - fd.value, zero))
    fd_err = FD_SAFETY * max_abs(xp.where(mask, fd.error, zero))
    S = max(scale, est)
    if S > 0 and fd_err > FD_USEFUL * S:
        return ctx.skip(name, route, ref, f"finite differences uninformative here (own error "
                        f"estimate {fd_err / S:.1e} relative)")
    note = "max|diff| / scale; tol from Richardson's error estimate"
    if n_bad:
        note += (f"; {n_bad} {noun}s skipped: they cross a ReLU kink (convention phi'(0) = 0, "
                 "checked by the complex step)")
    # est is weighted by C_PERT in the tolerance; this adds exactly fd_err to it
    return ctx.bounded(name, route, ref, diff, scale, est + fd_err / C_PERT, C_SUM, note)


def _gradient_terms(ctx: Context) -> float:
    """max_j (1/B) sum_i |J_i|^T m_i: the gradient's terms before they cancel.

    m_i holds the magnitudes of the terms of dl/dz_L: p + e_y (cross-entropy, where p_y - 1 is
    formed by a subtraction) or (2 / n_L)(|z| + |y|) (mse). J_i comes from the complex step.
    """
    xp, net = ctx.xp, ctx.net
    z = ctx.state.fwd.z[net.L]
    if net.loss_fn.integer_targets:
        onehot = xp.astype(xp.arange(z.shape[1], device=device_of(z)) == ctx.y[:, None], z.dtype)
        m = net.loss_fn.grad(z, ctx.y) + 2.0 * onehot     # (p - e_y) + 2 e_y = p + e_y
    else:
        m = (2.0 / z.shape[1]) * (xp.abs(z) + xp.abs(ctx.y))
    J = ctx.jacobian()
    return max_abs(xp.sum(xp.abs(J) * m[:, :, None], axis=(0, 1))) / ctx.state.B


def _hvp_terms(ctx: Context, v) -> float:
    """max_j (1/B) sum_i (|J_i|^T T_i |J_i| |v|)_j, T_i the magnitudes of Lam_i's terms.

    T_i = diag(p) + p p^T (cross-entropy: Lam = diag(p) - p p^T cancels as p_y -> 1) or
    (2 / n_L) I (mse): the Gauss-Newton part of H v before it cancels.
    """
    xp = ctx.xp
    aJ = xp.abs(ctx.jacobian())
    Jv = aJ @ xp.abs(v)                                              # (B, n_L)
    out = xp.matrix_transpose(aJ) @ (ctx.loss_terms() @ Jv[:, :, None])   # (B, P, 1)
    return max_abs(xp.sum(out[:, :, 0], axis=0)) / ctx.state.B


def check_gradient(ctx: Context) -> list[Check]:
    """Loss vs the textbook formula; gradient vs complex step and Richardson differences."""
    net, th, X, y = ctx.net, ctx.theta, ctx.X, ctx.y
    g = net._gradient(th, X, y)
    est = max_abs(net._gradient(ctx.theta_p, ctx.X_p, y) - g)
    loss, loss_p = float(net._loss(th, X, y)), float(net._loss(ctx.theta_p, ctx.X_p, y))
    cs = oracles.complex_step_gradient(net, th, X, y, h=_h(ctx))
    noise = 4.0 * (ctx.eps * abs(loss) + abs(loss_p - loss))
    fd = oracles.richardson_gradient_estimate(net, th, X, y, noise, twin=(ctx.theta_p, ctx.X_p))
    names = ("gradient/complex_step", "backprop eq. (8)", "complex step eq. (38)")
    return [
        _loss_row(ctx, loss, loss_p),
        _underflow_skip(ctx, names, g) or ctx.bounded(
            *names, max_abs(g - cs), max(max_abs(cs), _gradient_terms(ctx)), est, C_SUM,
            "max|diff| / max(|g|, sum of |terms|)"),
        _fd_row(ctx, "gradient/richardson", "backprop eq. (8)", g, fd, max_abs(cs), est,
                "direction"),
    ]


def _h(ctx: Context) -> float:
    return oracles.step_size(ctx.net, ctx.eps)


def _underflow_skip(ctx: Context, names: tuple, value) -> Check | None:
    """A skip when the complex step's reference has no precision left, else None.

    `Context.step_underflow`: its imaginary parts fall below the normal range.
    """
    reason = ctx.step_underflow(value, "x")
    return None if reason is None else ctx.skip(*names, reason)

def check_hvp(ctx: Context) -> list[Check]:
    """R-operator HVP vs complex step and Richardson; dot-product symmetry."""
    xp, net, th, X, y, v = ctx.xp, ctx.net, ctx.theta, ctx.X, ctx.y, ctx.v
    u = ctx.direction(12345)
    Hv, Hu = (hvp_state(ctx.state, w[None, :])[0, :] for w in (v, u))
    dHv, dHu = (hvp_state(ctx.state_p, w[None, :])[0, :] - H for w, H in ((v, Hv), (u, Hu)))
    cs = oracles.complex_step_hvp(net, th, X, y, v, h=_h(ctx))
    g = net._gradient(th, X, y)
    noise = 4.0 * (ctx.eps * max_abs(g) + max_abs(net._gradient(ctx.theta_p, ctx.X_p, y) - g))
    fd = oracles.richardson_hvp_estimate(net, th, X, y, v, noise, twin=(ctx.theta_p, ctx.X_p))
    norm = xp.linalg.vector_norm
    nu, nv = float(norm(u)), float(norm(v))
    aJ = xp.abs(ctx.jacobian())
    Ju, Jv = aJ @ xp.abs(u), aJ @ xp.abs(v)                           # (B, n_L)
    uTv = float(xp.sum(Ju[:, :, None] * ctx.loss_terms() * Jv[:, None, :])) / ctx.state.B
    sym_scale = nu * float(norm(Hv)) + nv * float(norm(Hu)) + 2.0 * uTv
    sym_est = nu * float(norm(dHv)) + nv * float(norm(dHu))
    sym = abs(float(xp.vecdot(u, Hv) - xp.vecdot(v, Hu)))
    names = ("hvp/complex_step", "R-operator eq. (11)", "complex step eq. (38)")
    return [
        _underflow_skip(ctx, names, Hv) or ctx.bounded(
            *names, max_abs(Hv - cs), max(max_abs(cs), _hvp_terms(ctx, v)), max_abs(dHv), C_SUM,
            "max|diff| / max(|Hv|, |J|^T |Lam terms| |J| |v|)"),
        _fd_row(ctx, "hvp/richardson", "R-operator eq. (11)", Hv,
                fd if fd.value is not None else oracles.FiniteDifference(Hv, Hv, [False]),
                max_abs(cs), max_abs(dHv), "direction"),
        ctx.bounded("hvp/symmetry", "u.(Hv)", "v.(Hu)", sym, sym_scale, sym_est, C_SUM,
                    "|u.Hv - v.Hu| / (|u| |Hv| + |v| |Hu| + 2 |u|^T terms |v|)"),
    ]


def check_hessian(ctx: Context) -> list[Check]:
    """Dense H: symmetry of the raw HVP columns."""
    if not ctx.dense_ok:
        return [ctx.skip("hessian/symmetry", "HVP columns", "transpose")]
    raw = dense_state(ctx.state, symmetric=False)
    asym = max_abs(raw - ctx.xp.matrix_transpose(raw))
    return [ctx.bounded("hessian/symmetry", "HVP columns", "transpose", asym,
                        max(max_abs(raw), ctx.terms_scale()[0]), ctx.dense_change()[0], C_SUM,
                        "max|H - H^T| / max(|H|, |J|^T |Lam terms| |J|)")]


def check_factor(ctx: Context) -> list[Check]:
    """A^T C A vs dense; structured Gram vs materialised A A^T; adjoint dot-product test."""
    xp, f, fp = ctx.xp, ctx.factor(), ctx.factor(perturbed=True)
    w = xp.asarray(host_normal(7, (f.rank_bound,)), dtype=ctx.state.dtype,
                   device=device_of(ctx.theta))
    Av, ATw = f.apply_A(ctx.v), f.apply_AT(w)
    dAv, dATw = fp.apply_A(ctx.v) - Av, fp.apply_AT(w) - ATw
    norm = xp.linalg.vector_norm
    nv, nw = float(norm(ctx.v)), float(norm(w))
    adj = abs(float(xp.vecdot(Av, w) - xp.vecdot(ctx.v, ATw)))
    rows = [ctx.bounded("factor/adjoint", "<Av, w>", "<v, A^T w>", adj,
                        float(norm(Av)) * nw + nv * float(norm(ATw)),
                        float(norm(dAv)) * nw + nv * float(norm(dATw)), C_SUM,
                        "|<Av,w> - <v,A^T w>| / (|Av| |w| + |v| |A^T w|)")]
    if not ctx.dense_ok:
        return [*rows, ctx.skip("factor/dense", "A^T C A", "HVP columns"),
                ctx.skip("factor/gram", "structured G", "A A^T materialised")]
    A = f.materialize_A()
    At = xp.matrix_transpose(A)
    AtCA, AAt = At @ f.C @ A, A @ At
    terms = max(max_abs(xp.abs(At) @ xp.abs(f.C) @ xp.abs(A)), ctx.terms_scale()[0])
    return [
        *rows,
        ctx.bounded("factor/dense", "A^T C A eq. (17)", "HVP columns eq. (12)",
                    max_abs(AtCA - ctx.dense()), terms, ctx.dense_change()[0], C_SUM,
                    "max|diff| / max(|A|^T |C| |A|)"),
        ctx.bounded("factor/gram", "structured G eq. (21)", "A A^T materialised",
                    max_abs(f.gram() - AAt), max_abs(AAt), max_abs(fp.gram() - f.gram()), C_SUM,
                    "max|diff| / max|G|"),
    ]
