"""Check reports: one row per comparison of two independent routes, tolerances in eps units."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from .._memory import InsufficientMemoryError
from .._table import format_table

__all__ = ["ACTIVATION_HINTS", "Check", "Report"]

ACTIVATION_HINTS = {
    "gelu": "hint: esso_ref's 'gelu' is the exact erf form, torch.nn.GELU(); code using "
            "nn.GELU(approximate='tanh') must be compared with activation 'gelu_tanh'",
    "gelu_tanh": "hint: 'gelu_tanh' is torch.nn.GELU(approximate='tanh'); code using the exact "
                 "erf form nn.GELU() must be compared with activation 'gelu'",
    "softplus": "hint: 'softplus' is log(1 + e^z) evaluated without a threshold, "
                "torch.nn.Softplus(beta=1) with its linear branch (threshold=20) removed",
}
"""Shown under a failing report whose network uses that activation: the convention it follows."""


@dataclass
class Check:
    """One comparison.

    Attributes:
        name: what is checked (e.g. ``"hvp/complex_step"``).
        route_a: the route under test.
        route_b: the independent reference route.
        error: the measured error (relative unless ``note`` says otherwise).
        tol_eps: the tolerance in units of the dtype's machine epsilon.
        eps: machine epsilon of the dtype.
        passed: error <= tol_eps * eps (None when skipped).
        note: how the error is measured, or why the check was skipped.
    """

    name: str
    route_a: str
    route_b: str
    error: float | None
    tol_eps: float
    eps: float
    passed: bool | None
    note: str = ""

    @property
    def tolerance(self) -> float:
        """The tolerance as a number: tol_eps * eps."""
        return self.tol_eps * self.eps

    @property
    def skipped(self) -> bool:
        """True when the check did not run."""
        return self.passed is None

    @classmethod
    def compare(cls, name, route_a, route_b, error, tol_eps, eps, note="") -> Check:
        """A check that passes when the finite ``error`` is <= tol_eps * eps."""
        error = float(error)
        ok = math.isfinite(error) and error <= tol_eps * eps
        return cls(name, route_a, route_b, error, float(tol_eps), float(eps), ok, note)

    @classmethod
    def raised(cls, name, route_a, route_b, err: Exception, eps) -> Check:
        """A failed check whose route raised ``err`` on a valid input.

        Raises:
            InsufficientMemoryError: ``err`` itself: a step refused for memory is not a wrong
                result, and the run cannot go on without it.
        """
        if isinstance(err, InsufficientMemoryError):
            raise err
        return cls(name, route_a, route_b, float("inf"), 0.0, float(eps), False,
                   f"raised {type(err).__name__}: {err}")

    @classmethod
    def skip(cls, name, route_a, route_b, reason, eps) -> Check:
        """A check that did not run, with the reason."""
        return cls(name, route_a, route_b, None, 0.0, float(eps), None, reason)


@dataclass
class Report:
    """The rows of a verification run; ``passed`` when no row failed."""

    checks: list[Check] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check that ran passed."""
        return all(c.passed is not False for c in self.checks)

    def failed(self) -> list[Check]:
        """The checks that ran and failed."""
        return [c for c in self.checks if c.passed is False]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; have {[c.name for c in self.checks]}")

    def hint(self) -> str:
        """The activation convention, when a check failed and it may explain the failure."""
        if self.passed:
            return ""
        return ACTIVATION_HINTS.get(str(self.meta.get("activation", "")), "")

    def to_dict(self) -> dict:
        """{"passed", "meta", "checks": [{name, route_a, route_b, error, tolerance, ...}]}."""
        rows = []
        for c in self.checks:
            row = asdict(c)
            row["tolerance"] = c.tolerance
            row["skipped"] = c.skipped
            rows.append(row)
        out = {"passed": self.passed, "meta": self.meta, "checks": rows}
        if self.hint():
            out["hint"] = self.hint()
        return out

    def to_json(self, **kw) -> str:
        """The report as one JSON object (see [`to_dict`][esso_ref.verification.Report.to_dict])."""
        return json.dumps(self.to_dict(), **kw)

    def table(self) -> str:
        """An aligned table, one row per check, with the reason of every row that is not ok."""
        rows = [{"check": c.name, "route": c.route_a, "reference": c.route_b,
                 "error": None if c.error is None else float(f"{c.error:.2e}"),
                 "tol (eps)": c.tol_eps,
                 "result": ("skip" if c.skipped else "ok" if c.passed else "FAIL")
                 + ("" if c.passed else f" ({c.note})")} for c in self.checks]
        n_fail = len(self.failed())
        n_skip = sum(c.skipped for c in self.checks)
        lines = [format_table(rows),
                 f"{len(self.checks) - n_fail - n_skip} passed, {n_fail} failed, {n_skip} skipped"]
        if n_fail and self.hint():
            lines.append(self.hint())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
