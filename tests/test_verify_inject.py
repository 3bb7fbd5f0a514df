"""er.verify catches a relative error of 1e-6 injected into any one package route.

Each injection wraps a package function (every module binding of it, as a wrong implementation
would be seen everywhere) so that its result is off by a factor 1 + 1e-6.
"""

import sys
import warnings
from importlib import import_module

import pytest

import esso_ref as er
from esso_ref.problems import random_problem

factor_mod = import_module("esso_ref.curvature.factor")
gram_mod = import_module("esso_ref.curvature.gram")
hvp_mod = import_module("esso_ref.curvature.hvp")
layerwise_mod = import_module("esso_ref.curvature.layerwise")
exact_mod = import_module("esso_ref.curvature.exact")
per_sample_mod = import_module("esso_ref.curvature.per_sample")

ERR = 1.0 + 1e-6


def _patch_everywhere(monkeypatch, original, wrapper):
    """Replace every esso_ref module attribute bound to ``original`` by ``wrapper``."""
    hits = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("esso_ref") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                monkeypatch.setattr(module, attr, wrapper)
                hits += 1
    assert hits, f"{original.__name__} is bound nowhere"


def _scaled(fn):
    def wrong(*args, **kw):
        out = fn(*args, **kw)
        return [None if m is None else ERR * m for m in out] if isinstance(out, list) else ERR * out
    return wrong


def _problem():
    net = er.MLP([5, 7, 6, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 3, 0)
    return net, theta, X, y


def _failed(report) -> set:
    return {c.name for c in report.failed()}


def test_unmodified_package_passes():
    assert er.verify(*_problem()).passed


@pytest.mark.parametrize("fn,expected", [
    (factor_mod.core, "factor/dense"),
    (exact_mod._core_sandwich, "spectrum/dense"),
    (hvp_mod.hvp_state, "hvp/complex_step"),
    (gram_mod.gram, "factor/gram"),
    (layerwise_mod.backprop_M, "spectrum/layer_blocks"),
], ids=["core_C", "structured_C_product", "hvp", "gram", "layer_blocks"])
def test_injected_error_in_a_route_is_caught(monkeypatch, fn, expected):
    _patch_everywhere(monkeypatch, fn, _scaled(fn))
    report = er.verify(*_problem())
    assert not report.passed and expected in _failed(report), report.table()


def test_injected_error_in_newton_is_caught(monkeypatch):
    newton = exact_mod.Coordinates.newton
    monkeypatch.setattr(exact_mod.Coordinates, "newton", lambda self, *a, **k: ERR * newton(
        self, *a, **k))
    failed = _failed(er.verify(*_problem()))
    for method in ("structured", "layerwise"):
        for spectral in ("none", "abs", "clip"):
            assert f"newton/{method}/hessian/{spectral}" in failed


def test_injected_error_in_per_sample_directions_is_caught(monkeypatch):
    fn = per_sample_mod.per_sample_directions

    def wrong(*args, **kw):
        D, d = fn(*args, **kw)
        return ERR * D, ERR * d

    _patch_everywhere(monkeypatch, fn, wrong)
    failed = _failed(er.verify(*_problem()))
    assert {f"per_sample/newton/{c}/{s}" for c in ("hessian", "ggn")
            for s in ("none", "abs", "clip")} <= failed


def test_injected_error_in_per_sample_eigenvalues_is_caught(monkeypatch):
    fn = per_sample_mod.per_sample_eigenvalues
    _patch_everywhere(monkeypatch, fn, _scaled(fn))
    failed = _failed(er.verify(*_problem()))
    assert {"per_sample/eigenvalues/hessian", "per_sample/eigenvalues/ggn"} <= failed


def test_consistent_error_in_every_ggn_route_is_caught(monkeypatch):
    """C and C M scaled only for Gauss-Newton rows, M_l only with ggn=True (L = 3 > 1)."""
    core, apply_core = factor_mod.core, factor_mod.apply_core
    backprop_M = layerwise_mod.backprop_M

    def ggn_core(state, rows):
        return ERR * core(state, rows) if not rows.K else core(state, rows)

    def ggn_apply_core(state, rows, M):
        return ERR * apply_core(state, rows, M) if not rows.K else apply_core(state, rows, M)

    def ggn_M(state, ggn=False):
        M = backprop_M(state, ggn)
        return [None] + [ERR * m for m in M[1:]] if ggn else M

    _patch_everywhere(monkeypatch, core, ggn_core)
    _patch_everywhere(monkeypatch, apply_core, ggn_apply_core)
    _patch_everywhere(monkeypatch, backprop_M, ggn_M)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = er.verify(*_problem())
    failed = _failed(report)
    assert {"ggn/dense", "ggn/eigenvalues", "ggn/layer_blocks", "ggn/layer_eigenvalues",
            "per_sample/eigenvalues/ggn"} <= failed
    assert not any("/hessian" in name for name in failed), report.table()
