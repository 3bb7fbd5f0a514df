"""Verification: every quantity of esso_ref against independent oracles (docs/verification.md)."""

from __future__ import annotations

from ..curvature.spectral import check_damping
from ..curvature.state import prepare
from . import checks, sample_checks, spectral_checks
from .context import Context, rel
from .oracles import complex_step_gradient, complex_step_hvp, richardson_gradient, richardson_hvp
from .report import Check, Report

__all__ = [
    "GROUPS",
    "Check",
    "Report",
    "complex_step_gradient",
    "complex_step_hvp",
    "rel",
    "richardson_gradient",
    "richardson_hvp",
    "verify",
]


GROUPS = ("gradient", "hvp", "hessian", "factor", "spectrum", "newton", "ggn", "per_sample")

RUNNERS = {
    "gradient": checks.check_gradient,
    "hvp": checks.check_hvp,
    "hessian": checks.check_hessian,
    "factor": checks.check_factor,
    "spectrum": spectral_checks.check_spectrum,
    "newton": spectral_checks.check_newton,
    "ggn": sample_checks.check_ggn,
    "per_sample": sample_checks.check_per_sample,
}


def _groups(selection) -> list[str]:
    if selection == "all":
        return list(GROUPS)
    names = [selection] if isinstance(selection, str) else list(selection)
    for name in names:
        if name not in GROUPS:
            raise ValueError(f"expected checks 'all' or a subset of {list(GROUPS)}, got {name!r}")
    return names


def verify(net, theta, X, y, *, damping: float = 1e-3, checks="all",
           max_dense_params: int = 5000, seed: int = 0) -> Report:
    """Check every curvature quantity of ``net`` at (theta, X, y) against independent routes.

    Oracles: the complex step, eq. (38), Richardson central differences, eq. (39), dense
    matrices from HVP columns, eq. (12), and J^T Lam J from complex-step Jacobians.
    Groups: ``gradient`` (textbook loss, complex step, Richardson), ``hvp`` (complex step,
    Richardson, symmetry), ``hessian`` (symmetry of HVP columns), ``factor`` (A^T C A vs
    dense, structured Gram vs materialised, adjoint test), ``spectrum`` (structured vs dense,
    trace and Frobenius identities, layer blocks), ``newton`` (structured / layerwise / dense x
    hessian / ggn x none / abs / clip: backward error, descent), ``ggn`` (every Gauss-Newton
    route vs J^T Lam J), ``per_sample`` (per_sample_eigenvalues / per_sample_directions vs each
    sample's dense H_i and GGN_i). Every tolerance comes from an error bound or estimate for
    this input (docs/verification.md); a route that raises is a failed row. Dense routes are
    skipped, with the reason and how to run them, when P > ``max_dense_params``.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        damping: lam > 0 for the Newton checks.
        checks: ``"all"`` or a list of group names.
        max_dense_params: largest P for which dense P x P routes run.
        seed: seed of the random test directions.

    Returns:
        A [`Report`][esso_ref.verification.Report] (``.passed``, ``.table()``, ``.to_dict()``,
        ``.to_json()``).

    Raises:
        ValueError, TypeError: for bad inputs or unknown check groups.
    """
    lam = check_damping(damping)
    groups = _groups(checks)
    state = prepare(net, theta, X, y)
    X, y = state.fwd.a[0], state.y
    ctx = Context(state, theta, X, y, lam, int(max_dense_params), seed)
    report = Report(meta={"sizes": list(net.sizes), "activation": net.activation,
                          "loss": net.loss_name, "bias": net.bias, "batch": state.B,
                          "dtype": str(state.dtype), "damping": lam, "eps": ctx.eps})
    for group in groups:
        try:
            report.checks.extend(RUNNERS[group](ctx))
        except (ArithmeticError, ValueError, IndexError) as err:
            report.checks.append(Check.raised(f"{group}/all", group, "references", err, ctx.eps))
    return report

