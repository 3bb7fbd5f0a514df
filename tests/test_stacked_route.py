"""Which route the stacked plain directions take (per_sample.SWEEP_MIN_SQUARES), and that both
routes give each sample's own exact direction."""

import warnings

import numpy as np
import pytest

import esso_ref as er
from esso_ref.curvature import per_sample, stagewise
from esso_ref.curvature.spectral import NotDescentWarning
from esso_ref.problems import random_problem

EPS = np.finfo(np.float64).eps


def _backward_errors(net, theta, X, y, lam, D):
    """Normwise backward error of every row of D against the sample's dense H_i (HVP columns)."""
    H = er.hessian(net, theta, X, y, per_sample=True)
    G = net.per_sample_gradients(theta, X, y)
    out = []
    for i in range(X.shape[0]):
        M = H[i] + lam * np.eye(net.num_params)
        r = M @ D[i] + G[i]
        out.append(np.linalg.norm(r) / (np.linalg.norm(M, 2) * np.linalg.norm(D[i])
                                        + np.linalg.norm(G[i])) / EPS)
    return out


@pytest.mark.parametrize("sizes, batch, sweeps", [
    ([16, 16, 10], 8, False),        # B r^2 / L = 7.1e3: the layer basis
    ([8, 8, 8, 8, 8, 4], 4, False),  # 3.7e3, deep
    ([64, 32, 32, 10], 1, False),    # 6.3e3, the sweeps' fixed cost dominates one sample
    ([16, 16, 10], 32, True),        # 2.8e4: the sweeps
    ([32, 32, 10], 16, True),        # 4.4e4
])
def test_small_batches_take_the_layer_basis_and_large_ones_the_sweeps(sizes, batch, sweeps,
                                                                      monkeypatch):
    net = er.MLP(sizes)
    theta, X, y = random_problem(net, batch, 1)
    assert (batch * net.rank_bound ** 2 >= per_sample.SWEEP_MIN_SQUARES * net.L) == sweeps
    calls = []
    real = stagewise.solve
    monkeypatch.setattr(stagewise, "solve", lambda *a, **k: calls.append(1) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotDescentWarning)
        D, d_mean = er.per_sample_directions(net, theta, X, y, damping=0.1)
    assert bool(calls) == sweeps
    assert max(_backward_errors(net, theta, X, y, 0.1, D)) <= 20
    eps = np.finfo(np.float64).eps  # the sweeps sum the pairs, in another order
    assert np.abs(d_mean - D.mean(axis=0)).max() <= 4 * batch * eps * np.abs(D).max()
    if not sweeps:
        assert np.array_equal(d_mean, D.mean(axis=0))


def test_the_layer_basis_route_warns_once_with_the_count_of_ascending_samples():
    net = er.MLP([6, 5, 5, 3])  # B r^3 = 1.5e5: the layer basis
    theta, X, y = random_problem(net, 12, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        D, _ = er.per_sample_directions(net, theta, X, y, damping=0.5)
    G = net.per_sample_gradients(theta, X, y)
    ascending = int(np.sum(np.einsum("ij,ij->i", G, D) >= 0))
    assert 0 < ascending < 12, "the configuration must have some ascending directions"
    found = [w for w in caught if issubclass(w.category, NotDescentWarning)]
    assert len(found) == 1 and str(found[0].message).startswith(f"{ascending} of 12 ")
