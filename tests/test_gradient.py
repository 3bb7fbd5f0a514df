"""Gradients (eq. (8)) vs complex step and Richardson central differences, drawn networks."""

from hypothesis import given

import esso_ref as er
from esso_ref.testing import networks
from esso_ref.verification import complex_step_gradient, richardson_gradient

from .conftest import relerr


@given(networks(max_layers=4, max_width=8, max_batch=5))
def test_gradient_vs_complex_step(problem):
    net, theta, X, y = problem
    g = net.gradient(theta, X, y)
    assert relerr(g, complex_step_gradient(net, theta, X, y)) <= 1e-13


@given(networks(max_layers=4, max_width=8, max_batch=5))
def test_gradient_vs_richardson(problem):
    net, theta, X, y = problem
    g = net.gradient(theta, X, y)
    assert relerr(g, richardson_gradient(net, theta, X, y)) <= 1e-8


def test_every_activation_and_loss_on_strict_device1():
    import array_api_strict as xs

    from esso_ref.problems import random_problem

    for act in er.ACTIVATIONS:
        for loss in er.LOSSES:
            net = er.MLP([3, 4, 3, 2], act, loss)
            theta, X, y = random_problem(net, 3, 0, xp="array_api_strict",
                                         device=xs.Device("device1"))
            g = net.gradient(theta, X, y)
            assert relerr(g, complex_step_gradient(net, theta, X, y)) <= 1e-13, (act, loss)
