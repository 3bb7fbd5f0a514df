"""The layer-by-layer elimination of docs/math.md §16 (eqs. (45)-(49)) against dense references.

Every quantity of the route is checked against an independent dense computation on seeded
random configurations that include the edge cases of esso_ref.verification.configs (width 1,
output 1, depth 1, r > P, dead ReLU, saturated units, zero gradient, repeated samples, kinks),
in float64 with tolerances in eps units:

- the pairs of eq. (45): the gradient, H v and |X|_F against per-sample gradients, the dense
  per-sample Hessian and numpy.linalg.norm of the materialised P-vectors;
- the sweeps (46)-(48) against numpy.linalg.solve, the trace of G against the Gram matrix,
  the bound of |H|_F against the dense Frobenius norm;
- the public per-sample directions: normwise backward error <= 16 eps (the property set's
  worst is 1.5 eps), and the certificate of eq. (49) never below the measured backward error
  by more than the rounding of writing d out;
- the fallbacks: a rejected certificate or a singular pivot gives the layer-basis direction.
"""

import re
import warnings

import numpy as np
import pytest

import esso_ref as er
from esso_ref._memory import InsufficientMemoryError
from esso_ref.curvature import factor, stagewise
from esso_ref.curvature.exact import Coordinates
from esso_ref.curvature.state import prepare
from esso_ref.problems import random_problem
from tests.test_property_routes import _config


@pytest.fixture(autouse=True)
def _sweeps_for_every_batch(monkeypatch):
    """These tests exercise the sweeps on small networks: take them at any batch size."""
    from esso_ref.curvature import per_sample

    monkeypatch.setattr(per_sample, "SWEEP_MIN_SQUARES", 0)

EPS = np.finfo(np.float64).eps
DAMPINGS = (1e-3, 0.1, 10.0)
SEEDS = range(0, 600, 4)


def _state(seed):
    net, theta, X, y = _config(seed)
    return net, theta, X, y, prepare(net, theta, X, y)


def _random_pairs(rng, state):
    """A random direction in the form of eq. (45) (tau orthogonal to â not required)."""
    anc = stagewise.anchors(state)
    g = stagewise.gradient_form(state, anc)
    alpha = [None] + [rng.standard_normal(a.shape) for a in g.alpha[1:]]
    tau = [None] + [rng.standard_normal(t.shape) for t in g.tau[1:]]
    return anc, stagewise.Form(alpha, tau)


def _backward_error(H, d, g, lam):
    res = np.linalg.norm(H @ d + lam * d + g)
    denom = (np.linalg.norm(H, 2) + lam) * np.linalg.norm(d) + np.linalg.norm(g)
    return 0.0 if res == 0.0 else res / denom / EPS


@pytest.mark.parametrize("seed", SEEDS)
def test_pairs_match_dense_vectors(seed):
    net, theta, X, y, state = _state(seed)
    rng = np.random.default_rng(seed)
    anc, v = _random_pairs(rng, state)
    g = stagewise.materialise(state, anc, stagewise.gradient_form(state, anc))
    G = net.per_sample_gradients(theta, X, y)
    assert np.linalg.norm(g - G) <= 8 * EPS * max(np.linalg.norm(G), 1e-300)
    V = stagewise.materialise(state, anc, v)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    HV = stagewise.materialise(state, anc, stagewise.hvp_form(state, anc, v))
    norms = stagewise.form_norms(state, anc, v)[0]
    for i in range(X.shape[0]):
        ref = Hs[i] @ V[i]
        scale = np.linalg.norm(Hs[i], 2) * np.linalg.norm(V[i])
        assert np.linalg.norm(HV[i] - ref) <= 64 * net.num_params * EPS * max(scale, 1e-300)
        assert abs(norms[i] - np.linalg.norm(V[i])) <= 8 * EPS * np.linalg.norm(V[i])


@pytest.mark.parametrize("seed", SEEDS)
def test_sweep_solves_and_bounds(seed):
    net, theta, X, y, state = _state(seed)
    rng = np.random.default_rng(seed + 1)
    anc, v = _random_pairs(rng, state)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    C = stagewise.materialise(state, anc, v)
    for lam in DAMPINGS:
        try:
            sw = stagewise.factorise(state, anc, lam)
        except er.curvature.LinAlgError:
            continue  # a singular pivot: the public route falls back (tested below)
        U = stagewise.materialise(state, anc, stagewise.solve_form(state, anc, sw, v))
        for i in range(X.shape[0]):
            M = Hs[i] + lam * np.eye(net.num_params)
            ev = np.abs(np.linalg.eigvalsh(M))
            cond = ev.max() / max(ev.min(), 1e-300)
            if cond > 1e8:
                continue
            ref = np.linalg.solve(M, C[i])
            err = np.linalg.norm(U[i] - ref) / max(np.linalg.norm(ref), 1e-300)
            assert err <= 1e4 * cond * EPS, (seed, lam, i, err, cond)
    sw = stagewise.factorise(state, anc, 1.0)
    bound = stagewise._h_bound(state, sw)
    for i in range(X.shape[0]):
        fac = er.hessian_factor(net, theta, X[i:i + 1], y[i:i + 1])
        assert abs(float(sw.trace_G[i]) - np.trace(fac.gram())) <= 1e-12 * max(
            np.trace(fac.gram()), 1.0)
        assert np.linalg.norm(Hs[i]) <= bound[i] * (1 + 1e-12) + 1e-300


@pytest.mark.parametrize("seed", SEEDS)
def test_public_per_sample_directions_are_backward_stable(seed):
    net, theta, X, y, state = _state(seed)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    G = net.per_sample_gradients(theta, X, y)
    for lam in DAMPINGS:
        cert = stagewise.certify(state, lam)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", er.NotDescentWarning)
            D, mean = er.per_sample_directions(net, theta, X, y, lam)
        assert np.abs(mean - np.mean(D, axis=0)).max() <= 4 * len(D) * EPS * np.abs(D).max()
        for i in range(X.shape[0]):
            err = _backward_error(Hs[i], D[i], G[i], lam)
            assert err <= 16, (seed, lam, i, err)
            assert float(cert.eta[i]) >= err - 4, (seed, lam, i, err, float(cert.eta[i]))


@pytest.mark.parametrize("seed", [4, 8, 20, 92])
def test_each_sample_keeps_the_step_at_which_it_was_accepted(monkeypatch, seed):
    # with ACCEPT at the median of the first step's bounds, half the samples stop there and the
    # others take a second step: each row must be that of its own stop, bit for bit
    _, _, X, _, state = _state(seed)
    lam = 1e-3
    anc = stagewise.anchors(state)
    first = stagewise.certify(state, lam, steps=1)
    monkeypatch.setattr(stagewise, "ACCEPT", -1.0)  # every sample takes both steps
    second = stagewise.certify(state, lam, steps=2)
    median = float(np.median(first.eta))
    monkeypatch.setattr(stagewise, "ACCEPT", median)
    mixed = stagewise.certify(state, lam, steps=2)
    stop = first.eta <= median
    assert 0 < int(np.sum(stop)) < X.shape[0]
    D1, D2, Dm = (stagewise.materialise(state, anc, c.d) for c in (first, second, mixed))
    np.testing.assert_array_equal(Dm[stop], D1[stop])
    np.testing.assert_array_equal(Dm[~stop], D2[~stop])
    np.testing.assert_array_equal(mixed.eta[stop], first.eta[stop])
    np.testing.assert_array_equal(mixed.eta[~stop], second.eta[~stop])


def test_one_refinement_step_is_needed_and_enough():
    """The sweep alone loses digits at small damping; after refinement the error is eps-level."""
    worst_raw, worst = 0.0, 0.0
    for seed in range(0, 400, 2):
        net, theta, X, y, state = _state(seed)
        anc = stagewise.anchors(state)
        g = stagewise.gradient_form(state, anc)
        Hs = er.hessian(net, theta, X, y, per_sample=True)
        G = net.per_sample_gradients(theta, X, y)
        sw = stagewise.factorise(state, anc, 1e-3)
        D0 = stagewise.materialise(state, anc, stagewise.solve_form(state, anc, sw, g.scaled(-1.0)))
        D1 = stagewise.materialise(state, anc, stagewise.certify(state, 1e-3, steps=1).d)
        for i in range(X.shape[0]):
            worst_raw = max(worst_raw, _backward_error(Hs[i], D0[i], G[i], 1e-3))
            worst = max(worst, _backward_error(Hs[i], D1[i], G[i], 1e-3))
    assert worst_raw > 1e3, worst_raw  # the sweep alone is not backward stable
    assert worst <= 16, worst


def _small_problem(B: int, seed: int):
    """[5, 7, 6, 3] tanh with B samples: H_i + lam I indefinite for some samples at lam = 0.5."""
    net = er.MLP([5, 7, 6, 3], activation="tanh")
    rng = np.random.default_rng(seed)
    return net, net.init(1), rng.standard_normal((B, 5)), rng.integers(0, 3, B)


def _basis(net, theta, X, y, lam):
    state = prepare(net, theta, X, y)
    rows = factor.Rows.of(net.sizes)
    return stagewise.coordinates(state, rows, 1).newton(lam, "none", descent=False)


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
def test_rejected_certificate_falls_back_to_the_layer_basis(monkeypatch):
    net, theta, X, y = _small_problem(6, 2)
    fast, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    monkeypatch.setattr(stagewise, "ACCEPT", -1.0)
    slow, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    np.testing.assert_array_equal(slow, _basis(net, theta, X, y, 0.5))
    assert np.max(np.abs(fast - slow)) <= 1e-12 * np.max(np.abs(slow))


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
def test_singular_pivot_falls_back_to_the_layer_basis(monkeypatch):
    net, theta, X, y = _small_problem(4, 3)

    def singular(*args, **kwargs):
        raise er.curvature.LinAlgError("singular pivot")

    monkeypatch.setattr(stagewise, "factorise", singular)
    D, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    np.testing.assert_array_equal(D, _basis(net, theta, X, y, 0.5))


def test_not_descent_warning_counts_the_ascending_samples():
    net, theta, X, y = _small_problem(12, 2)
    G = net.per_sample_gradients(theta, X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        D, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    ascending = int(np.sum(np.einsum("ip,ip->i", G, D) >= 0))
    found = [w for w in caught if issubclass(w.category, er.NotDescentWarning)]
    assert ascending > 0, "the configuration must have an ascending direction"
    assert len(found) == 1 and f"{ascending} of 12 " in str(found[0].message)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    bad = [i for i in range(12) if G[i] @ D[i] >= 0]
    assert 0 < len(bad) < 12
    mu_min = min(np.linalg.eigvalsh(Hs[i]).min() for i in bad)
    named = float(re.search(r"smallest eigenvalue of H = (\S+) <", str(found[0].message))[1])
    assert abs(named - mu_min) <= 5e-7 * abs(mu_min)  # printed with 7 digits


@pytest.mark.parametrize("sizes, stagewise_used", [([64, 32, 32, 10], False),
                                                   ([20, 70, 70, 3], True)])
def test_one_sample_route_follows_the_row_threshold(monkeypatch, sizes, stagewise_used):
    net = er.MLP(sizes, activation="tanh")
    assert (net.rank_bound >= factor.STAGEWISE_MIN_ROWS) == stagewise_used
    theta = net.init(0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((1, sizes[0])), np.array([1])
    calls = []
    real = stagewise.directions
    monkeypatch.setattr(stagewise, "directions",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    d = er.newton_direction(net, theta, X, y, 0.1)
    assert bool(calls) == stagewise_used
    ref = er.hessian_factor(net, theta, X, y, route="basis").newton(0.1)
    assert np.linalg.norm(d - ref) <= 1e-10 * np.linalg.norm(ref)


def test_float32_directions_are_backward_stable():
    net = er.MLP([6, 9, 7, 4], activation="sigmoid")
    theta = net.init(2, dtype="float32")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 6)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    D, _ = er.per_sample_directions(net, theta, X, y, 0.1)
    assert D.dtype == np.float32
    Hs = er.hessian(net, theta.astype(np.float64), X.astype(np.float64), y, per_sample=True)
    G = net.per_sample_gradients(theta.astype(np.float64), X.astype(np.float64), y)
    eps32 = float(np.finfo(np.float32).eps)
    for i in range(5):
        d = D[i].astype(np.float64)
        res = np.linalg.norm(Hs[i] @ d + 0.1 * d + G[i])
        denom = (np.linalg.norm(Hs[i], 2) + 0.1) * np.linalg.norm(d) + np.linalg.norm(G[i])
        assert res / denom <= 100 * eps32


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_scales_give_no_float_warnings(scale):
    net = er.MLP([3, 5, 4, 2], activation="tanh", loss="mse")
    theta = net.init(0)
    rng = np.random.default_rng(0)
    X, y = scale * rng.standard_normal((3, 3)), scale * rng.standard_normal((3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", category=er.NotDescentWarning)
        try:
            D, _ = er.per_sample_directions(net, theta, X, y, 1.0)
        except er.SingularCurvatureError:
            return
    assert np.all(np.isfinite(D))


def test_memory_is_checked_before_the_sweeps(monkeypatch):
    net = er.MLP([64, 32, 32, 10])
    theta = net.init(0)
    X, y = np.ones((200, 64)), np.arange(200) % 10
    need = 200 * stagewise.sweep_entries(net.sizes) * 8
    assert need > 200 * net.num_params * 8  # the B x P directions and more
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(need // 2))
    with pytest.raises(InsufficientMemoryError, match=r"200 x 3466"):
        er.per_sample_directions(net, theta, X, y)
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(4 * need))
    D, _ = er.per_sample_directions(net, theta, X, y)
    assert D.shape == (200, net.num_params)


@pytest.mark.parametrize("route", ["auto", "basis", "gram", "qr"])
def test_tiny_gradients_are_not_called_ascending(route):
    """g . d of a 1e-170 gradient underflows to 0; the descent test reads its sign on unit vectors."""
    net = er.MLP([1, 1], activation="identity", loss="mse")
    theta, X, y = np.array([1.0, 1e-170]), np.array([[0.0], [1.0]]), np.zeros((2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if route == "auto":
            D, _ = er.per_sample_directions(net, theta, X, y, 1.0)
            assert D[0, 1] < 0 < -D[0, 1] * 1e200
        d = er.hessian_factor(net, theta, X[:1], y[:1], route=route).newton(1.0)
    assert d[1] < 0 and d[0] == 0.0


def test_almost_every_float64_sample_keeps_its_sweep_direction():
    """The route is really used: on the property set, at most 1 % of the samples are redone."""
    total, redone, checked = 0, 0, 0
    for seed in range(0, 600, 3):
        *_, state = _state(seed)
        for lam in DAMPINGS:
            cert = stagewise.certify(state, lam)
            check, redo = stagewise._classify(state, cert, lam)
            total, redone, checked = total + state.B, redone + len(redo), checked + len(check)
    assert redone <= 0.01 * total, (redone, total)
    assert checked <= 0.01 * total, (checked, total)


def test_float32_samples_get_the_exact_norm_and_keep_their_direction(monkeypatch):
    """In float32 c = 10 n eps is large and the bound of |H|_F loose: the middle zone is used."""
    net = er.MLP([20, 100, 100, 3], activation="tanh")
    theta = net.init(0, dtype="float32")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 3, 8)
    state = prepare(net, theta, X, y)
    cert = stagewise.certify(state, 0.1)
    check, redo = stagewise._classify(state, cert, 0.1)
    assert len(check) >= 4 and not redo
    assert stagewise._exact_rule(state, cert, 0.1, check) == []
    calls = []
    real = Coordinates.newton
    monkeypatch.setattr(Coordinates, "newton",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    D, _ = er.per_sample_directions(net, theta, X, y, 0.1)
    assert not calls  # no sample was solved again in the layer basis
    ref = _basis(net, theta.astype(np.float64), X.astype(np.float64), y, 0.1)
    assert np.max(np.abs(D - ref)) <= 1e-4 * np.max(np.abs(ref))


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
def test_partial_fallback_puts_every_redone_sample_in_its_row(monkeypatch):
    net, theta, X, y = _small_problem(12, 2)
    fast, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    redo = [1, 4, 7]  # sample 1 ascends (as does 8, which keeps its sweep direction)
    monkeypatch.setattr(stagewise, "_classify", lambda *a: ([], list(redo)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mixed, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    basis = _basis(net, theta, X, y, 0.5)
    for i in range(12):
        expected = basis[i] if i in redo else fast[i]
        np.testing.assert_array_equal(mixed[i], expected)
    G = net.per_sample_gradients(theta, X, y)
    ascending = int(np.sum(np.einsum("ip,ip->i", G, mixed) >= 0))
    found = [w for w in caught if issubclass(w.category, er.NotDescentWarning)]
    assert ascending > 0 and len(found) == 1 and f"{ascending} of 12 " in str(found[0].message)


@pytest.mark.parametrize("size", [1e-150, 1e-163, 1e-170])
@pytest.mark.parametrize("route", ["basis", "gram", "qr"])
def test_tiny_gradients_are_solved_by_every_route(size, route):
    """|g| below 1e-162 made the Gram route's sqrt(u . G u) underflow: a false singular error."""
    net = er.MLP([1, 1], activation="identity", loss="mse", bias=False)
    theta, X, y = np.array([0.0]), np.array([[0.1]]), np.array([[-size / 0.2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = er.hessian_factor(net, theta, X, y, route=route).newton(1e-6)
    g = net.per_sample_gradients(theta, X, y)[0]
    expected = -g / (2 * 0.01 + 1e-6)  # H = Lam |x|^2 = 2 * 0.01
    assert abs(d[0] - expected[0]) <= 1e-14 * abs(expected[0])


@pytest.mark.parametrize("route", ["gram", "qr"])
def test_not_descent_message_prints_g_dot_d(route):
    net, theta, X, y = _small_problem(12, 2)
    X, y = X[1:2], y[1:2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = er.hessian_factor(net, theta, X, y, route=route).newton(0.5)
    g_dot_d = float(net.per_sample_gradients(theta, X, y)[0] @ d)
    assert g_dot_d > 0
    printed = float(re.search(r"g\.d = (\S+)\)", str(caught[0].message))[1])
    assert abs(printed - g_dot_d) <= 1e-3 * g_dot_d


def test_subnormal_gradient_goes_through_the_layer_basis_without_warnings():
    net = er.MLP([1, 1], activation="identity", loss="mse")
    theta, X, y = np.array([1.0, 1e-310]), np.array([[0.0], [1.0]]), np.zeros((2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        D, _ = er.per_sample_directions(net, theta, X, y, 1.0)
    np.testing.assert_array_equal(D[0], _basis(net, theta, X, y, 1.0)[0])
    assert D[0, 1] < 0


def test_threshold_and_refinement_steps_are_pinned():
    """After one step seed 4 (damping 1e-8) has eta 39.6 > 16 eps; more steps bring it to eps."""
    *_, state = _state(4)
    one, full = stagewise.certify(state, 1e-8, steps=1), stagewise.certify(state, 1e-8)
    assert 16 < float(one.eta[0]) <= 100
    assert 0 in stagewise._classify(state, one, 1e-8)[1]
    assert float(np.max(one.eta)) > 16 >= 4 * float(np.max(full.eta))
    assert stagewise._classify(state, full, 1e-8) == ([], [])


def test_middle_zone_applies_the_exact_rule():
    """float32 at damping 1e-6: the bounds do not decide, the exact |H_i|_F makes the rule fire."""
    net, theta, X, y = _config(0)
    theta, X = theta.astype(np.float32), X.astype(np.float32)
    y = y.astype(np.float32) if y.dtype.kind == "f" else y
    state = prepare(net, theta, X, y)
    cert = stagewise.certify(state, 1e-6)
    check, _ = stagewise._classify(state, cert, 1e-6)
    assert check and stagewise._exact_rule(state, cert, 1e-6, check)
    with pytest.raises(er.SingularCurvatureError):
        er.per_sample_directions(net, theta, X, y, 1e-6)


@pytest.mark.parametrize("n", [1, 31, 32, 100, 256, 257])
def test_lu_factors_once_and_solves_like_numpy(n):
    """linalg.LU: getrf/getrs where it factorises (one BLAS thread, 32 <= n <= 256), else solve."""
    from esso_ref.curvature import linalg
    from esso_ref.threads import blas_threads

    rng = np.random.default_rng(n)
    M = rng.standard_normal((3, n, n)) + np.eye(n)  # not symmetric: the transpose matters
    b, B = rng.standard_normal((3, n)), rng.standard_normal((3, n, 4))
    for threads in (1, 2):
        with blas_threads(threads):
            lu = linalg.LU(M)
            x, X = lu.solve(b), lu.solve(B)
        assert (lu._factors is not None) == (threads == 1 and 32 <= n <= 256)
        for k in range(3):
            ref = np.linalg.solve(M[k], np.column_stack([b[k], B[k]]))
            cond = np.linalg.cond(M[k])
            assert np.abs(x[k] - ref[:, 0]).max() <= 64 * n * cond * EPS * np.abs(ref).max()
            assert np.abs(X[k] - ref[:, 1:]).max() <= 64 * n * cond * EPS * np.abs(ref).max()
    with pytest.raises(ValueError, match=rf"expected right-hand sides of shape \(3, {n}\)"):
        lu.solve(b.astype(np.float32))
    with pytest.raises(ValueError, match="expected right-hand sides"):
        lu.solve(b[:1])
    with pytest.raises(ValueError, match=r"expected stacked square matrices \(G, n, n\)"):
        linalg.LU(M[0])
    M[1, :, 0] = 0.0  # exactly singular
    with blas_threads(1), pytest.raises(er.curvature.LinAlgError):
        linalg.LU(M).solve(b)


def test_sweep_agrees_on_one_and_two_blas_threads():
    """The factorised pivots (one thread) and the fresh solves (two) give the same direction."""
    from esso_ref.threads import blas_threads

    net = er.MLP([6, 40, 36, 3], "tanh")
    theta, X, y = random_problem(net, 4, 0)
    state = prepare(net, theta, X, y)
    out = {}
    for threads in (1, 2):
        with blas_threads(threads):
            anc = stagewise.anchors(state)
            factored = stagewise.factorise(state, anc, 1e-2).levels[1].pivot.lu._factors is not None
            out[threads] = stagewise.materialise(state, anc, stagewise.certify(state, 1e-2).d)
        assert factored == (threads == 1)
    assert np.abs(out[1] - out[2]).max() <= 1e3 * EPS * np.abs(out[1]).max()


def test_a_non_finite_sweep_is_rejected_and_solved_again(monkeypatch):
    """A sweep that returns NaN for one sample (a pivot with an exact zero, eq. (50)) gives that
    sample a NaN bound, never 0, and the public call solves it in the layer basis."""
    net, theta, X, y = _small_problem(6, 1)
    real = stagewise.solve_form

    def poisoned(state, anc, sw, c):
        v = real(state, anc, sw, c)
        v.alpha[1][0, :] = np.nan
        return v

    monkeypatch.setattr(stagewise, "solve_form", poisoned)
    cert = stagewise.certify(prepare(net, theta, X, y), 0.5)
    assert np.isnan(cert.eta[0]) and np.all(np.isfinite(cert.eta[1:]))
    D, mean = er.per_sample_directions(net, theta, X, y, 0.5)
    np.testing.assert_array_equal(D[0], _basis(net, theta, X, y, 0.5)[0])
    # the mean counts the redone row, not the NaN pairs it replaced
    assert np.abs(mean - np.mean(D, axis=0)).max() <= 4 * len(D) * EPS * np.abs(D).max()
