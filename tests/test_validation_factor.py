"""Input checks of HessianFactor products and of the forward pass (clear errors, no NaN)."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem


@pytest.fixture
def factor():
    net = er.MLP([3, 4, 2], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 2, 0)
    return net, er.hessian_factor(net, theta, X, y)


@pytest.mark.parametrize("method,size", [("matvec", "P"), ("apply_A", "P"), ("apply_AT", "n")])
def test_factor_products_check_their_input(factor, method, size):
    net, f = factor
    n = net.num_params if size == "P" else f.rank_bound
    fn = getattr(f, method)
    assert fn(np.ones(n)).ndim == 1 and fn(np.ones((3, n))).shape[0] == 3
    with pytest.raises(ValueError, match=rf"expected \w of shape \({n},\) or \(k, {n}\), got \(5,\)"):
        fn(np.ones(5))
    with pytest.raises(ValueError, match=r"got \(2, 2, 2\)"):
        fn(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        fn(np.full(n, np.nan))
    with pytest.raises(TypeError, match="dtype float64"):
        fn(np.ones(n, dtype=np.float32))


def test_forward_and_predict_reject_nan_inputs():
    net = er.MLP([3, 4, 2])
    theta = net.init()
    X = np.ones((2, 3))
    X[1, 2] = np.nan
    for fn in (net.forward, net.predict):
        with pytest.raises(ValueError, match="X"):
            fn(theta, X)
