"""The pivots of the backward sweep (docs/math.md eqs. (50), (51)) against dense references.

- `LowRankPivot` solves and applies M = Pi^{-1} P like numpy.linalg.solve on the dense
  Pi = lam I + rho^2 (diag(d) + U K U^T), within a multiple of cond(Pi) eps, with rho = 0 and
  with a singular K among the cases;
- the low-rank cost P_{l-1} = diag(d) + U K U^T of eq. (50) equals the dense P_{l-1} of eq.
  (47), and the sweep with it solves like the sweep with dense pivots only;
- `low_rank_costs` keeps the form exactly where the rank is at most half the width, never for
  two layers in a row.
"""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.curvature import pivots, stagewise, sweep
from esso_ref.curvature.state import prepare
from esso_ref.problems import random_problem
from tests.test_property_routes import _config

EPS = np.finfo(np.float64).eps


def _dense_pivot(d, U, K, rho, lam):
    """Pi = lam I + rho^2 (diag(d) + U K U^T) and P, per sample, formed densely."""
    P = np.stack([np.diag(d[i]) + U[i] @ K[i] @ U[i].T for i in range(d.shape[0])])
    return lam * np.eye(d.shape[1]) + (rho ** 2)[:, None, None] * P, P


@pytest.mark.parametrize("seed", range(12))
def test_low_rank_pivot_solves_like_the_dense_pivot(seed):
    rng = np.random.default_rng(seed)
    B, n, k = 5, int(rng.integers(3, 30)), int(rng.integers(1, 6))
    lam = float(10.0 ** rng.uniform(-4, 1))
    d = rng.standard_normal((B, n)) * 10.0 ** rng.uniform(-2, 2)
    U = rng.standard_normal((B, n, k))
    K = rng.standard_normal((B, k, k))
    K = K + np.swapaxes(K, 1, 2)
    if seed % 3 == 0:  # a singular K (rank k - 1)
        K[:, -1, :] = K[:, :, -1] = 0.0
    rho = np.abs(rng.standard_normal(B)) * 10.0 ** rng.uniform(-1, 1)
    rho[0] = 0.0  # an all-zero input without bias: Pi = lam I
    piv = pivots.LowRankPivot(d, U, K, rho, lam, np.eye(k))
    Pi, P = _dense_pivot(d, U, K, rho, lam)
    h = rng.standard_normal((B, n))
    x, Mh = piv.solve(h), piv.apply_M(h)
    for i in range(B):
        cond = np.linalg.cond(Pi[i])
        if cond > 1e10:
            continue
        ref = np.linalg.solve(Pi[i], h[i])
        assert np.linalg.norm(x[i] - ref) <= 1e3 * cond * EPS * np.linalg.norm(ref), (seed, i)
        refM = np.linalg.solve(Pi[i], P[i] @ h[i])
        scale = np.linalg.norm(np.linalg.solve(Pi[i], P[i]), 2) * np.linalg.norm(h[i])
        assert np.linalg.norm(Mh[i] - refM) <= 1e3 * cond * EPS * scale, (seed, i)


@pytest.mark.parametrize("seed", range(8))
def test_spectral_pivot_solves_like_the_dense_pivot(seed):
    """Pi^{-1} h and M h from the eigenvalues of a small symmetric P, against numpy.linalg.solve;
    M symmetric to rounding; a sample with a non-finite P gets NaN, the others are unaffected."""
    rng = np.random.default_rng(seed)
    B, n = 4, int(rng.integers(1, 12))
    lam = float(10.0 ** rng.uniform(-4, 1))
    P = rng.standard_normal((B, n, n)) * 10.0 ** rng.uniform(-2, 2)
    P = P + np.swapaxes(P, 1, 2)
    rho = np.abs(rng.standard_normal(B))
    rho[1] = 0.0
    P[3, 0, 0] = np.inf
    piv = pivots.SpectralPivot(P, rho, lam)
    h = rng.standard_normal((B, n))
    x, Mh = piv.solve(h), piv.apply_M(h)
    assert np.all(np.isnan(x[3])) and np.all(np.isnan(Mh[3])) and np.all(np.isnan(piv.M[3]))
    sym = np.abs(piv.M[:3] - np.swapaxes(piv.M[:3], 1, 2)).max(axis=(1, 2))
    assert np.all(sym <= 4 * n * EPS * np.abs(piv.M[:3]).max(axis=(1, 2)))
    for i in range(3):
        Pi = lam * np.eye(n) + rho[i] ** 2 * P[i]
        cond = np.linalg.cond(Pi)
        ref = np.linalg.solve(Pi, h[i])
        assert np.linalg.norm(x[i] - ref) <= 1e2 * cond * EPS * np.linalg.norm(ref), (seed, i)
        M = np.linalg.solve(Pi, P[i])
        assert np.abs(piv.M[i] - M).max() <= 1e2 * cond * EPS * np.abs(M).max(), (seed, i)
        assert np.linalg.norm(Mh[i] - M @ h[i]) <= 1e2 * cond * EPS * np.linalg.norm(M, 2) * (
            np.linalg.norm(h[i])), (seed, i)


@pytest.mark.parametrize("sizes, low", [
    ([64, 32, 32, 10], [False, False, True, False]),
    ([64, 21, 21, 10], [False, False, False, False]),  # 2 (10 + 1) > 21
    ([64, 22, 22, 10], [False, False, True, False]),
    ([784, 512, 10], [False, True, False]),
    ([30, 50, 50, 50, 2], [False, False, False, True, False]),
    ([8, 400, 100, 20, 2], [False, True, False, True, False]),  # never two in a row
    ([5, 3], [False, False]),
    ([8, 200, 40, 4, 2], [False, False, True, False, False]),
])
def test_low_rank_costs_where_the_rank_is_small(sizes, low):
    assert pivots.low_rank_costs(sizes) == low


def _dense_only(monkeypatch):
    monkeypatch.setattr(pivots, "low_rank_costs", lambda sizes: [False] * len(sizes))


LOW_RANK_SEEDS = [seed for seed in range(0, 600, 3)
                  if any(pivots.low_rank_costs(_config(seed)[0].sizes))][:40]


@pytest.mark.parametrize("seed", LOW_RANK_SEEDS)
def test_low_rank_cost_is_the_dense_cost(monkeypatch, seed):
    """diag(d) + U K U^T of eq. (50) against P_{l-1} of eq. (47) from the dense pivots."""
    net, theta, X, y = _config(seed)
    low = pivots.low_rank_costs(net.sizes)
    state = prepare(net, theta, X, y)
    anc = stagewise.anchors(state)
    captured = {}
    real = pivots.LowRankPivot

    def spy(d, U, K, *rest):
        captured["P"] = np.stack([np.diag(d[i]) + U[i] @ K[i] @ U[i].T for i in range(len(d))])
        return real(d, U, K, *rest)

    monkeypatch.setattr(pivots, "LowRankPivot", spy)
    l = low.index(True)
    dense, real_dense = [], pivots.DensePivot

    def spy_dense(P, *rest):
        dense.append(P)  # levels L, L - 1, ..., 1 in turn
        return real_dense(P, *rest)

    with np.errstate(all="ignore"):
        try:
            sweep.factorise(state, anc, 1e-2)
            _dense_only(monkeypatch)
            monkeypatch.setattr(pivots, "DensePivot", spy_dense)
            sweep.factorise(state, anc, 1e-2)
        except er.curvature.LinAlgError:
            pytest.skip("a singular pivot")
    ref = dense[net.L - l]
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.abs(captured["P"] - ref).max() <= 1e3 * EPS * scale, seed


@pytest.mark.parametrize("sizes, act", [([12, 30, 20, 3], "tanh"), ([6, 24, 24, 3], "relu"),
                                        ([12, 50, 4], "sigmoid"), ([5, 16, 20, 20, 2], "tanh")])
def test_low_rank_sweep_solves_like_the_dense_sweep(monkeypatch, sizes, act):
    net = er.MLP(sizes, activation=act)
    assert any(pivots.low_rank_costs(sizes))
    theta, X, y = random_problem(net, 6, 3)
    state = prepare(net, theta, X, y)
    anc = stagewise.anchors(state)
    g = stagewise.gradient_form(state, anc)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    G = net.per_sample_gradients(theta, X, y)
    out = {}
    for name in ("low rank", "dense"):
        if name == "dense":
            _dense_only(monkeypatch)
        sw = sweep.factorise(state, anc, 1e-2)
        out[name] = stagewise.materialise(state, anc, sweep.solve_form(state, anc, sw,
                                                                       g.scaled(-1.0)))
    for i in range(X.shape[0]):
        M = Hs[i] + 1e-2 * np.eye(net.num_params)
        ref = -np.linalg.solve(M, G[i])
        ev = np.abs(np.linalg.eigvalsh(M))
        cond = ev.max() / ev.min()
        for name, D in out.items():
            err = np.linalg.norm(D[i] - ref) / max(np.linalg.norm(ref), 1e-300)
            assert err <= 1e3 * cond * EPS, (name, i, err, cond)


@pytest.mark.parametrize("B", [1, 5, sweep.KR_MIN_SAMPLES, 70])
@pytest.mark.parametrize("n, m", [(3, 7), (16, 16), (128, 128), (200, 128)])
def test_weighted_grams_on_both_routes(B, n, m):
    """W^T diag(c_i) W of eq. (51): the rows vec(w_j w_j^T) (many samples, small W) or the
    stacked products, against einsum."""
    rng = np.random.default_rng(B + n + m)
    W, c = rng.standard_normal((n, m)), rng.standard_normal((B, n))
    ref = np.einsum("jk,ij,jl->ikl", W, c, W)
    out = sweep._weighted_grams(np, W, c)
    scale = np.einsum("jk,ij,jl->ikl", np.abs(W), np.abs(c), np.abs(W))
    assert np.all(np.abs(out - ref) <= 4 * n * EPS * scale)


def test_stacked_directions_with_many_samples_match_the_layer_basis(monkeypatch):
    """The public stacked call over the low-rank pivot and the product of eq. (51) with the
    rows vec(w_j w_j^T) (B >= KR_MIN_SAMPLES), against the layer basis (eq. (43))."""
    from esso_ref.curvature import per_sample
    from esso_ref.curvature.core import Rows
    from esso_ref.curvature.exact import coordinates

    net = er.MLP([7, 30, 20, 3], "tanh")
    assert pivots.low_rank_costs(net.sizes) == [False, False, True, False]
    B = sweep.KR_MIN_SAMPLES + 2
    theta, X, y = random_problem(net, B, 5)
    monkeypatch.setattr(per_sample, "SWEEP_MIN_SQUARES", 0)
    D, _ = er.per_sample_directions(net, theta, X, y, 1e-2)
    ref = coordinates(prepare(net, theta, X, y), Rows.of(net.sizes), 1).newton(
        1e-2, "none", descent=False)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    for i in range(B):
        ev = np.abs(np.linalg.eigvalsh(Hs[i] + 1e-2 * np.eye(net.num_params)))
        tol = 64 * ev.max() / ev.min() * EPS * np.linalg.norm(ref[i])
        assert np.linalg.norm(D[i] - ref[i]) <= tol, i


def test_ill_conditioned_narrow_pivot_keeps_the_sweep_accurate():
    """A 3 x 3 pivot of condition about 1e22 above a layer of eq. (50) (ReLU without biases,
    weights x 30, damping 1e-4): M_l from P_l's eigenvalues keeps every sample's certificate,
    where M_l from an LU solve lost two of the eight (eta 4e12 after refinement)."""
    net = er.MLP([7, 20, 3, 20, 2], activation="relu", loss="mse", bias=False)
    assert pivots.low_rank_costs(net.sizes) == [False, True, False, True, False]
    theta, X, y = random_problem(net, 8, 15)
    cert = stagewise.certify(prepare(net, 30 * theta, X, y), 1e-4)
    assert np.all(cert.eta <= stagewise.ACCEPT), cert.eta


def test_form_sum_is_the_sum_of_the_materialised_directions():
    """pairs.form_sum: the column sums of materialise's (B, P) array, of all samples or of the
    kept ones (a dropped sample's pairs may hold NaN)."""
    from esso_ref.curvature import pairs

    for bias in (True, False):
        net = er.MLP([5, 7, 6, 3], "tanh", bias=bias)
        theta, X, y = random_problem(net, 9, 4)
        state = prepare(net, theta, X, y)
        rng = np.random.default_rng(1)
        anc = pairs.anchors(state)
        g = pairs.gradient_form(state, anc)
        v = pairs.Form([None] + [rng.standard_normal(a.shape) for a in g.alpha[1:]],
                       [None] + [rng.standard_normal(t.shape) for t in g.tau[1:]])
        D = pairs.materialise(state, anc, v)
        scale = 64 * EPS * np.abs(D).sum(axis=0).max()
        assert np.abs(pairs.form_sum(state, anc, v) - D.sum(axis=0)).max() <= scale
        keep = np.arange(9) % 3 != 0
        for l in range(1, net.L + 1):
            v.alpha[l][0, :] = v.tau[l][0, :] = np.nan
        got = pairs.form_sum(state, anc, v, keep)
        assert np.abs(got - D[keep].sum(axis=0)).max() <= scale
