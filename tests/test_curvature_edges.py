"""Curvature edge cases and bad input (each one named in the curvature issue)."""

import re
import warnings

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem

from .conftest import EPS, relerr


def _agree_with_dense(net, theta, X, y, lam=1e-2):
    H = er.hessian(net, theta, X, y)
    ev = np.linalg.eigvalsh(H)
    for route in ("gram", "qr"):
        spec = er.hessian_factor(net, theta, X, y, route=route).eigh()
        r = X.shape[0] * net.rank_bound
        assert np.max(np.abs(spec.full() - ev)) <= 50 * r * EPS * max(np.max(np.abs(ev)), 1e-300)
    g = net.gradient(theta, X, y)
    mu, V = np.linalg.eigh(H)
    for method in ("structured", "layerwise", "dense"):
        d = er.newton_direction(net, theta, X, y, damping=lam, spectral="abs", method=method)
        if method != "layerwise":
            ref = -(V @ ((V.T @ g) / (np.abs(mu) + lam)))
            assert np.linalg.norm(d - ref) <= 1e-10 * max(np.linalg.norm(ref), 1e-300)
        assert np.all(np.isfinite(d))
    return H, g


def test_one_layer_network_has_rank_bound_n_L():
    net = er.MLP([4, 3], "tanh", "cross_entropy")
    assert net.rank_bound == 3
    theta, X, y = random_problem(net, 1, 0)
    H, _ = _agree_with_dense(net, theta, X, y)
    assert np.linalg.matrix_rank(H) <= 3


@pytest.mark.parametrize("sizes,loss", [([1, 1, 1], "mse"), ([3, 1, 4, 1], "mse"),
                                        ([2, 1, 2], "cross_entropy")])
def test_width_one_layers_and_output_width_one(sizes, loss):
    net = er.MLP(sizes, "sigmoid", loss)
    theta, X, y = random_problem(net, 2, 3)
    _agree_with_dense(net, theta, X, y)


def test_zero_gradient_gives_zero_direction():
    net = er.MLP([3, 4, 2], "tanh", "mse")
    theta, X, _ = random_problem(net, 2, 0)
    y = net.predict(theta, X)  # residual 0: g = 0 and delta_l = 0 (K rows of G vanish)
    _H, g = _agree_with_dense(net, theta, X, y)
    assert np.all(g == 0)
    for spectral in ("none", "abs", "clip"):
        assert np.all(er.newton_direction(net, theta, X, y, 1e-3, spectral) == 0)


def test_dead_relus():
    net = er.MLP([3, 5, 4, 3], "relu", "cross_entropy")
    theta, X, y = random_problem(net, 3, 1)
    (_W1, b1), _, _ = net.unflatten(theta)
    b1[:3] = -50.0  # three of five first-layer units dead on every sample
    spec = er.eigenvalues(net, theta, X, y)
    assert spec.num_zeros > net.num_params - 3 * net.rank_bound
    _agree_with_dense(net, theta, X, y)


def test_layer_with_every_unit_dead_gives_empty_block_not_an_error():
    # the only hidden unit is dead, so layer 1's low-rank factor has rank 0
    net = er.MLP([2, 1, 2], "relu", "cross_entropy", bias=False)
    theta = np.array([0.19369308, -0.32557075, -0.91805295, -0.96694473])
    X, y = np.array([[0.34558419, 0.82161814]]), np.array([1])
    g = net.gradient(theta, X, y)
    for method in ("structured", "layerwise", "dense"):
        d = er.newton_direction(net, theta, X, y, damping=1e8, spectral="abs", method=method)
        assert np.linalg.norm(d + g / 1e8) <= 1e-6 * np.linalg.norm(g) / 1e8 + 1e-300


def test_duplicate_samples_in_a_batch():
    net = er.MLP([3, 4, 3], "gelu", "cross_entropy")
    theta, X, y = random_problem(net, 3, 2)
    X = np.concatenate([X, X[:2]])
    y = np.concatenate([y, y[:2]])
    _agree_with_dense(net, theta, X, y)


def test_logits_of_size_1e3():
    net = er.MLP([3, 4, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 2, 4)
    theta[net.layer_slice(2)] *= 1e3
    z = net.predict(theta, X)
    assert np.max(np.abs(z)) > 300
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _agree_with_dense(net, theta, X, y)


# ---- bad input ------------------------------------------------------------------------------
@pytest.fixture
def problem():
    net = er.MLP([3, 4, 3], "tanh", "cross_entropy")
    return (net, *random_problem(net, 2, 0))


@pytest.mark.parametrize("damping", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_damping(problem, damping):
    net, theta, X, y = problem
    with pytest.raises(ValueError, match="expected damping to be finite and > 0"):
        er.newton_direction(net, theta, X, y, damping=damping)
    with pytest.raises(ValueError, match="expected damping"):
        er.per_sample_directions(net, theta, X, y, damping=damping)


def test_damping_type(problem):
    net, theta, X, y = problem
    with pytest.raises(TypeError, match="expected damping to be a real number, got str"):
        er.newton_direction(net, theta, X, y, damping="1e-3")


def test_unknown_names_list_valid_ones(problem):
    net, theta, X, y = problem
    with pytest.raises(ValueError, match=r"expected method in \['dense', 'layerwise', 'structured'\]"):
        er.newton_direction(net, theta, X, y, method="lanczos")
    with pytest.raises(ValueError, match=r"expected spectral in \['none', 'abs', 'clip'\] or a callable"):
        er.newton_direction(net, theta, X, y, spectral="sqrt")
    with pytest.raises(ValueError, match=r"expected curvature in \['ggn', 'hessian'\], got 'fisher'"):
        er.eigenvalues(net, theta, X, y, curvature="fisher")
    with pytest.raises(ValueError, match=r"expected method in .* got 'exact'"):
        er.eigenvalues(net, theta, X, y, method="exact")
    with pytest.raises(ValueError, match=r"expected route in \['auto', 'basis', 'gram', 'qr'\]"):
        er.hessian_factor(net, theta, X, y, route="svd")


@pytest.mark.parametrize("fn,msg", [
    (lambda mu: mu, r"expected spectral\(mu\) >= 0, got minimum"),
    (lambda mu: mu * np.nan, "expected spectral.mu. to return finite values"),
    (lambda mu: mu[:1] ** 2, r"expected spectral\(mu\) to return an array of mu's shape"),
    (lambda mu: 1.0, r"expected spectral\(mu\) to return an array"),
])
def test_bad_callable_spectral(fn, msg):
    net = er.MLP([3, 4, 3], "sin", "mse")
    theta, X, y = random_problem(net, 1, 0)
    assert np.min(er.eigenvalues(net, theta, X, y).values) < 0
    for method in ("structured", "layerwise", "dense"):
        with pytest.raises(ValueError, match=msg):
            er.newton_direction(net, theta, X, y, spectral=fn, method=method)


def test_callable_spectral_matches_builtin():
    net = er.MLP([3, 4, 3], "sin", "mse")
    theta, X, y = random_problem(net, 2, 0)
    d1 = er.newton_direction(net, theta, X, y, 0.1, spectral=np.abs)
    d2 = er.newton_direction(net, theta, X, y, 0.1, spectral="abs")
    assert relerr(d1, d2) <= 1e-15


def _indefinite():
    net = er.MLP([3, 4, 3], "sin", "mse")
    theta, X, y = random_problem(net, 1, 0)
    mu_min = float(np.min(er.eigenvalues(net, theta, X, y, method="dense").values))
    assert mu_min < 0
    return net, theta, X, y, mu_min


def test_not_descent_warns_with_smallest_eigenvalue():
    net, theta, X, y, mu_min = _indefinite()
    lam = -mu_min * (1 - 1e-6)
    with pytest.warns(er.NotDescentWarning,
                      match=re.escape(f"smallest eigenvalue of H = {mu_min:.6e}")):
        d = er.newton_direction(net, theta, X, y, damping=lam)
    g = net.gradient(theta, X, y)
    assert g @ d >= 0 and np.all(np.isfinite(d))
    H = er.hessian(net, theta, X, y)  # still the exact solution of (H + lam I) d = -g
    assert np.linalg.norm((H + lam * np.eye(len(g))) @ d + g) <= 1e-6 * np.linalg.norm(g)


def test_singular_damping_is_a_clear_error():
    net, theta, X, y, mu_min = _indefinite()
    with pytest.raises(er.SingularCurvatureError, match="H \\+ damping I is singular"):
        er.newton_direction(net, theta, X, y, damping=-mu_min)


def test_hvp_direction_checked(problem):
    net, theta, X, y = problem
    with pytest.raises(ValueError, match=r"expected v of shape \(31,\), got \(30,\)"):
        er.hvp(net, theta, X, y, np.ones(30))
    with pytest.raises(TypeError, match=r"expected v of dtype float64 \(theta's\), got float32"):
        er.hvp(net, theta, X, y, np.ones(31, dtype=np.float32))


def test_net_type_checked(problem):
    _, theta, X, y = problem
    with pytest.raises(TypeError, match=r"expected net to be an esso_ref\.MLP, got str"):
        er.hessian("net", theta, X, y)


def test_failed_factorisations_are_reported_not_returned():
    """CuPy returns NaN from a failed factorisation; the checked wrappers raise instead."""
    from esso_ref.curvature import linalg

    nan = np.full((3, 3), np.nan)
    with pytest.raises(er.LinAlgError, match=r"eigh of a \(3, 3\) matrix (failed|returned)"):
        linalg.eigh(nan)
    with pytest.raises(er.LinAlgError, match=r"solve of a .* failed: Singular matrix"):
        linalg.solve(np.zeros((3, 3)), np.ones(3))
    with pytest.raises(er.LinAlgError, match=r"qr of a \(3, 3\) matrix returned non-finite"):
        linalg.qr(nan)
    # the NaN a GPU solver would hand back silently
    with pytest.raises(er.LinAlgError, match=r"eigvalsh of a .* returned non-finite values"):
        linalg._run("eigvalsh", lambda M: np.full(M.shape[0], np.nan), np.eye(3))
