"""The public strategies and assertion helpers of esso_ref.testing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import esso_ref as er
from esso_ref.testing import (
    assert_hessian_matches,
    assert_hvp_matches,
    assert_newton_matches,
    directions,
    mlp_specs,
    networks,
)


@settings(max_examples=200)
@given(networks())
def test_200_drawn_networks_verify_without_failure(problem):
    net, theta, X, y = problem
    assert 1 <= net.L <= 4 and max(net.sizes) <= 8 and 1 <= X.shape[0] <= 5
    assert theta.shape == (net.num_params,) and np.all(np.isfinite(theta))
    report = er.verify(net, theta, X, y, checks=["gradient", "hvp", "factor", "spectrum"])
    assert report.passed, report.table()


@given(mlp_specs(max_layers=2, max_width=3, activations=["relu"], losses=["mse"], bias=False))
def test_spec_restrictions_hold(net):
    assert net.L <= 2 and max(net.sizes) <= 3
    assert (net.activation, net.loss_name, net.bias) == ("relu", "mse", False)


@given(st.data())
def test_directions_live_on_theta_backend(data):
    problem = data.draw(networks(xp="array_api_strict"))
    v = data.draw(directions(problem))
    assert v.shape == problem.theta.shape and v.device == problem.theta.device


def _dense_hvp(net, theta, X, y, v):
    return er.hessian(net, theta, X, y) @ v


@given(st.data())
def test_helpers_accept_a_correct_implementation(data):
    problem = data.draw(networks(max_width=5))
    assert_hvp_matches(_dense_hvp, problem, data.draw(directions(problem)))
    assert_hessian_matches(lambda *a: er.hessian(*a, symmetric=False), problem)

    def dense_abs_newton(net, theta, X, y, lam):
        mu, V = np.linalg.eigh(er.hessian(net, theta, X, y))
        return -(V @ ((V.T @ net.gradient(theta, X, y)) / (np.abs(mu) + lam)))

    assert_newton_matches(dense_abs_newton, problem, damping=0.1)


def test_helpers_reject_a_wrong_implementation():
    net = er.MLP([3, 4, 2], "tanh", "cross_entropy")
    from esso_ref.problems import random_problem

    problem = (net, *random_problem(net, 2, 0))
    v = np.ones(net.num_params)
    with pytest.raises(AssertionError, match=r"H v: relative error .* exceeds 4500 eps"):
        assert_hvp_matches(lambda *a: 1.001 * _dense_hvp(*a), problem, v)
    with pytest.raises(AssertionError, match="Hessian: relative error"):
        assert_hessian_matches(lambda n, t, X, y: er.hessian(n, t, X, y).T * 0.0, problem)
    with pytest.raises(AssertionError, match=r"Newton direction \(spectral='abs'"):
        assert_newton_matches(lambda n, t, X, y, lam: -n.gradient(t, X, y) / lam, problem)


def test_one_output_networks_use_mse():
    """max_width = 1 drew a widest layer of 2 for cross-entropy (its single output was widened)."""

    @settings(max_examples=30, database=None)
    @given(mlp_specs(max_width=1))
    def draw(net):
        assert max(net.sizes) == 1 and net.loss_name == "mse"

    draw()

    @settings(max_examples=1, database=None)
    @given(mlp_specs(max_width=1, losses=["cross_entropy"]))
    def refused(net):
        pass

    with pytest.raises(ValueError, match="expected max_width >= 2 for loss 'cross_entropy'"):
        refused()


@pytest.mark.parametrize("kwargs, name", [({"max_batch": 0}, "max_batch"),
                                          ({"max_layers": 0}, "max_layers"),
                                          ({"max_width": 1.5}, "max_width")])
def test_strategy_bounds_are_checked_with_their_names(kwargs, name):
    """max_batch=0 gave hypothesis' 'Cannot have max_value=0 < min_value=1', naming nothing."""
    @settings(max_examples=1, database=None)
    @given(networks(**kwargs))
    def draw(problem):
        pass

    with pytest.raises(ValueError, match=f"expected {name} to be an integer >= 1"):
        draw()
