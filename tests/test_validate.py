"""check_implementation: passes esso_ref's own routes, catches deliberately wrong ones."""

import json

import numpy as np
import pytest

import esso_ref as er
from esso_ref.validate import (
    QUANTITIES,
    TOLERANCES,
    ImplementationReport,
    default_cases,
    load_reproducer,
)

EPS = float(np.finfo(np.float64).eps)
pytestmark = pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")


def gradient(net, theta, X, y):
    return net.gradient(theta, X, y)


def hvp(net, theta, X, y, v):
    return er.hvp(net, theta, X, y, v)


def hessian(net, theta, X, y):
    return er.hessian(net, theta, X, y)


def eigenvalues(net, theta, X, y):
    return np.linalg.eigvalsh(er.hessian(net, theta, X, y))


def newton(net, theta, X, y, damping):
    H = er.hessian(net, theta, X, y)
    return -np.linalg.solve(H + damping * np.eye(len(theta)), net.gradient(theta, X, y))


CORRECT = {"gradient": gradient, "hvp": hvp, "hessian": hessian, "eigenvalues": eigenvalues,
           "newton": newton}


@pytest.fixture(scope="module")
def cases():
    return default_cases(n_random=6, seed=0)


def test_correct_routes_pass_with_every_quantity_reported(cases, tmp_path):
    report = er.check_implementation(**CORRECT, cases=cases, save_dir=tmp_path)
    assert isinstance(report, ImplementationReport) and report.passed, report.table()
    assert [c.name for c in report.checks] == list(QUANTITIES)
    for c in report.checks:
        assert c.tol_eps == TOLERANCES[c.name] and c.error <= c.tolerance
        worst = report.meta["worst"][c.name]
        assert worst["path"] is None and worst["error_eps"] == pytest.approx(c.error / EPS)
    assert list(tmp_path.iterdir()) == []
    assert json.loads(report.to_json())["passed"] is True


def _wrong_hessian(net, theta, X, y):
    """Layer 1's W block laid out column-major: a permutation of its rows and columns."""
    H = er.hessian(net, theta, X, y)
    n_out, n_in = net.sizes[1], net.sizes[0]
    perm = np.arange(len(theta))
    perm[: n_out * n_in] = np.arange(n_out * n_in).reshape(n_out, n_in).T.ravel()
    return H[np.ix_(perm, perm)]


WRONG = {
    "gradient": lambda net, theta, X, y: gradient(net, theta, X, y) * (1 + 1e-9),
    "hvp": lambda net, theta, X, y, v: (1 + 1e-6) * hvp(net, theta, X, y, v),
    "hessian": _wrong_hessian,
    "eigenvalues": lambda net, theta, X, y: eigenvalues(net, theta, X, y)[1:],
    "newton": lambda net, theta, X, y, damping: newton(net, theta, X, y, 2 * damping),
}


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_a_wrong_implementation_fails_on_its_own_quantity(quantity, cases, tmp_path):
    fns = dict(CORRECT, **{quantity: WRONG[quantity]})
    report = er.check_implementation(**fns, cases=cases, save_dir=tmp_path)
    assert [c.name for c in report.failed()] == [quantity], report.table()
    worst = report.meta["worst"][quantity]
    assert worst["error_eps"] > worst["tol_eps"]
    assert f"FAIL {quantity}" in report.table() and worst["path"] in report.table()
    net, theta, X, y, extras = load_reproducer(worst["path"])
    case = next(c for c in cases if c.name == worst["case"])
    assert (net.sizes, net.activation, net.loss_name, net.bias) == (
        case.net.sizes, case.net.activation, case.net.loss_name, case.net.bias)
    assert np.array_equal(theta, case.theta) and np.array_equal(X, case.X)
    assert np.array_equal(y, case.y) and np.array_equal(extras["v"], case.v)
    assert extras["quantity"] == quantity and extras["damping"] == 0.1


def test_a_missing_eigenvalue_is_named_in_the_message(cases):
    report = er.check_implementation(eigenvalues=WRONG["eigenvalues"], cases=cases[:1])
    P = cases[0].net.num_params
    assert f"expected {P} eigenvalues, got {P - 1}" in report.meta["worst"]["eigenvalues"][
        "message"]


def test_a_dropped_eigenvalue_replaced_by_zero_fails(cases):
    def zeroed(net, theta, X, y):
        mu = eigenvalues(net, theta, X, y)
        return np.concatenate([mu[:-1], [0.0]])

    assert not er.check_implementation(eigenvalues=zeroed, cases=cases).passed


def test_a_structured_spectrum_with_its_zeros_passes(cases):
    report = er.check_implementation(
        eigenvalues=lambda net, theta, X, y: er.eigenvalues(net, theta, X, y).full(), cases=cases)
    assert report.passed, report.table()


def test_raising_wrong_shape_and_nan_are_failures_with_messages(cases):
    def boom(net, theta, X, y):
        raise RuntimeError("width 1 unsupported")

    report = er.check_implementation(
        gradient=boom, hvp=lambda net, theta, X, y, v: v[:-1],
        hessian=lambda net, theta, X, y: np.full((len(theta),) * 2, np.nan), cases=cases[:2])
    worst = report.meta["worst"]
    assert worst["gradient"]["message"] == "RuntimeError: width 1 unsupported"
    assert "expected H v of shape" in worst["hvp"]["message"]
    assert worst["hessian"]["message"] == "the result is not finite"
    assert len(report.failed()) == 3 and "width 1 unsupported" in report.table()


@pytest.mark.parametrize("spectral", ["abs", "clip"])
def test_newton_spectral_adjustment_is_checked(spectral, cases):
    def adjusted(net, theta, X, y, damping):
        return er.newton_direction(net, theta, X, y, damping=damping, spectral=spectral)

    assert er.check_implementation(newton=adjusted, spectral=spectral, cases=cases).passed
    assert not er.check_implementation(newton=newton, spectral=spectral, cases=cases).passed


def test_argument_errors():
    with pytest.raises(ValueError, match="at least one of"):
        er.check_implementation()
    with pytest.raises(TypeError, match="hvp to be a callable"):
        er.check_implementation(hvp=3)
    with pytest.raises(ValueError, match="damping"):
        er.check_implementation(newton=newton, damping=0.0)
    with pytest.raises(ValueError, match="spectral"):
        er.check_implementation(newton=newton, spectral="sqrt")


def test_default_cases_cover_the_edge_cases():
    cases = {c.name: c for c in default_cases(n_random=3, seed=5)}
    assert {"edge/width_1", "edge/output_1", "edge/depth_1", "edge/r_gt_P", "edge/dead_relu",
            "edge/saturated", "edge/zero_gradient", "edge/repeated_samples"} <= set(cases)
    assert len(cases) == 8 + 3
    assert cases["edge/width_1"].net.sizes[1:-1] == (1, 1)
    assert cases["edge/output_1"].net.sizes[-1] == 1 and cases["edge/depth_1"].net.L == 1
    c = cases["edge/r_gt_P"]
    assert c.batch * c.net.rank_bound > c.net.num_params
    c = cases["edge/dead_relu"]
    z1 = c.net.forward(c.theta, c.X).z[1]
    assert c.net.activation == "relu" and np.all(z1[:, :2] < 0) and np.all(z1[:, 2:] > 0)
    c = cases["edge/saturated"]
    assert c.net.activation in ("tanh", "sigmoid")
    assert np.min(np.abs(c.net.forward(c.theta, c.X).z[1])) >= 30
    c = cases["edge/zero_gradient"]
    assert np.all(c.net.gradient(c.theta, c.X, c.y) == 0) and np.any(er.hessian(
        c.net, c.theta, c.X, c.y) != 0)
    c = cases["edge/repeated_samples"]
    assert np.array_equal(c.X[:2], c.X[2:]) and np.array_equal(c.y[:2], c.y[2:])


def test_cases_are_seeded_and_respect_restrictions():
    a, b = default_cases(n_random=2, seed=1), default_cases(n_random=2, seed=1)
    assert all(np.array_equal(x.theta, y.theta) and x.describe() == y.describe()
               for x, y in zip(a, b, strict=True))
    only = default_cases(activations=["tanh"], losses=["cross_entropy"], bias=False)
    assert {c.net.activation for c in only} == {"tanh"}
    assert {c.net.loss_name for c in only} == {"cross_entropy"}
    assert not any(c.net.bias for c in only)
    assert "edge/dead_relu" not in {c.name for c in only}
    assert "edge/zero_gradient" not in {c.name for c in only}


def test_outputs_of_any_array_kind_are_accepted(cases):
    report = er.check_implementation(
        gradient=lambda net, theta, X, y: list(gradient(net, theta, X, y)),
        hessian=lambda net, theta, X, y: hessian(net, theta, X, y).tolist(), cases=cases[:4])
    assert report.passed, report.table()


def test_hessian_of_zero_is_compared_absolutely():
    c = default_cases(n_random=0)[0]  # every ReLU dead and no biases: H = 0 exactly
    c.net = er.MLP([3, 4, 2], "relu", "cross_entropy", bias=False)
    c.theta = np.concatenate([-np.ones(12), np.linspace(-1.0, 1.0, 8)])
    c.X, c.y = np.full((3, 3), 0.5), np.array([0, 1, 1])
    assert not np.any(hessian(c.net, c.theta, c.X, c.y))
    report = er.check_implementation(
        hessian=lambda net, theta, X, y: np.full((len(theta),) * 2, 1e-20), cases=[c])
    assert report["hessian"].error == 1e-20 and report.passed
