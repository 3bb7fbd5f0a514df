"""The stochastic case at scale: [784, 512, 512, 10], P = 669,706, r = 2,058."""

import tracemalloc

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator, eigsh

import esso_ref as er
from esso_ref.problems import random_problem


@pytest.mark.slow
def test_structured_spectrum_and_abs_direction_without_P_by_r_arrays():
    net = er.MLP([784, 512, 512, 10], "tanh", "cross_entropy")
    P, r = net.num_params, net.rank_bound
    assert (P, r) == (669_706, 2_058)
    theta, X, y = random_problem(net, 1, 0)
    tracemalloc.start()
    try:
        f = er.hessian_factor(net, theta, X, y)
        spec = f.eigh()
        d = f.newton(1e-3, "abs")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f.route == "basis"
    # one P x r float64 array is 11 GB; the whole run stays below 5% of that
    assert peak < 0.05 * P * r * 8, f"peak {peak / 1e6:.0f} MB"
    assert spec.values.shape == (r,) and spec.num_zeros == P - r
    g = net.gradient(theta, X, y)
    assert g @ d < 0 and np.all(np.isfinite(d))
    # independent route: Lanczos on Hessian-vector products for the extreme eigenvalues
    op = LinearOperator((P, P), matvec=lambda v: er.hvp(net, theta, X, y, np.ravel(v)),
                        dtype=np.float64)
    top = eigsh(op, k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0]
    bottom = eigsh(op, k=1, which="SA", tol=1e-12, return_eigenvectors=False)[0]
    scale = np.max(np.abs(spec.values))
    assert abs(top - np.max(spec.values)) <= 1e-9 * scale
    assert abs(bottom - np.min(spec.values)) <= 1e-9 * scale
