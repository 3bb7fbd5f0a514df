"""Per-sample routes and the Gauss-Newton matrix against independent dense references.

- ``per_sample``: each sample's own Hessian H_i (of l_i, no 1/B) from P HVPs on the one-sample
  batch, eigendecomposed densely; ``per_sample_eigenvalues`` within 50 r eps |H_i|_2 and every
  ``per_sample_directions`` row with normwise backward error <= 1e3 eps (also for the GGN).
- ``ggn``: the reference J_i^T Lam_i J_i with J_i = dz_L / dtheta and Lam_i = d^2 l / dz^2 both
  from the complex step (forward passes and the loss gradient only; no A, C or M_l of the
  package), against the structured factor, its eigenvalues and the layer blocks.
"""

from __future__ import annotations

import warnings

from ..curvature.factor import HessianFactor
from ..curvature.layerwise import layer_block_dense, layer_spectra
from ..curvature.per_sample import per_sample_directions, per_sample_eigenvalues
from ..curvature.spectral import SingularCurvatureError
from .checks import C_SUM
from .context import Context
from .errors import fro, max_abs, reference_eigh, tolerance
from .report import Check
from .spectral_checks import TOL_EIG, backward_error, block_eig, eig_row, singular_row

__all__ = ["check_ggn", "check_per_sample"]


def _worst(ctx: Context, rows: list[Check], name: str) -> Check:
    """The checked row with the largest error / tolerance, renamed, noting which sample it is.

    Samples whose check was skipped are counted in the note; when all were, the row is skipped.
    """
    def ratio(c):
        if c.tolerance > 0:
            return c.error / c.tolerance
        return 0.0 if c.error == 0 else float("inf")
    checked = [k for k, c in enumerate(rows) if not c.skipped]
    if not checked:
        return ctx.skip(name, rows[0].route_a, rows[0].route_b, f"every sample: {rows[0].note}")
    i = max(checked, key=lambda k: ratio(rows[k]))
    c, skipped = rows[i], len(rows) - len(checked)
    note = f"{c.note}; worst of {len(checked)} samples (sample {i})"
    if skipped:
        note += f"; {skipped} skipped: {next(r.note for r in rows if r.skipped)}"
    return Check.compare(name, c.route_a, c.route_b, c.error, c.tol_eps, ctx.eps, note)


def _sample_refs(ctx: Context, curvature: str) -> list:
    """[(M_i, Eig_i, |dM_i|_F)] for every sample: its own Hessian or GGN."""
    def build():
        r = HessianFactor(ctx.state, curvature).rows.r
        out = []
        for i in range(ctx.state.B):
            if curvature == "hessian":
                M, Mp = ctx.sample_hessian(i), ctx.sample_hessian(i, True)
            else:
                M, Mp = ctx.ggn()[0][i, ...], ctx.ggn(True)[0][i, ...]
            terms = ctx.eps * fro(ctx.hessian_terms()[i, ...])
            out.append((M, reference_eigh(M, r, ctx.seed + 11 + i), fro(Mp - M) + terms))
        return out
    return ctx.cached(("samples", curvature), build)


def check_per_sample(ctx: Context) -> list[Check]:
    """per_sample_eigenvalues and per_sample_directions, sample by sample."""
    if not ctx.dense_ok:
        return [ctx.skip("per_sample/eigenvalues/hessian", "per_sample_eigenvalues",
                         "dense H_i")]
    net, th, X, y = ctx.net, ctx.theta, ctx.X, ctx.y
    G = net.per_sample_gradients(th, X, y)
    rows = []
    underflow = ctx.jacobian_underflow()
    for curvature in ("hessian", "ggn"):
        if curvature == "ggn" and underflow:
            rows.append(ctx.skip("per_sample/ggn", "per_sample_eigenvalues / directions",
                                 "J_i^T Lam_i J_i complex step", underflow))
            continue
        refs = _sample_refs(ctx, curvature)
        r = min(HessianFactor(ctx.state, curvature).rows.r, net.num_params)
        name = f"per_sample/eigenvalues/{curvature}"
        try:
            ev = per_sample_eigenvalues(net, th, X, y, curvature=curvature)
        except (ArithmeticError, ValueError, IndexError) as err:
            rows.append(Check.raised(name, "per_sample_eigenvalues", "dense", err, ctx.eps))
        else:
            rows.append(_worst(ctx, [
                eig_row(ctx, "", "per_sample_eigenvalues eq. (36)", f"dense eigh of {curvature}_i",
                        ev[i, :], e.full(), r, e.norm2(), dM) for i, (_, e, dM) in enumerate(refs)],
                name))
        for spectral in ("none", "abs", "clip"):
            name = f"per_sample/newton/{curvature}/{spectral}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    D, _ = per_sample_directions(net, th, X, y, damping=ctx.damping,
                                                 spectral=spectral, curvature=curvature)
            except SingularCurvatureError as err:
                rows.append(_singular(ctx, name, refs, spectral, err, r))
                continue
            except (ArithmeticError, ValueError, IndexError) as err:
                rows.append(Check.raised(name, "per_sample_directions", "dense", err, ctx.eps))
                continue
            rows.append(_worst(ctx, [
                _berr_row(ctx, e, D[i, :], G[i, :], spectral, dM)
                for i, (_, e, dM) in enumerate(refs)], name))
    return rows


def _singular(ctx: Context, name, refs, spectral, err, r: int) -> Check:
    """The stacked call's SingularCurvatureError, checked against the per-sample references.

    Skipped when some sample's f(H_i) + lam I is singular to working precision
    (`singular_row`), failed otherwise.
    """
    rows = [singular_row(ctx, name, "per_sample_directions eq. (36)", e, spectral, err, r)
            for _, e, _ in refs]
    return next((row for row in rows if row.skipped), rows[0])


def _berr_row(ctx: Context, e, d, g, spectral, dM: float) -> Check:
    from ..curvature.spectral import adjust

    lam = ctx.damping
    top = max(lam, max_abs(adjust(spectral, e.mu) + lam) if e.mu.size else lam)
    S, tol_eps = tolerance(1.0, dM / top, 1000.0, ctx.eps)
    return Check.compare("", "per_sample_directions eq. (36)", "dense f(H_i) + lam I",
                         backward_error(e, d, g, spectral, lam) / S, tol_eps, ctx.eps,
                         "normwise backward error")


def check_ggn(ctx: Context) -> list[Check]:
    """Every Gauss-Newton route against J^T Lam J from the complex step."""
    underflow = ctx.jacobian_underflow() if ctx.dense_ok else None
    if not ctx.dense_ok or underflow:
        return [ctx.skip("ggn/dense", "A^T C A (GGN)", "J^T Lam J complex step", underflow)]
    xp, net = ctx.xp, ctx.net
    ref, ref_p = ctx.batch_ggn(), ctx.batch_ggn(True)
    terms = max(max_abs(xp.mean(ctx.ggn()[1], axis=0)), ctx.terms_scale()[0])
    dG, dG_fro = max_abs(ref_p - ref), fro(ref_p - ref)
    f = ctx.factor("ggn")
    eig = ctx.eig("ggn", ref, f.rank_bound)
    dG_fro += ctx.eps * ctx.terms_scale()[1]
    r = min(f.rank_bound, net.num_params)
    rows = [ctx.bounded("ggn/dense", "A^T C A eq. (37)", "J^T Lam J complex step",
                        max_abs(f.to_dense() - ref), terms, dG, C_SUM,
                        "max|diff| / max(|J|^T |Lam| |J|)")]
    names = ("ggn/eigenvalues", "structured eq. (42), (37)", "eigh(J^T Lam J)")
    try:
        rows.append(eig_row(ctx, *names, f.eigh().full(), eig.full(), r, eig.norm2(), dG_fro))
    except (ArithmeticError, ValueError, IndexError) as err:
        rows.append(Check.raised(*names, err, ctx.eps))
    try:
        norm2 = max(eig.norm2(), ctx.terms_scale()[1])
        return rows + _ggn_layer_rows(ctx, ref, ref_p, terms, dG, norm2)
    except (ArithmeticError, ValueError, IndexError) as err:
        return [*rows, Check.raised("ggn/layer_eigenvalues", "eq. (32)", "eigh", err, ctx.eps)]


def _ggn_layer_rows(ctx: Context, ref, ref_p, terms: float, dG: float, norm2: float) -> list:
    """Gauss-Newton layer blocks and their eigenvalues against the blocks of J^T Lam J."""
    net = ctx.net
    block_err, eig_err, eig_est = 0.0, 0.0, 0.0
    pairs = zip(block_eig(ctx, "ggn", ref), layer_spectra(ctx.state, ggn=True), strict=True)
    for l, ((sl, e), spec) in enumerate(pairs, start=1):
        block_err = max(block_err, max_abs(layer_block_dense(ctx.state, l, ggn=True)
                                           - ref[sl, sl]))
        eig_err = max(eig_err, max_abs(spec.full() - e.full()))
        eig_est = max(eig_est, fro(ref_p[sl, sl] - ref[sl, sl]) + ctx.eps * ctx.terms_scale()[1])
    r_block = ctx.state.B * max(net.sizes[1:])
    return [
        ctx.bounded("ggn/layer_blocks", "M_l (x) ã ã^T eq. (30)", "J^T Lam J blocks", block_err,
                    terms, dG, 450.0, "max|diff| / max(|J|^T |Lam| |J|)"),
        ctx.bounded("ggn/layer_eigenvalues", "eq. (32) without phi''", "eigh(J^T Lam J block)",
                    eig_err, norm2, eig_est, TOL_EIG * r_block, "max|mu - mu_ref| / |G|_2"),
    ]
