"""Spectra and Newton directions against dense references (docs/verification.md).

Eigenvalues: |mu - mu_ref| <= 50 r eps |H|_2 (Weyl, backward-stable eigensolvers) plus the
matrix's measured response |H' - H|_F to an eps-relative perturbation of the input. Directions:
the normwise backward error |(f(M) + lam I) d + g| / (|f(M) + lam I|_2 |d| + |g|) <= 1e3 eps,
plus the same perturbation response relative to |f(M) + lam I|_2.
"""

from __future__ import annotations

import warnings

from ..backend import device_of
from ..curvature.api import _dense_newton, _layerwise_newton
from ..curvature.basis import basis_size
from ..curvature.layerwise import layer_block_dense, layer_spectra
from ..curvature.lowrank import SingularCurvatureError
from ..curvature.spectral import adjust
from .context import Context
from .errors import C_PERT, fro, max_abs, reference_eigh
from .report import Check

__all__ = ["backward_error", "block_eig", "check_newton", "check_spectrum", "eig_row"]

TOL_EIG = 50.0        # times r eps |H|_2
TOL_BACKWARD = 1000.0  # eps
TOL_IDENTITY = 64.0   # trace / Frobenius identities, times the summed eigenvalue bounds


_NEWTON_EQ = {"structured": "(43)-(44)", "layerwise": "(33)", "dense": "(12)"}


def eig_row(ctx: Context, name, a, b, got, ref, r: int, norm2: float, dfro: float) -> Check:
    """max|got - ref| (sorted, zero-padded to one length) vs 50 r eps |H|_2 + C |dH|_F."""
    xp = ctx.xp
    n = max(got.shape[0], ref.shape[0])
    pad = [xp.sort(xp.concat([x, xp.zeros((n - x.shape[0],), dtype=x.dtype, device=device_of(x))]))
           for x in (got, ref)]
    return ctx.bounded(name, a, b, max_abs(pad[0] - pad[1]), norm2, dfro, TOL_EIG * r,
                       "max|mu - mu_ref| / |H|_2")


def check_spectrum(ctx: Context) -> list[Check]:
    """Structured eigenvalues vs dense; trace / Frobenius identities; layer blocks."""
    if not ctx.dense_ok:
        return [ctx.skip("spectrum/dense", "structured eq. (42)", "dense eigh")]
    xp, H, f = ctx.xp, ctx.dense(), ctx.factor()
    ref = ctx.eig("H", H, f.rank_bound)
    norm2, dfro = max(ref.norm2(), ctx.terms_scale()[1]), ctx.dense_change()[1]
    mu = f.eigh().values
    r = min(f.rank_bound, ctx.net.num_params)
    eig_bound = TOL_EIG * r * ctx.eps * norm2 + C_PERT * dfro   # per eigenvalue
    tr, abs_mu = float(xp.linalg.trace(H)), float(xp.sum(xp.abs(mu)))
    t = max(max_abs(H), ctx.tiny)  # the Frobenius identity in units of t^2: no square overflows
    Hs, mus = H / t, mu / t
    fro2 = float(xp.sum(Hs * Hs))
    return [
        eig_row(ctx, "spectrum/dense", "structured eq. (42)", "dense eigh", f.eigh().full(),
                ref.full(), r, norm2, dfro),
        ctx.bounded("spectrum/trace", "sum(mu)", "trace(H) dense", abs(float(xp.sum(mu)) - tr),
                    abs_mu, r * eig_bound / C_PERT, TOL_IDENTITY, "|sum mu - tr H| / sum|mu|"),
        ctx.bounded("spectrum/frobenius", "sum(mu^2)", "|H|_F^2 dense",
                    abs(float(xp.sum(mus * mus)) - fro2), fro2,
                    2.0 * (abs_mu / t) * (eig_bound / t) / C_PERT, TOL_IDENTITY,
                    "|sum mu^2 - |H|_F^2| / |H|_F^2"),
        *_layer_block_checks(ctx, H, norm2),
    ]


def block_eig(ctx: Context, key, M) -> list:
    """[(slice, Eig)] of every layer block of M; block l has rank <= B n_l, eq. (32)."""
    def build():
        out = []
        for l in range(1, ctx.net.L + 1):
            sl = ctx.net.layer_slice(l)
            rank = ctx.state.B * ctx.net.sizes[l]
            out.append((sl, reference_eigh(M[sl, sl], rank, ctx.seed + 100 + l)))
        return out
    return ctx.cached(("blocks", key), build)


def _layer_block_checks(ctx: Context, H, norm2: float) -> list[Check]:
    """Kronecker layer blocks vs the dense blocks, and their closed-form eigenvalues.

    Errors are relative to the scale of the whole H: both routes round relative to the terms
    that make up H, and a block can be far smaller than H.
    """
    net = ctx.net
    dH = ctx.dense(True) - H
    block_err, block_est, eig_err, eig_tol = 0.0, 0.0, 0.0, 0.0
    r_block = ctx.state.B * max(net.sizes[1:])
    pairs = zip(block_eig(ctx, "H", H), layer_spectra(ctx.state), strict=True)
    for l, ((sl, ref), spec) in enumerate(pairs, start=1):
        block_err = max(block_err, max_abs(layer_block_dense(ctx.state, l) - H[sl, sl]))
        block_est = max(block_est, max_abs(dH[sl, sl]))
        eig_err = max(eig_err, max_abs(spec.full() - ref.full()))
        eig_tol = max(eig_tol, fro(dH[sl, sl]))
    return [
        ctx.bounded("spectrum/layer_blocks", "M_l (x) ã ã^T eq. (30)", "dense block", block_err,
                    max(max_abs(H), ctx.terms_scale()[0]), block_est, 450.0,
                    "max over layers of max|diff| / max(|H|, terms)"),
        ctx.bounded("spectrum/layer_eigenvalues", "|ã|^2 eig(M_l) eq. (32)", "eigh(dense block)",
                    eig_err, norm2, eig_tol, TOL_EIG * r_block, "max|mu - mu_ref| / |H|_2"),
    ]


def backward_error(eig, d, g, spectral, lam: float) -> float:
    """|(f(M) + lam I) d + g| / (|f(M) + lam I|_2 |d| + |g|) for M given by its eigenpairs.

    ``eig`` is an `Eig` or a list of (slice, Eig) layer blocks.
    """
    from ..backend import namespace

    xp = namespace(d)
    blocks = eig if isinstance(eig, list) else [(slice(None), eig)]
    parts, top = [], lam
    for sl, e in blocks:
        fmu = adjust(spectral, e.mu)
        parts.append(e.apply(fmu, lam, d[sl]) + g[sl])
        top = max(top, max_abs(fmu + lam) if fmu.size else lam)
    res = fro(xp.concat(parts))
    denom = top * fro(d) + fro(g)
    return res / denom if denom > 0 else res


def _direction(ctx: Context, method: str, curvature: str, spectral: str):
    lam = ctx.damping
    if method == "structured":
        return ctx.factor(curvature).newton(lam, spectral)
    if method == "layerwise":
        return _layerwise_newton(ctx.state, lam, spectral, curvature == "ggn")
    dense = ctx.dense() if curvature == "hessian" else ctx.factor("ggn").to_dense()
    net = ctx.state.net
    q = basis_size(net.sizes, net.bias, ctx.state.B, ggn=curvature == "ggn")
    return _dense_newton(dense, ctx.factor().gradient(), lam, spectral, net.num_params - q)


def _targets(ctx: Context, curvature: str):
    """(M, eigenpairs of M, eigenpairs of its layer blocks, |dM|_F) for a curvature."""
    if curvature == "hessian":
        M, rank, dM = ctx.dense(), ctx.factor().rank_bound, ctx.dense_change()[1]
    else:
        M, dM = ctx.batch_ggn(), fro(ctx.batch_ggn(True) - ctx.batch_ggn())
        rank = ctx.state.B * ctx.net.sizes[-1]
    dM += ctx.eps * ctx.terms_scale()[1]   # routes round relative to the terms of Lam
    return M, ctx.eig(curvature, M, rank), block_eig(ctx, curvature, M), dM


def check_newton(ctx: Context) -> list[Check]:
    """Newton directions: backward error against the dense matrix; descent for abs / clip."""
    if not ctx.dense_ok:
        return [ctx.skip("newton/backward_error", "structured", "dense")]
    g = ctx.net._gradient(ctx.theta, ctx.X, ctx.y)
    rows = []
    for curvature in ("hessian", "ggn"):
        _, full, blocks, dM = _targets(ctx, curvature)
        for method in ("structured", "layerwise", "dense"):
            eig = blocks if method == "layerwise" else full
            for spectral in ("none", "abs", "clip"):
                name = f"newton/{method}/{curvature}/{spectral}"
                route = f"{method} eq. {_NEWTON_EQ[method]}"
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        d = _direction(ctx, method, curvature, spectral)
                except SingularCurvatureError as err:
                    rows.append(singular_row(ctx, name, route, eig, spectral, err))
                    continue
                except (ArithmeticError, ValueError, IndexError) as err:
                    rows.append(Check.raised(name, route, "dense f(M) + lam I", err, ctx.eps))
                    continue
                rows += newton_rows(ctx, name, route, eig, d, g, spectral, dM)
    return rows


def singular_row(ctx: Context, name, route, eig, spectral, err, rows: int | None = None) -> Check:
    """A documented SingularCurvatureError: skipped if the reference confirms it, else failed.

    Confirmed: f(M) + lam I is singular to working precision, min|f(mu) + lam| <= 1e3 n eps
    times its norm, n = min(P, ``rows``), ``rows`` the rows of A (of the batch's by default).
    """
    lam, blocks = ctx.damping, eig if isinstance(eig, list) else [(None, eig)]
    low, top = lam, lam
    for _, e in blocks:
        if e.mu.size:
            shifted = ctx.xp.abs(adjust(spectral, e.mu) + lam)
            low, top = min(low, float(ctx.xp.min(shifted))), max(top, max_abs(shifted))
    n = min(ctx.net.num_params, ctx.factor().rank_bound if rows is None else rows)
    if low <= 1e3 * n * ctx.eps * top:
        return ctx.skip(name, route, "dense f(M) + lam I", f"f(M) + lam I is singular to working "
                        f"precision (min|f(mu) + lam| = {low / top:.1e} of its norm): the route "
                        "raises SingularCurvatureError as documented")
    row = Check.raised(name, route, "dense f(M) + lam I", err, ctx.eps)
    row.note += f" (reference: min|f(mu) + lam| = {low / top:.1e} of its norm)"
    return row


def newton_rows(ctx: Context, name, route, eig, d, g, spectral, dM: float) -> list[Check]:
    """Backward-error row, and (abs / clip, g != 0) the descent row."""
    lam = ctx.damping
    berr = backward_error(eig, d, g, spectral, lam)
    blocks = eig if isinstance(eig, list) else [(None, eig)]
    top = max([lam] + [max_abs(adjust(spectral, e.mu) + lam) for _, e in blocks if e.mu.size])
    rows = [ctx.bounded(name, route, "dense f(M) + lam I", berr, 1.0, dM / top, TOL_BACKWARD,
                        "normwise backward error")]
    if spectral != "none" and max_abs(g) > 0:  # on unit vectors: g.d of tiny g, d underflows
        gd = float(ctx.xp.vecdot(g / max_abs(g), d / max(max_abs(d), ctx.tiny)))
        rows.append(Check.compare(f"{name}/descent", "g.d", "< 0", 0.0 if gd < 0 else 1.0, 0.0,
                                  ctx.eps, "0 when g.d < 0, else 1"))
    return rows
