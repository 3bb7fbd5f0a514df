"""esso_ref.testing eigenvalue helpers: the 50 r eps |H|_2 rule, zero multiplicity, counts."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import esso_ref as er
from esso_ref.problems import random_problem
from esso_ref.testing import assert_eigenvalues_close, assert_eigenvalues_match, networks

EPS = float(np.finfo(np.float64).eps)


def _problem():
    net = er.MLP([3, 4, 2], "tanh", "cross_entropy")
    return (net, *random_problem(net, 2, seed=1))


def test_dense_eigenvalues_match_the_structured_spectrum_with_its_zeros():
    net, theta, X, y = _problem()
    spec = er.eigenvalues(net, theta, X, y)
    assert spec.num_zeros > 0
    dense = np.linalg.eigvalsh(er.hessian(net, theta, X, y))
    r = 2 * net.rank_bound
    assert_eigenvalues_close(dense[::-1], spec, r)  # order does not matter
    assert_eigenvalues_close(spec, dense, r)
    assert_eigenvalues_close(spec.full(), spec, r, norm_H=1.0)


def test_the_tolerance_is_50_r_eps_norm_H():
    mu_ref = np.array([-2.0, 0.0, 0.0, 4.0])
    r, bound = 3, 50 * 3 * EPS * 4.0
    assert_eigenvalues_close(mu_ref + np.array([0, 0, 0.99 * bound, 0]), mu_ref, r)
    with pytest.raises(AssertionError, match=r"eigenvalues \(r = 3\).*exceeds 150 eps"):
        assert_eigenvalues_close(mu_ref + np.array([0, 0, 1.01 * bound, 0]), mu_ref, r)
    assert_eigenvalues_close(mu_ref + 0.99 * bound / 4.0, mu_ref, r, norm_H=1.0)
    with pytest.raises(AssertionError):
        assert_eigenvalues_close(mu_ref + 1.01 * bound / 4.0, mu_ref, r, norm_H=1.0)


def test_a_missing_or_extra_eigenvalue_fails_with_the_count():
    net, theta, X, y = _problem()
    spec = er.eigenvalues(net, theta, X, y)
    with pytest.raises(AssertionError, match=f"expected {net.num_params} eigenvalues.*got "
                                             f"{net.num_params - 1}"):
        assert_eigenvalues_close(spec.full()[1:], spec, 2 * net.rank_bound)
    with pytest.raises(AssertionError, match="got"):
        assert_eigenvalues_close(spec.values, spec, 2 * net.rank_bound)  # zeros left out
    with pytest.raises(AssertionError, match="exceeds"):
        assert_eigenvalues_close(np.concatenate([spec.full()[1:], [0.0]]), spec,
                                 2 * net.rank_bound)


def test_assert_eigenvalues_match_catches_a_wrong_function():
    problem = _problem()
    assert_eigenvalues_match(lambda *a: np.linalg.eigvalsh(er.hessian(*a)), problem)
    with pytest.raises(AssertionError, match="eigenvalues"):
        assert_eigenvalues_match(lambda *a: 1.001 * np.linalg.eigvalsh(er.hessian(*a)), problem)


@given(networks(max_layers=2, max_width=4, max_batch=3), st.booleans())
def test_dense_eigvalsh_passes_on_drawn_networks(problem, reverse):
    net, theta, X, y = problem
    mu = np.linalg.eigvalsh(er.hessian(net, theta, X, y))
    assert_eigenvalues_match(lambda *a: mu[::-1] if reverse else mu, problem)
