"""Every bad input at the public boundary raises with 'expected ..., got ...'."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem


@pytest.fixture
def ce():
    net = er.MLP([3, 4, 3], "tanh", "cross_entropy")
    return (net, *random_problem(net, 4, 0))


@pytest.fixture
def mse():
    net = er.MLP([3, 4, 2], "tanh", "mse")
    return (net, *random_problem(net, 4, 0))


def test_theta_shape(ce):
    net, theta, X, y = ce
    with pytest.raises(ValueError, match=r"expected theta of shape \(31,\) .* got \(30,\)"):
        net.gradient(theta[:-1], X, y)


def test_X_shape(ce):
    net, theta, X, y = ce
    with pytest.raises(ValueError, match=r"expected X of shape \(B, 3\) or \(3,\), got \(4, 2\)"):
        net.loss(theta, X[:, :2], y)
    with pytest.raises(ValueError, match=r"got \(2, 2, 3\)"):
        net.loss(theta, np.ones((2, 2, 3)), y)


def test_labels_out_of_range(ce):
    net, theta, X, _ = ce
    with pytest.raises(ValueError, match=r"expected labels in \[0, 2\] .* got 3 at index 1"):
        net.loss(theta, X, np.array([0, 3, 1, 1]))
    with pytest.raises(ValueError, match=r"got -1 at index 0"):
        net.loss(theta, X, np.array([-1, 0, 1, 1]))


def test_labels_non_integer(ce):
    net, theta, X, _ = ce
    with pytest.raises(TypeError, match=r"expected integer class labels .* got dtype float64"):
        net.loss(theta, X, np.array([0.0, 1.0, 1.0, 2.0]))


def test_labels_shape(ce):
    net, theta, X, y = ce
    with pytest.raises(ValueError, match=r"expected labels y of shape \(4,\), got \(3,\)"):
        net.loss(theta, X, y[:3])


def test_mse_target_shape(mse):
    net, theta, X, y = mse
    with pytest.raises(ValueError, match=r"expected targets y of shape \(4, 2\) for mse, got \(4,\)"):
        net.loss(theta, X, y[:, 0])
    net1 = er.MLP([3, 2, 1], loss="mse")
    t1, X1, y1 = random_problem(net1, 4, 0)
    with pytest.raises(ValueError, match=r"use y\[:, None\]"):
        net1.loss(t1, X1, y1[:, 0])


@pytest.mark.parametrize("arg", ["X", "y", "theta"])
def test_non_finite_names_argument_and_index(mse, arg):
    net, theta, X, y = mse
    values = {"theta": theta.copy(), "X": X.copy(), "y": y.copy()}
    bad = values[arg]
    if bad.ndim == 2:
        bad[1, 1] = np.nan
        where = r"\(1, 1\)"
    else:
        bad[5] = np.inf
        where = "5"
    with pytest.raises(ValueError, match=rf"expected finite values in {arg}, got .* at index {where}"):
        net.gradient(values["theta"], values["X"], values["y"])


def test_unsupported_dtypes(ce):
    net, theta, X, y = ce
    with pytest.raises(TypeError, match="expected theta of dtype float32 or float64, got int64"):
        net.loss(np.zeros(net.num_params, dtype=np.int64), X, y)
    with pytest.raises(TypeError, match="expected X of dtype float32 or float64, got complex128"):
        net.loss(theta, X.astype(complex), y)
    with pytest.raises(TypeError, match=r"expected X of dtype float64 \(theta's\), got float32"):
        net.loss(theta, X.astype(np.float32), y)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"expected an activation in \[.*\], got 'foo'"):
        er.MLP([2, 2], activation="foo")
    with pytest.raises(ValueError, match=r"expected a loss in \[.*\], got 'bar'"):
        er.MLP([2, 2], loss="bar")


def test_sizes_errors():
    with pytest.raises(ValueError, match=r"expected sizes with at least 2 entries .* got \[4\]"):
        er.MLP([4])
    with pytest.raises(ValueError, match=r"expected positive widths, got 0 at sizes\[1\]"):
        er.MLP([4, 0, 2])
    with pytest.raises(TypeError, match=r"expected integer widths, got 2.5 at sizes\[1\]"):
        er.MLP([4, 2.5, 2])


def test_init_errors():
    net = er.MLP([2, 2])
    with pytest.raises(ValueError, match="expected dtype 'float32' or 'float64', got 'int8'"):
        net.init(0, dtype="int8")
    with pytest.raises(ValueError, match="expected a non-negative integer seed, got -1"):
        net.init(-1)
    with pytest.raises(ValueError, match=r"expected a backend in \[.*\], got 'jax'"):
        net.init(0, xp="jax")


def test_not_an_array(ce):
    net, theta, _X, y = ce
    with pytest.raises(TypeError, match="expected X to be an array, got str"):
        net.loss(theta, "abc", y)
