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
