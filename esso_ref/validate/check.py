"""check_implementation: a user's gradient / HVP / Hessian / eigenvalues / Newton vs esso_ref."""

from __future__ import annotations

import math
import tempfile
import warnings

import numpy as np

from .. import curvature
from ..curvature.spectral import check_damping
from ..verification.report import Check
from . import measures
from .cases import Case, default_cases
from .report import ImplementationReport, save_reproducer

__all__ = ["QUANTITIES", "check_implementation"]

QUANTITIES = ("gradient", "hvp", "hessian", "eigenvalues", "newton")
EPS = float(np.finfo(np.float64).eps)
ROUTES = {"gradient": "net.gradient", "hvp": "er.hvp", "hessian": "er.hessian",
          "eigenvalues": "er.eigenvalues", "newton": "er.hessian: f(H)+lam I"}
NOTES = {"gradient": "|g_u - g|_2 / |g|_2", "hvp": "|Hv_u - Hv|_2 / (|H|_2 |v|_2)",
         "hessian": "max|H_u - H| / max|H|", "eigenvalues": "max|mu_u - mu| / (r |H|_2), r = B R",
         "newton": "normwise backward error"}


def _host(out) -> np.ndarray:
    """A user's result as a NumPy array (torch tensors, JAX / CuPy arrays, lists)."""
    from ..backend import to_host

    try:
        return np.asarray(to_host(out))
    except TypeError:  # not an array of a known namespace: a list, a scalar, ...
        return np.asarray(out)


# esso_ref's reference values, through the public API only
REFERENCES = {
    "g": lambda c: c.net.gradient(c.theta, c.X, c.y),
    "H": lambda c: curvature.hessian(c.net, c.theta, c.X, c.y),
    "Hv": lambda c: curvature.hvp(c.net, c.theta, c.X, c.y, c.v),
    "spectrum": lambda c: curvature.eigenvalues(c.net, c.theta, c.X, c.y),
}


class _Reference:
    """esso_ref's values for one case, computed on first use."""

    def __init__(self, case: Case):
        self.case, self._cache = case, {}

    def get(self, key: str):
        """The value called ``key`` (g, H, Hv or spectrum)."""
        if key not in self._cache:
            self._cache[key] = REFERENCES[key](self.case)
        return self._cache[key]

    @property
    def norm_H(self) -> float:
        return float(np.max(np.abs(self.get("spectrum").full()), initial=0.0))


def _shape(out: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    if out.shape != shape:
        raise ValueError(f"expected {what} of shape {shape}, got {out.shape}")
    return out


def _measure(quantity: str, fn, ref: _Reference, damping: float, spectral: str):
    """(error, user value, esso_ref value) of one quantity on one case."""
    c, P = ref.case, ref.case.net.num_params
    args = (c.net, c.theta.copy(), c.X.copy(), c.y.copy())
    if quantity == "gradient":
        got = _shape(_host(fn(*args)), (P,), "the gradient")
        return measures.normwise(got, ref.get("g")), got, ref.get("g")
    if quantity == "hvp":
        got = _shape(_host(fn(*args, c.v.copy())), (P,), "H v")
        scale = ref.norm_H * float(np.linalg.norm(c.v))
        return measures.normwise(got, ref.get("Hv"), scale), got, ref.get("Hv")
    if quantity == "hessian":
        got, H = _shape(_host(fn(*args)), (P, P), "the Hessian"), ref.get("H")
        return measures.maxnorm(got, H), got, H
    if quantity == "eigenvalues":
        got, spec = _host(fn(*args)), ref.get("spectrum")
        r = c.batch * c.net.rank_bound
        return measures.eigenvalue_error(got, spec, ref.norm_H) / r, got, spec.full()
    got = _shape(_host(fn(*args, damping)), (P,), "the Newton direction")
    M = measures.spectral_matrix(ref.get("H"), damping, spectral)
    return measures.backward_error(M, got, ref.get("g")), got, None


def _newton_reference(case: Case, damping: float, spectral: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return curvature.newton_direction(case.net, case.theta, case.X, case.y,
                                              damping=damping, spectral=spectral)
    except (ValueError, curvature.LinAlgError):
        return None


def _run(quantity: str, fn, refs: list[_Reference], damping: float, spectral: str) -> dict:
    """The worst case of one quantity: {"error", "case", "got", "expected", "message"}."""
    worst = {"error": -1.0}
    for ref in refs:
        try:
            error, got, expected = _measure(quantity, fn, ref, damping, spectral)
            message = ""
        except Exception as exc:  # a user's failure is a result, reported with its case
            error, got, expected, message = math.inf, None, None, f"{type(exc).__name__}: {exc}"
        if not math.isfinite(error) and not message:
            message = "the result is not finite"
        if not error <= worst["error"]:
            worst = {"error": error, "case": ref.case, "got": got, "expected": expected,
                     "message": message}
    return worst


def _row(quantity: str, worst: dict, opts: dict, save_dir) -> tuple[Check, dict, str | None]:
    tol = measures.TOLERANCES[quantity]
    row = Check.compare(quantity, "user", ROUTES[quantity], worst["error"], tol, EPS,
                        NOTES[quantity])
    case = worst["case"]
    info = {**case.describe(), "error_eps": worst["error"] / EPS, "tol_eps": tol,
            "passed": row.passed, "message": worst["message"], "path": None}
    if not row.passed:
        save_dir = save_dir or tempfile.mkdtemp(prefix="esso_check_")
        expected = worst["expected"]
        if quantity == "newton":
            expected = _newton_reference(case, opts["damping"], opts["spectral"])
        extra = {"quantity": quantity, **opts}
        info["path"] = save_reproducer(save_dir, quantity, case, worst["got"], expected, extra)
    return row, info, save_dir


def _callables(given: dict) -> dict:
    fns = {q: fn for q, fn in given.items() if fn is not None}
    for q, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"expected {q} to be a callable (see the contract in "
                            f"docs/validate.md), got {type(fn).__name__}")
    if not fns:
        raise ValueError(f"expected at least one of {list(QUANTITIES)} to check, got none")
    return fns


def check_implementation(gradient=None, hvp=None, hessian=None, eigenvalues=None, newton=None,
                         *, damping: float = 0.1, spectral: str = "none", activations=None,
                         losses=None, bias=None, n_random: int = 12, seed: int = 0,
                         cases: list[Case] | None = None,
                         save_dir=None) -> ImplementationReport:
    """Check a user's curvature callables against esso_ref on edge cases and seeded draws.

    Each given callable follows the contract of `esso_ref.validate` and runs on every case
    of `default_cases` (float64). Per quantity the report holds the
    worst error over all cases, its tolerance (eps units, `TOLERANCES`)
    and the worst case as a reproducer: its recipe, and for a failure a saved ``.npz``.

    Args:
        gradient: ``(net, theta, X, y) -> (P,)`` or None (not checked).
        hvp: ``(net, theta, X, y, v) -> (P,)`` or None.
        hessian: ``(net, theta, X, y) -> (P, P)`` or None.
        eigenvalues: ``(net, theta, X, y) -> (P,)``, all P eigenvalues, or None.
        newton: ``(net, theta, X, y, damping) -> (P,)``, d = -(f(H) + damping I)^{-1} g, or None.
        damping: lam > 0 passed to ``newton``.
        spectral: ``"none"``, ``"abs"`` or ``"clip"``: the f of the Newton system f(H) + lam I.
        activations: activation names the cases draw from (e.g. what the implementation
            supports); None: all.
        losses: loss names the cases draw from; None: all.
        bias: True / False to fix it, None to draw it.
        n_random: number of random networks after the edge cases.
        seed: seed of every case.
        cases: explicit cases instead of the default ones.
        save_dir: directory of the reproducers (a new temporary directory by default).

    Returns:
        An `ImplementationReport`: ``.passed``, ``.table()``,
        ``.to_json()``, ``report["hvp"].error``, ``report.meta["worst"]["hvp"]["path"]``.

    Raises:
        TypeError, ValueError: nothing to check, a non-callable, bad damping or spectral.
    """
    fns = _callables({"gradient": gradient, "hvp": hvp, "hessian": hessian,
                      "eigenvalues": eigenvalues, "newton": newton})
    opts = {"damping": check_damping(damping), "spectral": spectral}
    if spectral not in curvature.SPECTRAL:
        raise ValueError(f"expected spectral in {list(curvature.SPECTRAL)}, got {spectral!r}")
    cases = default_cases(activations, losses, bias, n_random, seed) if cases is None else cases
    refs = [_Reference(case) for case in cases]
    report = ImplementationReport(meta={"cases": [c.name for c in cases], "eps": EPS,
                                        "seed": seed, **opts, "worst": {}})
    for quantity, fn in fns.items():
        worst = _run(quantity, fn, refs, opts["damping"], spectral)
        row, info, save_dir = _row(quantity, worst, opts, save_dir)
        report.checks.append(row)
        report.meta["worst"][quantity] = info
    return report
