"""MLP: layout, init, flatten / unflatten, per-sample gradients, bias=False."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem


def test_num_params_and_rank_bound():
    net = er.MLP([784, 512, 512, 10])
    assert net.num_params == 669_706
    assert net.rank_bound == 2_058
    assert er.MLP([3, 2], bias=False).num_params == 6
    assert er.MLP([3, 2]).rank_bound == 2


def test_init_is_seeded_and_uses_pytorch_bounds():
    net = er.MLP([4, 3, 2])
    a, b = net.init(seed=5), net.init(seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, net.init(seed=6))
    (W1, b1), (W2, _b2) = net.unflatten(a)
    assert np.max(np.abs(W1)) <= 0.5 and np.max(np.abs(b1)) <= 0.5
    assert np.max(np.abs(W2)) <= 1 / np.sqrt(3)
    assert net.init(0, dtype="float32").dtype == np.float32


def test_flatten_unflatten_round_trip_and_order():
    net = er.MLP([3, 4, 2])
    theta = np.arange(net.num_params, dtype=np.float64)
    params = net.unflatten(theta)
    assert params[0][0].shape == (4, 3) and params[0][1].shape == (4,)
    # W_1 row-major first, then b_1, then W_2, b_2 (PyTorch parameters_to_vector order)
    assert params[0][0][1, 0] == 3 and params[0][1][0] == 12 and params[1][0][0, 0] == 16
    assert np.array_equal(er.flatten(params), theta)
    net_nb = er.MLP([3, 4, 2], bias=False)
    params_nb = net_nb.unflatten(np.arange(net_nb.num_params, dtype=float))
    assert params_nb[0][1] is None and params_nb[1][0][0, 0] == 12


def test_per_sample_gradients_average_to_gradient():
    net = er.MLP([3, 5, 4], "sin", "mse")
    theta, X, y = random_problem(net, 6, 1)
    G = net.per_sample_gradients(theta, X, y)
    assert G.shape == (6, net.num_params)
    assert np.allclose(G.mean(axis=0), net.gradient(theta, X, y), rtol=0, atol=1e-15)
    single = net.gradient(theta, X[2], y[2])
    assert np.allclose(G[2], single, rtol=0, atol=1e-15)


def test_single_sample_is_batch_of_one():
    net = er.MLP([3, 4, 3])
    theta, X, y = random_problem(net, 1, 0)
    assert net.loss(theta, X[0], y[0]) == net.loss(theta, X, y)
    assert np.array_equal(net.gradient(theta, X[0], int(y[0])), net.gradient(theta, X, y))


def test_forward_cache_and_predict():
    net = er.MLP([2, 3, 2], "tanh")
    theta, X, _ = random_problem(net, 4, 2)
    fwd = net.forward(theta, X)
    (W1, b1), (W2, b2) = net.unflatten(theta)
    assert np.allclose(fwd.z[1], X @ W1.T + b1) and np.allclose(fwd.a[1], np.tanh(fwd.z[1]))
    assert np.allclose(net.predict(theta, X), fwd.a[1] @ W2.T + b2)


def test_repr_names_the_network():
    assert repr(er.MLP([2, 3])) == "MLP([2, 3], activation='tanh', loss='cross_entropy', bias=True)"


@pytest.mark.parametrize("sizes", [[5], [], [3, 0, 2], [3, -1]])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="expected"):
        er.MLP(sizes)


def test_single_output_cross_entropy_is_refused():
    """A softmax over one logit is constant: loss, gradient and Hessian would be identically 0."""
    with pytest.raises(ValueError, match=r"at least 2 outputs for loss 'cross_entropy'.*\[3, 4, 1\]"):
        er.MLP([3, 4, 1])
    assert er.MLP([3, 4, 1], loss="mse").sizes[-1] == 1
    assert er.MLP([3, 4, 2]).sizes[-1] == 2
