"""The closed-form one-sample bases of the layer basis (docs/math.md §15) against LAPACK QR."""

import numpy as np
import pytest

from esso_ref.backend import get_namespace
from esso_ref.curvature.basis import _complement, _unit

EPS = np.finfo(np.float64).eps
XP = get_namespace("numpy")


def _reflector_basis(xp, v, eye):
    """(q, N) as the one-sample bases use them: q = v / |v| (e_1 for v = 0), N its complement."""
    u = _unit(xp, v)
    return u[..., None], _complement(xp, u, eye)


VECTORS = {
    "generic": [-2.0, 1.0, 0.5, 3.0],
    "first entry zero": [0.0, 1.0, -1.0, 2.0],
    "tiny (squares underflow)": [1e-170, 2e-170, 0.0, -3e-171],
    "huge (squares overflow)": [1e170, -3e170, 2.0, 0.0],
    "one non-zero": [0.0, 0.0, 5.0, 0.0],
    "zero": [0.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_reflector_is_an_orthonormal_basis_whose_first_column_spans_v(name):
    v = np.array([VECTORS[name]])
    q, N = _reflector_basis(XP, v.copy(), np.eye(v.shape[1]))
    Q = np.concatenate([q, N], axis=-1)[0]
    assert np.abs(Q.T @ Q - np.eye(4)).max() <= 10 * EPS
    if not np.any(v):
        np.testing.assert_array_equal(Q, np.eye(4))
        return
    # v lies in span(q): its component along N vanishes relative to |v|
    w = v[0] / np.abs(v).max()
    assert np.linalg.norm(N[0].T @ w) <= 10 * EPS * np.linalg.norm(w)
    # the same subspace as LAPACK's complete QR of the n x 1 matrix
    Q_lapack = np.linalg.qr(w[:, None], mode="complete")[0]
    assert abs(abs(float(Q_lapack[:, 0] @ q[0, :, 0])) - 1.0) <= 10 * EPS


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_unit_vector_spans_v_and_is_e1_for_zero(name):
    v = np.array([VECTORS[name]])
    u = _unit(XP, v.copy())[0]
    assert abs(np.linalg.norm(u) - 1.0) <= 4 * EPS
    if not np.any(v):
        np.testing.assert_array_equal(u, np.eye(4)[0])
        return
    w = v[0] / np.abs(v).max()
    np.testing.assert_allclose(u, w / np.linalg.norm(w), rtol=0, atol=4 * EPS)


def test_inputs_are_not_modified():
    v = np.array([VECTORS["generic"], VECTORS["tiny (squares underflow)"]])
    before = v.copy()
    _reflector_basis(XP, v, np.eye(4))
    _unit(XP, v)
    np.testing.assert_array_equal(v, before)


def _edge_problems():
    """(name, net, theta, X, y): one-sample coordinates' edge cases (seeded)."""
    import esso_ref as er
    from esso_ref.problems import random_problem

    out = []
    for name, sizes, kw in [("generic", [4, 3, 3, 2], {}), ("width 1", [3, 1, 1, 2], {}),
                            ("output 1", [3, 4, 1], {"loss": "mse"}), ("depth 1", [5, 3], {}),
                            ("no bias", [4, 3, 3, 2], {"bias": False}),
                            ("relu", [4, 5, 5, 3], {"activation": "relu"})]:
        net = er.MLP(sizes, **kw)
        theta, X, y = random_problem(net, 3, 7)
        out.append((name, net, theta, X, y))
    net = er.MLP([4, 3, 3, 2], bias=False)
    theta, X, y = random_problem(net, 3, 1)
    X[1] = 0.0  # a zero input: â_0 = e_1 by convention
    out.append(("zero input", net, theta, X, y))
    net = er.MLP([4, 3, 3, 2], loss="mse")
    theta, X, y = random_problem(net, 3, 2)
    y[2] = net.predict(theta, X)[2]  # zero gradient: every delta of sample 2 is 0
    out.append(("zero gradient", net, theta, X, y))
    net = er.MLP([4, 3, 3, 2])
    theta, X, y = random_problem(net, 3, 3)
    out.append(("huge input", net, theta, X * 1e170, y))
    return out


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
@pytest.mark.parametrize("case", _edge_problems(), ids=lambda c: c[0])
def test_one_sample_coordinates_reproduce_every_row_of_A_in_an_orthonormal_basis(case, curvature):
    # E_i Y_i^T = A_i^T for each sample on its own (s = 1), E_i^T E_i = I, eqs. (40)-(41)
    from esso_ref.curvature.basis import build_basis
    from esso_ref.curvature.factor import HessianFactor
    from esso_ref.curvature.state import prepare

    _, net, theta, X, y = case
    state = prepare(net, theta, X, y)
    factor = HessianFactor(state, curvature)
    A = np.reshape(factor.materialize_A(), (X.shape[0], factor.rows.r, -1))
    basis = build_basis(state, factor.rows, 1)
    q = basis.size
    E = basis.expand(np.broadcast_to(np.eye(q), (X.shape[0], q, q)))  # rows of E_i^T
    for i in range(X.shape[0]):
        assert np.abs(E[i] @ E[i].T - np.eye(q)).max() <= 20 * EPS
        scale = max(np.abs(A[i]).max(), np.finfo(float).tiny)
        rebuilt = basis.Yt[i] @ E[i]
        assert np.abs(rebuilt - A[i]).max() <= 20 * EPS * scale


@pytest.mark.parametrize("dtype, scales, inputs", [
    ("float32", (1e-30, 1e25, 1e-25), 1e15), ("float64", (1e-200, 1e200, 1e-200), 1e120)])
def test_gauss_newton_rows_below_the_output_may_overflow_without_harm(dtype, scales, inputs):
    # rho_0 T_{2<-1} overflows here, rho_0 T_{3<-1} (the GGN's only rows) does not
    import warnings

    import esso_ref as er

    net = er.MLP([3, 2, 2, 2], activation="identity", loss="mse")
    theta = np.array(net.init(0))
    for l, s in zip((1, 2, 3), scales, strict=True):
        block = theta[net.layer_slice(l)]
        n = net.sizes[l - 1] * net.sizes[l]
        block[:n] *= s
        if l < 3:
            block[n:] = 0.0
    theta = theta.astype(dtype)
    X = (inputs * np.array([[1.0, -2.0, 0.5]])).astype(dtype)
    y = np.array([[0.3, -0.2]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = er.eigenvalues(net, theta, X, y, curvature="ggn").values
    want = np.sort(er.eigenvalues(net, theta, X, y, curvature="ggn", method="dense").values)[-2:]
    eps = np.finfo(dtype).eps
    assert np.all(np.isfinite(got)) and np.abs(got - want).max() <= 100 * eps * np.abs(want).max()


def test_a_wide_input_is_not_padded_into_every_layers_unit_vectors():
    # the unit vectors of the hidden layers are stacked zero-padded; the input's width n_0 is
    # not bounded by r, so its vector is normalised on its own (padded: 36 times X's memory)
    import tracemalloc

    import esso_ref as er
    from esso_ref.problems import random_problem

    net = er.MLP([2000, 4, 4, 4, 4, 4, 2])
    theta, X, y = random_problem(net, 200, 0)
    tracemalloc.start()
    try:
        er.per_sample_eigenvalues(net, theta, X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 10 * X.nbytes
