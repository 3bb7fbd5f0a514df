"""Every curvature route on every array backend (array-api-strict stands in for a GPU).

``er.verify`` runs all the comparisons (gradient, HVP, dense Hessian, factorisation, Gram,
spectrum, layer blocks, Newton directions of every method x spectral x curvature) in the
namespace of its inputs, so one passing report per case shows the library code uses only the
array API standard on that backend.
"""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem

from .conftest import relerr

CASES = [(a, l) for a in sorted(er.ACTIVATIONS) for l in sorted(er.LOSSES)]


@pytest.mark.parametrize("act,loss", CASES)
def test_verify_passes_on_backend(backend, act, loss):
    name, device = backend
    for sizes, batch, bias in (([4, 5, 3], 1, True), ([3, 4, 3, 2], 3, False)):
        net = er.MLP(sizes, act, loss, bias=bias)
        theta, X, y = random_problem(net, batch, 0, xp=name, device=device)
        report = er.verify(net, theta, X, y, damping=1e-2)
        assert report.passed, report.table()
        assert not any(c.skipped for c in report.checks)


def test_curvature_results_match_numpy(backend):
    name, device = backend
    net = er.MLP([4, 5, 3], "tanh", "cross_entropy")
    args_np = random_problem(net, 3, 1)
    args = random_problem(net, 3, 1, xp=name, device=device)
    pairs = [
        (lambda a: er.hvp(net, *a, a[0] * 0 + 1.0)),
        (lambda a: er.hessian(net, *a)),
        (lambda a: er.eigenvalues(net, *a).full()),
        (lambda a: er.newton_direction(net, *a, damping=0.1, spectral="abs")),
        (lambda a: er.newton_direction(net, *a, damping=0.1, method="layerwise")),
        (lambda a: er.per_sample_directions(net, *a, damping=0.1, spectral="clip")[0]),
        (lambda a: er.hessian_factor(net, *a, route="gram").newton(0.1, "abs")),
    ]
    for fn in pairs:
        assert relerr(fn(args), fn(args_np)) <= 1e-12
    spec = er.eigenvalues(net, *args, method="layerwise")
    assert all(s.values.device == args[0].device for s in spec) if name != "numpy" else True
    assert np.isfinite(relerr(spec[0].full(), er.eigenvalues(net, *args_np,
                                                               method="layerwise")[0].full()))


@pytest.mark.parametrize("sizes", [[4, 5, 3], [6, 24, 24, 3], [5, 16, 20, 20, 2]])
def test_layer_by_layer_directions_match_numpy(backend, monkeypatch, sizes):
    """The sweeps of docs/math.md §16 (dense and low-rank pivots, eqs. (46)-(51)) on every
    backend, taken at any batch size and for one sample."""
    from esso_ref.curvature import factor, per_sample

    monkeypatch.setattr(per_sample, "SWEEP_MIN_SQUARES", 0)
    monkeypatch.setattr(factor, "STAGEWISE_MIN_ROWS", 0)
    name, device = backend
    net = er.MLP(sizes, "tanh", "cross_entropy")
    args_np = random_problem(net, 4, 2)
    args = random_problem(net, 4, 2, xp=name, device=device)
    D, mean = er.per_sample_directions(net, *args, damping=0.1)
    D_np, _ = er.per_sample_directions(net, *args_np, damping=0.1)
    assert relerr(D, D_np) <= 1e-12
    assert relerr(mean, np.mean(D_np, axis=0)) <= 1e-12
    one = er.newton_direction(net, args[0], args[1][:1, ...], args[2][:1], damping=0.1)
    assert relerr(one, D_np[0]) <= 1e-12
