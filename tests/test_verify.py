"""er.verify: passes everywhere it should, fails exactly where a quantity is wrong."""

import json
import warnings

import numpy as np
import pytest

import esso_ref as er
from esso_ref.cli import main
from esso_ref.curvature.hvp import hvp_state
from esso_ref.problems import random_problem

GRID = [(a, l, B, bias) for a in sorted(er.ACTIVATIONS) for l in sorted(er.LOSSES)
        for B in (1, 3) for bias in (True, False)]


@pytest.mark.parametrize("act,loss,batch,bias", GRID)
def test_cli_verify_passes_on_both_issue_sizes(act, loss, batch, bias, capsys):
    for sizes in ("8,6,4", "5,7,6,3"):
        argv = ["verify", "--sizes", sizes, "--activation", act, "--loss", loss,
                "--batch", str(batch), "--json"] + ([] if bias else ["--no-bias"])
        assert main(argv) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] and len(report["checks"]) >= 40


def test_wrong_hvp_fails_the_hvp_rows_only(monkeypatch):
    net = er.MLP([5, 7, 6, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 3, 0)
    monkeypatch.setattr("esso_ref.verification.checks.hvp_state",
                        lambda state, v: 1.0001 * hvp_state(state, v))
    report = er.verify(net, theta, X, y)
    failed = [c.name for c in report.failed()]
    assert failed and all(name.startswith("hvp/") for name in failed)
    assert set(failed) == {"hvp/complex_step", "hvp/richardson"}


def test_dense_checks_skip_with_reason_above_limit():
    net = er.MLP([20, 30, 10], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 1, 0)
    report = er.verify(net, theta, X, y, max_dense_params=500)
    skipped = [c for c in report.checks if c.skipped]
    assert skipped and all("max_dense_params=" in c.note for c in skipped)
    assert report.passed
    assert "skip" in report.table()


def test_report_api():
    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 2, 0)
    report = er.verify(net, theta, X, y, checks=["gradient"])
    d = report.to_dict()
    assert d["passed"] and [c["name"] for c in d["checks"]] == [
        "loss/direct_formula", "gradient/complex_step", "gradient/richardson"]
    assert json.loads(report.to_json()) == d
    row = report["gradient/complex_step"]
    assert row.tolerance == row.tol_eps * np.finfo(float).eps and row.error < row.tolerance
    with pytest.raises(KeyError, match="no check named 'x'"):
        report["x"]
    with pytest.raises(ValueError, match=r"expected checks 'all' or a subset of"):
        er.verify(net, theta, X, y, checks=["grad"])


def test_loss_row_skips_when_softmax_underflows():
    net = er.MLP([3, 4, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 2, 4)
    theta[net.layer_slice(2)] *= 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        row = er.verify(net, theta, X, y, checks=["gradient"])["loss/direct_formula"]
    assert row.skipped or row.passed


def test_gelu_failure_names_the_convention(monkeypatch):
    net = er.MLP([3, 4, 2], "gelu", "cross_entropy")
    theta, X, y = random_problem(net, 2, 0)
    monkeypatch.setattr("esso_ref.verification.checks.hvp_state",
                        lambda state, v: 1.0001 * hvp_state(state, v))
    report = er.verify(net, theta, X, y, checks=["hvp"])
    assert not report.passed
    assert "nn.GELU()" in report.table() and "nn.GELU()" in report.to_dict()["hint"]
    monkeypatch.undo()
    assert "hint" not in er.verify(net, theta, X, y, checks=["hvp"]).to_dict()


def test_readme_network_runs_every_check_by_default():
    net = er.MLP([64, 32, 10], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 1, 0)
    report = er.verify(net, theta, X, y, checks=["factor", "spectrum", "per_sample"])
    assert net.num_params == 2410 and report.passed
    assert not any(c.skipped for c in report.checks)


def test_zero_gradient_and_kink_pass():
    net = er.MLP([3, 4, 4, 2], "relu", "mse")
    theta, X, _ = random_problem(net, 3, 1)
    X[0, :] = 0.0
    theta[net.layer_slice(1)][-4:] = 0.0      # b_1 = 0: z_1 of sample 0 is exactly 0
    y = net.predict(theta, X)                  # exact zero gradient
    report = er.verify(net, theta, X, y)
    assert float(abs(net.gradient(theta, X, y)).max()) == 0.0
    assert report.passed, report.table()


@pytest.mark.parametrize("act", sorted(er.ACTIVATIONS))
def test_cli_verify_float32_passes(act, capsys):
    for loss in sorted(er.LOSSES):
        assert main(["verify", "--dtype", "float32", "--activation", act, "--loss", loss,
                     "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] and report["meta"]["dtype"] == "float32"


def test_singular_per_sample_systems_are_skipped_as_documented_not_failed():
    # damping 1e-300: every f(H_i) + lam I is singular to working precision, and the stacked
    # call raises SingularCurvatureError as documented; the per-sample references confirm it
    net = er.MLP([3, 2])
    theta, X, y = random_problem(net, 2, 0)
    report = er.verify(net, theta, X, y, damping=1e-300, checks=["per_sample", "newton"])
    rows = {c.name: c for c in report.checks}
    for curvature in ("hessian", "ggn"):
        for spectral in ("none", "abs", "clip"):
            row = rows[f"per_sample/newton/{curvature}/{spectral}"]
            assert row.skipped and "raises SingularCurvatureError as documented" in row.note
    assert report.passed


def test_singular_per_sample_error_fails_when_the_references_disagree(monkeypatch):
    from esso_ref.curvature.spectral import SingularCurvatureError
    from esso_ref.verification import sample_checks

    def refuses(*args, **kwargs):
        raise SingularCurvatureError("claimed singular")

    monkeypatch.setattr(sample_checks, "per_sample_directions", refuses)
    net = er.MLP([3, 2])
    theta, X, y = random_problem(net, 2, 0)
    report = er.verify(net, theta, X, y, damping=1.0, checks="per_sample")
    bad = [c for c in report.checks if c.name.startswith("per_sample/newton/")]
    assert len(bad) == 6 and all(c.passed is False for c in bad)
    assert all("claimed singular" in c.note and "reference:" in c.note for c in bad)


def test_a_step_refused_for_memory_is_raised_not_reported_as_a_failure(monkeypatch):
    from esso_ref._memory import InsufficientMemoryError

    net = er.MLP([3, 2])
    theta, X, y = random_problem(net, 400, 0)  # dense C_B, G_B: 800 x 800
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(2e6))
    with pytest.raises(InsufficientMemoryError):
        er.verify(net, theta, X, y, checks="factor")


def test_cli_verify_refuses_the_batch_references_before_any_work(monkeypatch, capsys):
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(2e8))
    code = main(["verify", "--batch", "4000", "--sizes", "3,2", "--checks", "factor"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "esso-ref verify on MLP([3, 2]" in err and "use smaller --sizes / --batch" in err


@pytest.mark.parametrize("scale, activation, bias", [(1e-300, "tanh", False),
                                                     (1e100, "identity", False),
                                                     (1e-150, "tanh", True),
                                                     (1e150, "identity", False),
                                                     (1e150, "relu", True),
                                                     (1e-150, "relu", False)])
def test_verify_holds_at_inputs_near_under_and_overflow(scale, activation, bias):
    # norms are scaled before squaring (|H| ~ 1e200 at inputs of 1e100), tolerances divide
    # without underflow, g.d is read on unit vectors, and a complex step whose imaginary parts
    # fall below the normal range is skipped with the reason instead of failing
    net = er.MLP([4, 3, 3, 2], activation, bias=bias)
    theta, X, y = random_problem(net, 3, 3)
    report = er.verify(net, theta, X * scale, y)
    assert report.passed, report.table()
    rows = {c.name: c for c in report.checks}
    if scale == 1e-300:
        for name in ("gradient/complex_step", "hvp/complex_step"):
            assert rows[name].skipped and "below the normal range" in rows[name].note
    elif scale > 1:
        assert not rows["gradient/complex_step"].skipped


def test_tolerance_of_a_subnormal_scale_does_not_divide_by_zero():
    from esso_ref.verification.errors import tolerance

    S, tol = tolerance(1e-310, 1e-311, 10.0, 2.0**-52)
    assert S == 1e-310 and np.isfinite(tol) and tol > 0


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150])
def test_verify_still_catches_a_wrong_gradient_near_under_and_overflow(scale, monkeypatch):
    net = er.MLP([3, 4, 2], "tanh", bias=False)
    theta = net.init(0)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((3, 3)) * scale, rng.integers(0, 2, 3)
    assert er.verify(net, theta, X, y).passed
    right = er.MLP._gradient
    monkeypatch.setattr(er.MLP, "_gradient", lambda self, *a, **k: 1.001 * right(self, *a, **k))
    assert not er.verify(net, theta, X, y).passed
