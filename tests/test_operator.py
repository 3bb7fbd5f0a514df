"""er.as_linear_operator against the dense matrix and the structured spectrum."""

import numpy as np
import pytest
from scipy.sparse.linalg import cg, eigsh, minres

import esso_ref as er
from esso_ref.problems import random_problem

from .conftest import relerr


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_operator_matches_dense_matrix(curvature):
    net = er.MLP([4, 6, 5, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 3, 0)
    op = er.as_linear_operator(net, theta, X, y, curvature=curvature, damping=0.5)
    H = (er.hessian(net, theta, X, y) if curvature == "hessian"
         else er.hessian_factor(net, theta, X, y, "ggn").to_dense())
    M = H + 0.5 * np.eye(net.num_params)
    assert relerr(op @ np.eye(net.num_params), M) <= 1e-13
    v = np.random.default_rng(0).standard_normal(net.num_params)
    assert relerr(op.matvec(v), M @ v) <= 1e-13 and relerr(op.rmatvec(v), M @ v) <= 1e-13


def test_eigsh_top_eigenvalues_match_structured_spectrum():
    net = er.MLP([10, 16, 12, 4], "gelu", "cross_entropy")
    theta, X, y = random_problem(net, 2, 1)
    op = er.as_linear_operator(net, theta, X, y)
    top = np.sort(eigsh(op, k=6, which="LA", tol=1e-13, return_eigenvectors=False))
    mu = np.sort(er.eigenvalues(net, theta, X, y).values)[-6:]
    assert np.max(np.abs(top - mu)) <= 1e-10 * np.max(np.abs(mu))


def test_cg_and_minres_solve_the_damped_system():
    net = er.MLP([5, 8, 3], "softplus", "mse")
    theta, X, y = random_problem(net, 2, 2)
    g = net.gradient(theta, X, y)
    lam = 1.0
    ggn = er.as_linear_operator(net, theta, X, y, curvature="ggn", damping=lam)
    x, info = cg(ggn, -g, rtol=1e-12, maxiter=2000)
    d = er.newton_direction(net, theta, X, y, damping=lam, curvature="ggn")
    assert info == 0 and relerr(x, d) <= 1e-9
    lam = 1.0  # H + lam I indefinite here (mu_min = -1.87): minres and the push-through (27)
    op = er.as_linear_operator(net, theta, X, y, damping=lam)
    x, info = minres(op, -g, rtol=1e-12, maxiter=2000)
    assert info == 0
    with pytest.warns(er.NotDescentWarning) as record:
        d = er.newton_direction(net, theta, X, y, damping=lam)
    assert record[0].filename == __file__
    assert relerr(x, d) <= 1e-8


def test_operator_bad_input():
    net = er.MLP([3, 2])
    theta, X, y = random_problem(net, 1, 0)
    with pytest.raises(ValueError, match="expected damping to be finite and >= 0"):
        er.as_linear_operator(net, theta, X, y, damping=-1.0)
    with pytest.raises(ValueError, match="expected curvature in"):
        er.as_linear_operator(net, theta, X, y, curvature="fisher")
    t, Xs, ys = random_problem(net, 1, 0, xp="array_api_strict")
    with pytest.raises(TypeError, match="expected theta as a NumPy or CuPy array"):
        er.as_linear_operator(net, t, Xs, ys)
