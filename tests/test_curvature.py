"""Exact curvature (eqs. (10)-(37)) against independent routes, on drawn networks."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import esso_ref as er
from esso_ref.curvature.layerwise import layer_block_dense
from esso_ref.curvature.state import prepare
from esso_ref.testing import directions, networks
from esso_ref.verification import complex_step_hvp

from .conftest import EPS, relerr

NETS = networks(max_layers=4, max_width=8, max_batch=5)


@given(st.data())
def test_hvp_vs_complex_step_and_symmetry(data):
    net, theta, X, y = problem = data.draw(NETS)
    u, v = data.draw(directions(problem)), data.draw(directions(problem))
    Hv, Hu = er.hvp(net, theta, X, y, v), er.hvp(net, theta, X, y, u)
    assert relerr(Hv, complex_step_hvp(net, theta, X, y, v)) <= 1e-13
    scale = np.linalg.norm(u) * np.linalg.norm(Hv) + np.linalg.norm(v) * np.linalg.norm(Hu)
    assert abs(u @ Hv - v @ Hu) <= 1e-13 * scale


@given(NETS)
def test_factor_gram_and_adjoint(problem):
    net, theta, X, y = problem
    f = er.hessian_factor(net, theta, X, y)
    H = er.hessian(net, theta, X, y)
    A = f.materialize_A()
    assert f.rank_bound == X.shape[0] * net.rank_bound == A.shape[0]
    assert relerr(f.to_dense(), H) <= 1e-13
    assert relerr(f.gram(), A @ A.T) <= 1e-13
    rng = np.random.default_rng(0)
    v, w = rng.standard_normal(net.num_params), rng.standard_normal(f.rank_bound)
    assert abs(f.apply_A(v) @ w - v @ f.apply_AT(w)) <= 1e-14 * np.linalg.norm(A @ v) * np.linalg.norm(w)
    assert relerr(f.matvec(v), H @ v) <= 1e-13
    assert relerr(f.gradient(), net.gradient(theta, X, y)) <= 1e-14


@given(NETS, st.sampled_from(["gram", "qr"]))
def test_structured_spectrum_vs_dense(problem, route):
    net, theta, X, y = problem
    H = er.hessian(net, theta, X, y)
    ev = np.linalg.eigvalsh(H)
    spec = er.hessian_factor(net, theta, X, y, route=route).eigh()
    r = X.shape[0] * net.rank_bound
    assert spec.size == net.num_params and spec.num_zeros >= net.num_params - r
    assert np.max(np.abs(spec.full() - ev)) <= 50 * r * EPS * np.max(np.abs(ev))
    nuclear = max(np.sum(np.abs(spec.values)), 1e-300)
    assert abs(np.sum(spec.values) - np.trace(H)) <= 1e-12 * nuclear
    assert abs(np.sum(spec.values**2) - np.sum(H * H)) <= 1e-12 * max(np.sum(H * H), 1e-300)
    auto = er.eigenvalues(net, theta, X, y, method="structured")
    assert np.max(np.abs(auto.full() - ev)) <= 50 * r * EPS * np.max(np.abs(ev))
    dense = er.eigenvalues(net, theta, X, y, method="dense")
    assert dense.num_zeros == 0 and np.allclose(dense.values, ev, rtol=0, atol=1e-14)


@given(NETS)
def test_eigenvectors_are_orthonormal_and_exact(problem):
    net, theta, X, y = problem
    f = er.hessian_factor(net, theta, X, y)
    spec = f.eigh(vectors=True)
    Q, mu = spec.vectors, spec.values
    assert Q.shape == (net.num_params, mu.shape[0])
    assert np.allclose(Q.T @ Q, np.eye(mu.shape[0]), rtol=0, atol=1e-10)
    H = er.hessian(net, theta, X, y)
    scale = max(np.max(np.abs(mu)), 1e-300) if mu.size else 1.0
    assert np.max(np.abs(H @ Q - Q * mu), initial=0.0) <= 1e-10 * scale


@given(NETS)
def test_layer_blocks_and_their_spectra(problem):
    net, theta, X, y = problem
    H = er.hessian(net, theta, X, y)
    state = prepare(net, theta, X, y)
    spectra = er.eigenvalues(net, theta, X, y, method="layerwise")
    # errors relative to the scale of H: a block can be far smaller than H (cancellation)
    h_max, h_2 = np.max(np.abs(H)), np.max(np.abs(np.linalg.eigvalsh(H)))
    for l, spec in enumerate(spectra, start=1):
        sl = net.layer_slice(l)
        block = H[sl, sl]
        assert np.max(np.abs(layer_block_dense(state, l) - block)) <= 1e-13 * h_max
        ev = np.linalg.eigvalsh(block)
        r = X.shape[0] * net.sizes[l]
        assert spec.size == block.shape[0]
        assert np.max(np.abs(spec.full() - ev)) <= 50 * r * EPS * h_2


def _adjusted(M, spectral, lam):
    mu, V = np.linalg.eigh(M)
    f = {"none": mu, "abs": np.abs(mu), "clip": np.maximum(mu, 0)}[spectral]
    return (V * (f + lam)) @ V.T


def _dense_target(net, theta, X, y, method, curvature):
    if curvature == "hessian":
        M = er.hessian(net, theta, X, y)
    else:
        M = er.hessian_factor(net, theta, X, y, "ggn").to_dense()
    if method == "layerwise":
        out = np.zeros_like(M)
        for l in range(1, net.L + 1):
            sl = net.layer_slice(l)
            out[sl, sl] = M[sl, sl]
        M = out
    return M


@settings(max_examples=25)
@given(NETS, st.sampled_from(["structured", "layerwise", "dense"]),
       st.sampled_from(["hessian", "ggn"]), st.sampled_from([1e-3, 1e-1, 10.0]))
def test_newton_backward_error_and_descent(problem, method, curvature, lam):
    import warnings

    net, theta, X, y = problem
    g = net.gradient(theta, X, y)
    M = _dense_target(net, theta, X, y, method, curvature)
    for spectral in ("none", "abs", "clip"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", er.NotDescentWarning)
            try:
                d = er.newton_direction(net, theta, X, y, damping=lam, spectral=spectral,
                                        method=method, curvature=curvature)
            except er.SingularCurvatureError:
                assert spectral == "none"
                continue
        Mt = _adjusted(M, spectral, lam)
        bound = 1e3 * EPS * (np.linalg.norm(Mt, 2) * np.linalg.norm(d) + np.linalg.norm(g))
        assert np.linalg.norm(Mt @ d + g) <= bound, spectral
        if spectral != "none" and np.linalg.norm(g) > 0:
            assert g @ d < 0


@given(NETS)
def test_newton_tends_to_gradient_step_for_large_damping(problem):
    net, theta, X, y = problem
    g = net.gradient(theta, X, y)
    lam = 1e8
    for method in ("structured", "layerwise"):
        d = er.newton_direction(net, theta, X, y, damping=lam, spectral="abs", method=method)
        assert np.linalg.norm(d + g / lam) <= 1e-6 * np.linalg.norm(g) / lam + 1e-300


@given(NETS)
def test_ggn_is_jt_lam_j_from_complex_step_jacobian(problem):
    net, theta, X, y = problem
    P, B, nL = net.num_params, X.shape[0], net.sizes[-1]
    from esso_ref.passes import forward

    def logits(t):
        return forward(*net._Wb(t), X, net.act).z[net.L]

    Z = np.stack([np.imag(logits(theta + 1e-30j * e)) / 1e-30 for e in np.eye(P)], axis=-1)
    Lam = net.loss_fn.hess(net.predict(theta, X), y)
    ggn = np.einsum("bip,bij,bjq->pq", Z, Lam, Z) / B
    f = er.hessian_factor(net, theta, X, y, curvature="ggn")
    assert f.rank_bound == B * nL
    assert relerr(f.to_dense(), ggn) <= 1e-13


@settings(max_examples=30)
@given(st.integers(1, 3), st.lists(st.integers(1, 5), min_size=4, max_size=4), st.integers(1, 6),
       st.integers(0, 1000))
def test_deep_linear_gauss_newton_rank_formula(L, widths, B, seed):
    """rank(J^T Lam J) = q (r + K - q), q = min(r, n_1, ..., n_{L-1}, K), r = rank(X)."""
    from esso_ref.problems import random_problem

    sizes = widths[: L + 1]
    net = er.MLP(sizes, "identity", "mse", bias=False)
    theta, X, y = random_problem(net, B, seed)
    r, K = np.linalg.matrix_rank(X), sizes[-1]
    q = min([r, K, *sizes[1:-1]])
    ev = er.eigenvalues(net, theta, X, y, method="dense", curvature="ggn").values
    numerical_rank = int(np.sum(np.abs(ev) > 1e-9 * np.max(np.abs(ev))))
    assert numerical_rank == q * (r + K - q)
    structured = er.eigenvalues(net, theta, X, y, curvature="ggn").values
    assert int(np.sum(np.abs(structured) > 1e-9 * np.max(np.abs(ev)))) == numerical_rank


@settings(max_examples=20)
@given(NETS, st.sampled_from(["none", "abs", "clip"]), st.sampled_from(["hessian", "ggn"]))
def test_per_sample_directions_stacked(problem, spectral, curvature):
    import warnings

    net, theta, X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", er.NotDescentWarning)
        D, mean = er.per_sample_directions(net, theta, X, y, 0.1, spectral, curvature)
    assert D.shape == (X.shape[0], net.num_params)
    for i in range(X.shape[0]):
        M = _dense_target(net, theta, X[i:i + 1], y[i:i + 1], "dense", curvature)
        Mt = _adjusted(M, spectral, 0.1)
        gi = net.gradient(theta, X[i:i + 1], y[i:i + 1])
        bound = 1e3 * EPS * (np.linalg.norm(Mt, 2) * np.linalg.norm(D[i]) + np.linalg.norm(gi))
        assert np.linalg.norm(Mt @ D[i] + gi) <= bound
    assert np.allclose(mean, D.mean(axis=0), rtol=0, atol=1e-15)


@settings(max_examples=60)
@given(networks(max_layers=4, max_width=8, max_batch=1), st.sampled_from([1e-3, 1e-1, 10.0]))
def test_gram_route_newton_single_sample(problem, lam):
    """The O(r^3 + P) Gram route (no P x r array) on the stochastic, one-sample case."""
    net, theta, X, y = problem
    f = er.hessian_factor(net, theta, X, y, route="gram")
    assert f.route == "gram"
    g = net.gradient(theta, X, y)
    H = er.hessian(net, theta, X, y)
    for spectral in ("abs", "clip"):
        d = f.newton(lam, spectral)
        Mt = _adjusted(H, spectral, lam)
        bound = 1e3 * EPS * (np.linalg.norm(Mt, 2) * np.linalg.norm(d) + np.linalg.norm(g))
        assert np.linalg.norm(Mt @ d + g) <= bound


@settings(max_examples=30)
@given(st.lists(st.integers(1, 5), min_size=3, max_size=3), st.integers(1, 8), st.integers(0, 999))
def test_one_hidden_layer_linear_hessian_rank_formula(widths, B, seed):
    """rank(H) = q (r + K + 2M - 2q): linear net d -> M -> K, squared error, no biases."""
    from esso_ref.problems import random_problem

    d, M, K = widths
    net = er.MLP([d, M, K], "identity", "mse", bias=False)
    theta, X, y = random_problem(net, B, seed)
    r = np.linalg.matrix_rank(X)
    q = min(r, M, K)
    expected = q * (r + K + 2 * M - 2 * q)
    ev = np.linalg.eigvalsh(er.hessian(net, theta, X, y))
    tol = 1e-9 * np.max(np.abs(ev))
    assert int(np.sum(np.abs(ev) > tol)) == expected
    mu = er.eigenvalues(net, theta, X, y, method="structured").values
    assert int(np.sum(np.abs(mu) > tol)) == expected
