"""Optimizers: SGD and Adam against torch.optim; ESSO against the exact directions."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.optim import ESSO, SGD, Adam, make_optimizer
from esso_ref.problems import random_problem

from .conftest import relerr


def _torch_run(torch_opt_factory, grads, theta0):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.from_numpy(theta0.copy()))
    opt = torch_opt_factory([p])
    out = []
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _ours(opt, grads, theta0):
    theta, state, out = theta0.copy(), opt.init(theta0), []
    for g in grads:
        delta, state = opt.update(g, state, theta)
        theta = theta + delta
        out.append(theta)
    return out


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.5, "weight_decay": 0.01}])
def test_sgd_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    theta0, grads = rng.standard_normal(20), [rng.standard_normal(20) for _ in range(15)]
    ours = _ours(SGD(lr=0.1, **kw), grads, theta0)
    ref = _torch_run(lambda p: torch.optim.SGD(p, lr=0.1, **kw), grads, theta0)
    assert max(relerr(a, b) for a, b in zip(ours, ref, strict=True)) <= 1e-12


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.01}, {"betas": (0.8, 0.99), "eps": 1e-6}])
def test_adam_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    theta0, grads = rng.standard_normal(20), [rng.standard_normal(20) for _ in range(15)]
    ours = _ours(Adam(lr=0.01, **kw), grads, theta0)
    ref = _torch_run(lambda p: torch.optim.Adam(p, lr=0.01, **kw), grads, theta0)
    assert max(relerr(a, b) for a, b in zip(ours, ref, strict=True)) <= 1e-12


def test_esso_step_is_the_exact_direction():
    net = er.MLP([4, 6, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 3, 0)
    opt = ESSO(lr=0.5, damping=0.1, spectral="abs")
    new, _state, info = opt.step(theta, opt.init(theta), net, X, y)
    d = er.hessian_factor(net, theta, X, y).newton(0.1, "abs")
    assert relerr(new, theta + 0.5 * d) <= 1e-15
    d_auto = er.newton_direction(net, theta, X, y, damping=0.1, spectral="abs")
    assert relerr(d, d_auto) <= 1e-12
    assert info["loss"] == pytest.approx(float(net.loss(theta, X, y)))
    assert info["step_norm"] == pytest.approx(0.5 * np.linalg.norm(d))
    per = ESSO(damping=0.1, batch_mode="per_sample_mean")
    new2, _, _ = per.step(theta, per.init(theta), net, X, y)
    assert relerr(new2 - theta, er.per_sample_directions(net, theta, X, y, 0.1, "abs")[1]) <= 1e-14


def test_esso_adaptive_damping_follows_the_ratio():
    net = er.MLP([4, 6, 3], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 2, 1)
    opt = ESSO(damping=1e-4, adaptive=True, min_damping=1e-6)
    _, state, info = opt.step(theta, opt.init(theta), net, X, y)
    rho = info["rho"]
    if rho < 0.25:
        assert state["damping"] == pytest.approx(3e-4)
    elif rho > 0.75:
        assert state["damping"] == pytest.approx(1e-4 / 3)
    else:
        assert state["damping"] == 1e-4
    opt = ESSO(damping=100.0, adaptive=True, min_damping=1e-6)  # well predicted: lam shrinks
    _, state, info = opt.step(theta, opt.init(theta), net, X, y)
    assert info["rho"] > 0.75 and state["damping"] == pytest.approx(100.0 / 3)
    opt = ESSO(damping=100.0, adaptive=True)  # by default never below the given damping
    _, state, info = opt.step(theta, opt.init(theta), net, X, y)
    assert info["rho"] > 0.75 and state["damping"] == 100.0


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="expected lr to be finite and > 0"):
        SGD(lr=0)
    with pytest.raises(ValueError, match="expected momentum > 0 with nesterov=True"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match=r"expected betas in \[0, 1\)"):
        Adam(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"expected method in \['layerwise', 'structured'\]"):
        ESSO(method="dense")
    with pytest.raises(ValueError, match="expected batch_mode in"):
        ESSO(batch_mode="mean")
    with pytest.raises(ValueError, match=r"expected optimizer in \['adam', 'esso', 'sgd'\]"):
        make_optimizer("lbfgs")


def test_esso_damping_cap_follows_a_large_damping():
    """damping 2e6 was refused by the adaptive cap (1e6) even without adaptive damping."""
    assert ESSO(damping=2e6).max_damping == 2e6
    assert ESSO(damping=10.0).max_damping == 1e6
    with pytest.raises(ValueError, match="expected min_damping <= damping <= max_damping"):
        ESSO(damping=1.0, max_damping=0.5)
    with pytest.raises(ValueError, match="max_damping"):
        ESSO(damping=1.0, max_damping=-1.0)


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(lr=0.1, momentum=1.0), r"expected momentum in \[0, 1\), got 1.0"),
    (lambda: SGD(lr=0.1, momentum=5), r"expected momentum in \[0, 1\), got 5"),
    (lambda: SGD(lr=0.1, momentum=0.9, nesterov="x"), "expected nesterov to be True or False"),
    (lambda: ESSO(adaptive="yes"), "expected adaptive to be True or False, got 'yes'"),
])
def test_optimizer_options_are_checked(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("opt", [SGD(lr=0.1), Adam(), ESSO()])
@pytest.mark.parametrize("state", [None, {}, {"t": 0}])
def test_step_refuses_a_state_that_is_not_the_optimizers(opt, state):
    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 4, 0)
    with pytest.raises(ValueError, match=f"expected a {type(opt).__name__} state with keys"):
        opt.step(theta, state, net, X, y)
    new, _, _ = opt.step(theta, opt.init(theta), net, X, y)  # its own state works
    assert new.shape == theta.shape


def test_a_list_instead_of_an_array_says_how_to_convert_it():
    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 2, 0)
    with pytest.raises(TypeError, match=r"got list \(convert it with numpy\.asarray"):
        er.newton_direction(net, list(theta), X, y)
