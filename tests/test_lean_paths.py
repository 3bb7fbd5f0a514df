"""The shortcuts of the public calls agree with their plain forms.

Each shortcut (a norm without the scaling pass, one set of softmax parts for delta_L and Lam,
a per-type namespace lookup, a nested thread limit, the solve's copy written into the dead
coordinates) is checked against the long way round, including the inputs where the shortcut
must step aside (tiny, huge, zero and non-finite rows; unusable buffers).
"""

import dataclasses
import math
import warnings

import array_api_compat
import numpy as np
import pytest

import esso_ref as er
from esso_ref.backend import xp_of
from esso_ref.curvature import linalg
from esso_ref.curvature.exact import coordinates
from esso_ref.curvature.factor import HessianFactor
from esso_ref.curvature.spectral import norms
from esso_ref.curvature.state import prepare
from esso_ref.losses import LOSSES, Loss
from esso_ref.problems import random_problem
from esso_ref.threads import _blas_libraries, blas_threads

EPS = np.finfo(np.float64).eps


def _norm_reference(row) -> float:
    """|row| by math.hypot over Python floats (scaled internally: no over- or underflow)."""
    return math.hypot(*[float(v) for v in row])


@pytest.fixture(autouse=True)
def _floating_point_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("scale", [0.0, 1e-320, 1e-200, 1e-160, 1e-150, 1e-140, 1.0, 1e140,
                                   1e150, 1e153, 1e160, 1e300])
def test_norms_match_a_scaled_reference_across_the_range(scale):
    rng = np.random.default_rng(0)
    v = scale * rng.standard_normal((3, 50))
    v[1, :] *= 1e-3
    v[2, 1:] = 0.0
    for got, row in zip(norms(v), v, strict=True):
        want = _norm_reference(row)
        assert got == want == 0.0 if want == 0.0 else abs(got - want) <= 8 * EPS * want


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_norms_at_the_edges_of_the_plain_sum(dtype):
    """The largest row that still overflows a plain sum, and rows whose squares underflow."""
    info = np.finfo(dtype)
    n, tiny = 1000, float(info.smallest_normal)
    # n t^2 at the largest float: the rounded plain sum would overflow
    row = np.full((1, n), np.sqrt(info.max / dtype(n)), dtype=dtype)
    want = _norm_reference(row[0])
    assert math.isfinite(want) and abs(norms(row)[0] - want) <= 4 * float(info.eps) * want
    # t^2 below tiny: the plain squares would be subnormal (relative error far above eps)
    for t in (math.sqrt(tiny) / 3, math.sqrt(tiny) * 1e-5):
        row = np.array([[t, -0.7 * t, 0.3 * t]], dtype=dtype)
        want = _norm_reference(row[0])
        assert abs(norms(row)[0] - want) <= 4 * float(info.eps) * want


def test_norms_of_mixed_rows_and_non_finite_entries():
    v = np.array([[1e-170, 3e-170], [3.0, 4.0], [1e200, 1e200], [0.0, 0.0]])
    got = norms(v)
    for g, row in zip(got, v, strict=True):
        assert abs(g - _norm_reference(row)) <= 4 * EPS * _norm_reference(row)
    assert math.isnan(norms(np.array([[1.0, np.nan]]))[0])
    assert norms(np.array([[1e200, np.inf], [3.0, 4.0]])) == [math.inf, 5.0]


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_derivatives_equal_grad_and_hess(loss):
    fn = LOSSES[loss]
    z = np.random.default_rng(1).standard_normal((4, 5)) * 30
    y = np.array([0, 4, 2, 2]) if fn.integer_targets else np.ones((4, 5))
    delta, Lam = fn.derivatives(z, y)
    assert np.array_equal(delta, fn.grad(z, y)) and np.array_equal(Lam, fn.hess(z, y))
    plain = Loss("custom", fn.value, fn.grad, fn.hess, fn.hess_vec, fn.integer_targets)
    delta2, Lam2 = plain.derivatives(z, y)
    assert np.array_equal(delta2, delta) and np.array_equal(Lam2, Lam)


def test_cross_entropy_derivatives_share_one_softmax_unless_replaced(monkeypatch):
    import esso_ref.losses as losses

    calls = []
    parts = losses._softmax_parts
    monkeypatch.setattr(losses, "_softmax_parts", lambda z: calls.append(1) or parts(z))
    ce = LOSSES["cross_entropy"]
    z, y = np.random.default_rng(2).standard_normal((3, 4)), np.array([0, 3, 1])
    ce.derivatives(z, y)
    assert len(calls) == 1
    doubled = dataclasses.replace(ce, hess=lambda z, y: 2.0 * ce.hess(z, y))
    delta, Lam = doubled.derivatives(z, y)  # the replaced hess is used, not the fused pair
    assert np.array_equal(Lam, 2.0 * ce.hess(z, y)) and np.array_equal(delta, ce.grad(z, y))


def test_namespace_lookup_is_per_type_and_matches_array_api_compat():
    import array_api_strict

    for x in (np.zeros(3), np.float64(1.0)):  # NumPy 2 itself, not its compat wrapper
        assert array_api_compat.is_numpy_namespace(array_api_compat.array_namespace(x))
        assert xp_of(x) is np
    x = array_api_strict.asarray([1.0])
    assert xp_of(x) is array_api_compat.array_namespace(x)
    assert xp_of(x) is xp_of(x)
    with pytest.raises(TypeError):
        xp_of([1.0, 2.0])


def test_nested_thread_limits_restore_the_outer_setting():
    libs = _blas_libraries()
    if not libs:
        pytest.skip("no BLAS controlled by threadpoolctl")
    before = [lib.num_threads for lib in libs]
    with blas_threads(1):
        with blas_threads(1):
            assert all(lib.num_threads == 1 for lib in libs)
        assert all(lib.num_threads == 1 for lib in libs)
        with blas_threads(2):
            assert all(lib.num_threads == 2 for lib in libs)
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before


def _shifted_system(G=3, q=7, seed=2):
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((G, q, q))
    return S + np.swapaxes(S, -1, -2), rng.standard_normal((G, q))


@pytest.mark.parametrize("work", ["fits", "larger", "small", "float32", "strided", None])
def test_solve_shifted_with_or_without_a_work_buffer(work):
    S, b = _shifted_system()
    keep = S.copy()
    n = S.size
    buffers = {"fits": np.full(n, np.nan), "larger": np.full(n + 5, np.nan),
               "small": np.full(n - 1, np.nan), "float32": np.full(n, np.nan, np.float32),
               "strided": np.full((n, 2), np.nan)[:, 0], None: None}
    x = linalg.solve_shifted(S, 0.3, b, buffers[work])
    want = np.linalg.solve(S + 0.3 * np.eye(S.shape[-1]), b[..., None])[..., 0]
    assert np.array_equal(S, keep)
    assert np.max(np.abs(x - want)) <= 1e3 * EPS * np.max(np.abs(want))
    if work in ("fits", "larger"):  # the LU factors were written there
        used = buffers[work]
        assert np.all(np.isfinite(used[:n])) and np.all(np.isnan(used[n:]))
    elif work is not None:  # unusable: left alone
        assert np.all(np.isnan(buffers[work]))


def test_solve_reuses_the_coordinates_and_keeps_S():
    net = er.MLP([5, 4, 3, 2])
    theta, X, y = random_problem(net, 3, 0)
    co = HessianFactor(prepare(net, theta, X, y), "hessian").coordinates()
    assert co.work is not None and co.work.size >= co.S.size
    S, work = co.S.copy(), co.work
    work[...] = np.nan
    d1 = co.newton(10.0)[0]
    assert np.array_equal(co.S, S) and co.work is work
    assert np.all(np.isfinite(np.reshape(work, (-1,))[:S.size]))  # the LU factors went there
    H, g = er.hessian(net, theta, X, y), net.gradient(theta, X, y)
    want = -np.linalg.solve(H + 10.0 * np.eye(net.num_params), g)
    assert np.max(np.abs(d1 - want)) <= 1e3 * EPS * np.max(np.abs(want))
    d2 = co.newton(10.0)[0]  # the buffer holds the last LU factors; S and the result are kept
    assert np.array_equal(d1, d2)
    co.eigh()
    assert co.work is None  # released for LAPACK's workspace
    assert np.array_equal(co.newton(10.0)[0], d1)


def test_work_buffer_of_the_compressed_and_non_numpy_coordinates():
    import array_api_strict as xs

    net = er.MLP([5, 4, 3, 2])
    theta, X, y = random_problem(net, 3, 0)
    ggn = HessianFactor(prepare(net, theta, X, y), "ggn").coordinates()
    assert ggn.work is not None and ggn.work.flags.c_contiguous  # the QR's R
    d = ggn.newton(1.0)[0]  # against the materialised A^T C A (no basis, no buffer)
    want = er.newton_direction(net, theta, X, y, 1.0, method="dense", curvature="ggn")
    assert np.max(np.abs(d - want)) <= 1e3 * EPS * np.max(np.abs(want))
    strict = [xs.asarray(a) for a in (theta, X)] + [xs.asarray(y)]
    co = HessianFactor(prepare(net, *strict), "hessian").coordinates()
    assert co.work is None


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_coordinates_give_b_from_the_output_rows_only(curvature):
    net = er.MLP([4, 3, 3, 2], loss="mse")
    theta, X, y = random_problem(net, 4, 3)
    state = prepare(net, theta, X, y)
    for s in (1, 2, 4):
        co = coordinates(state, HessianFactor(state, curvature).rows, s)
        g = co.expand(co.b[:, None, :])[:, 0, :]  # E_g b_g = the group's mean gradient
        groups = np.reshape(net.per_sample_gradients(theta, X, y), (4 // s, s, -1)).mean(1)
        assert np.max(np.abs(g - groups)) <= 100 * EPS * np.max(np.abs(groups))


def test_memory_is_checked_per_step(monkeypatch):
    # the coordinates (2 r q + q^2 numbers) and the solve (none: it reuses them) fit a cap
    # that the eigendecomposition (4 q^2 more) does not
    net = er.MLP([30, 40, 40, 5])
    theta, X, y = random_problem(net, 1, 0)
    q = net.rank_bound
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(8 * 3.5 * q * q / 0.8))
    d = er.newton_direction(net, theta, X, y, damping=10.0)
    assert d.shape == (net.num_params,)
    with pytest.raises(MemoryError, match=r"the eigendecomposition \(1 matrix\(es\) of size"):
        er.newton_direction(net, theta, X, y, damping=10.0, spectral="abs")


@pytest.mark.parametrize("call", [
    lambda net, t, X, y: er.newton_direction(net, t, X, y, 10.0),
    lambda net, t, X, y: er.newton_direction(net, t, X, y, spectral="abs"),
    lambda net, t, X, y: er.newton_direction(net, t, X, y, 10.0, curvature="ggn"),
    lambda net, t, X, y: er.newton_direction(net, t, X, y, 10.0, method="layerwise"),
    lambda net, t, X, y: er.eigenvalues(net, t, X, y),
    lambda net, t, X, y: er.per_sample_directions(net, t, X, y, 10.0),
    lambda net, t, X, y: er.per_sample_eigenvalues(net, t, X, y),
    lambda net, t, X, y: er.hessian_factor(net, t, X, y, route="gram").newton(10.0),
    lambda net, t, X, y: er.hessian_factor(net, t, X, y, route="qr").eigh(),
])
def test_public_calls_leave_no_reference_cycles(call):
    # arrays held in a cycle live until the next garbage collection: at large sizes the last
    # call's coordinates would still be resident while the next call allocates its own
    import gc

    net = er.MLP([5, 4, 3, 2])
    theta, X, y = random_problem(net, 3, 0)
    call(net, theta, X, y)
    gc.collect()
    gc.disable()
    try:
        call(net, theta, X, y)
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("route", ["gram", "qr"])
def test_gram_and_qr_routes_scale_their_norms(route):
    # inputs near 1e150 make |C G|_F overflow when squared unscaled: the singular rule must
    # still be applied without a floating-point warning (it raises or returns, no overflow)
    net = er.MLP([12, 3, 2], "gelu", "mse", bias=False)
    theta, X, y = random_problem(net, 1, 4)
    X = 2e150 * X / np.max(np.abs(X))
    factor = er.hessian_factor(net, theta, X, y, route=route)
    try:
        d = factor.newton(1e-3)
    except er.SingularCurvatureError as err:
        assert "singular to working precision" in str(err)
    else:
        assert np.all(np.isfinite(d))
