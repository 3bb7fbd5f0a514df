"""Edge cases with one answer on every route: tiny damping, H = 0, g = 0, r > P, complex f."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem


@pytest.mark.parametrize("spectral", ["none", "abs", "clip"])
@pytest.mark.parametrize("call", [
    lambda net, th, X, y, s: er.newton_direction(net, th, X[:1], y[:1], 1e-300, s),
    lambda net, th, X, y, s: er.newton_direction(net, th, X, y, 1e-300, s),
    lambda net, th, X, y, s: er.newton_direction(net, th, X, y, 1e-300, s, method="dense"),
    lambda net, th, X, y, s: er.newton_direction(net, th, X, y, 1e-300, s, method="layerwise"),
    lambda net, th, X, y, s: er.per_sample_directions(net, th, X, y, 1e-300, s),
], ids=["B1", "B2", "dense", "layerwise", "per_sample"])
@pytest.mark.filterwarnings("error::RuntimeWarning")   # the raise comes without an overflow
def test_tiny_damping_is_singular_on_every_route(call, spectral):
    net = er.MLP([3, 4, 2], "tanh", "cross_entropy")     # P = 26 > r: H has exact zeros
    theta, X, y = random_problem(net, 2, 0)
    with pytest.raises(er.SingularCurvatureError, match="singular to working precision"):
        call(net, theta, X, y, spectral)


def test_moderate_damping_is_never_singular_on_a_full_rank_hessian():
    net = er.MLP([1, 1, 1, 3], "gelu", "cross_entropy", bias=False)   # r = 7 > P = 5
    theta, X, y = random_problem(net, 1, 3)
    for method in ("structured", "dense", "layerwise"):
        d = er.newton_direction(net, theta, X, y, 0.1, "abs", method=method)
        assert np.all(np.isfinite(d))


def test_zero_hessian_has_no_eigenvalues_and_zero_gradient_gives_zero_direction():
    net = er.MLP([3, 4, 2], "relu", "cross_entropy", bias=False)
    rng = np.random.default_rng(0)  # W_1 < 0 and X > 0: every unit dead, a_1 = 0, g = 0, H = 0
    theta = np.concatenate([-np.ones(12), rng.standard_normal(8)])
    X, y = rng.uniform(0.5, 1.0, (3, 3)), np.array([0, 1, 1])
    spec = er.eigenvalues(net, theta, X, y)
    assert spec.values.shape == (0,) and spec.num_zeros == net.num_params
    for spectral in ("none", "abs"):
        assert np.all(er.newton_direction(net, theta, X, y, 0.1, spectral) == 0.0)
        D, d = er.per_sample_directions(net, theta, X, y, 0.1, spectral)
        assert np.all(D == 0.0) and np.all(d == 0.0)


def test_per_sample_eigenvalues_count_never_exceeds_P():
    net = er.MLP([1, 1, 1, 3], "tanh", "mse", bias=False)     # r = 7 > P = 5
    theta, X, y = random_problem(net, 4, 1)
    values = er.per_sample_eigenvalues(net, theta, X, y)
    assert values.shape == (4, 5)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    for i in range(4):
        ref = np.linalg.eigvalsh(Hs[i])
        assert np.max(np.abs(np.sort(values[i]) - ref)) <= 50 * 7 * np.finfo(float).eps * np.max(np.abs(ref))


def test_complex_spectral_callable_is_rejected():
    net = er.MLP([3, 4, 2], "sin", "mse")
    theta, X, y = random_problem(net, 1, 0)
    for method in ("structured", "layerwise", "dense"):
        with pytest.raises(ValueError, match="real floating"):
            er.newton_direction(net, theta, X, y, 0.1, lambda mu: np.abs(mu) + 0j, method=method)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("kwargs", [{}, {"spectral": "abs"}, {"method": "dense"},
                                    {"method": "dense", "spectral": "clip"},
                                    {"method": "layerwise"}])
def test_huge_but_well_conditioned_curvature_is_not_called_singular(kwargs):
    # H = 2 X^2 / n_L I = 1e200 I: |H|_F squared would overflow; d = -H^{-1} g = -theta exactly
    net = er.MLP([1, 2], "tanh", "mse", bias=False)
    theta, X, y = np.array([0.5, -0.25]), np.array([[1e100]]), np.array([[1.0, 2.0]])
    d = er.newton_direction(net, theta, X, y, 1e-3, **kwargs)
    np.testing.assert_allclose(d, -theta, rtol=1e-12)
    D, _ = er.per_sample_directions(net, theta, X, y, 1e-3)
    np.testing.assert_allclose(D[0], -theta, rtol=1e-12)
