"""Cross-check against PyTorch autograd on the equivalent float64 nn.Sequential."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem

from .conftest import relerr

torch = pytest.importorskip("torch")
from . import torch_reference as tr  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")]
CASES = [(a, l, b) for a in sorted(er.ACTIVATIONS) for l in sorted(er.LOSSES) for b in (True, False)]


def _problem(act, loss, bias, sizes=(4, 5, 3, 3), batch=3, seed=0):
    net = er.MLP(list(sizes), act, loss, bias=bias)
    return (net, *random_problem(net, batch, seed))


def test_parameter_order_is_parameters_to_vector():
    net = er.MLP([3, 4, 2])
    theta = net.init(0)
    model = tr.build(net)
    torch.nn.utils.vector_to_parameters(torch.from_numpy(theta), model.parameters())
    assert np.array_equal(torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy(),
                          theta)
    assert np.array_equal(model[0].weight.detach().numpy(), net.unflatten(theta)[0][0])


@pytest.mark.parametrize("act,loss,bias", CASES)
def test_loss_and_gradient_match_autograd(act, loss, bias):
    net, theta, X, y = _problem(act, loss, bias)
    f, _ = tr.loss_fn(net)
    t, Xt, yt = tr.tensors(theta, X, y)
    t.requires_grad_(True)
    value = f(t, Xt, yt)
    (grad,) = torch.autograd.grad(value, t)
    assert abs(float(net.loss(theta, X, y)) - value.item()) <= 1e-12 * abs(value.item())
    assert relerr(net.gradient(theta, X, y), grad.numpy()) <= 1e-12


@pytest.mark.parametrize("act,loss,bias", CASES)
def test_hvp_and_dense_hessian_match_torch_func(act, loss, bias):
    net, theta, X, y = _problem(act, loss, bias)
    f, _ = tr.loss_fn(net)
    t, Xt, yt = tr.tensors(theta, X, y)
    H_torch = torch.func.hessian(f)(t, Xt, yt).numpy()
    assert relerr(er.hessian(net, theta, X, y), H_torch) <= 1e-12
    v = np.random.default_rng(1).standard_normal(net.num_params)
    _, hv = torch.autograd.functional.hvp(lambda p: f(p, Xt, yt), t, torch.from_numpy(v))
    assert relerr(er.hvp(net, theta, X, y, v), hv.numpy()) <= 1e-12


def _torch_dense(net, theta, X, y):
    f, _ = tr.loss_fn(net)
    t, Xt, yt = tr.tensors(theta, X, y)
    H = torch.func.hessian(f)(t, Xt, yt).detach().numpy()
    g = torch.func.grad(f)(t, Xt, yt).detach().numpy()
    return 0.5 * (H + H.T), g


@pytest.mark.parametrize("act,loss,bias", CASES)
def test_spectrum_and_newton_match_torch(act, loss, bias):
    net, theta, X, y = _problem(act, loss, bias, batch=2)
    H, g = _torch_dense(net, theta, X, y)
    ev = np.linalg.eigvalsh(H)
    r = 2 * net.rank_bound
    spec = er.eigenvalues(net, theta, X, y)
    assert np.max(np.abs(spec.full() - ev)) <= 50 * r * 2.2e-16 * np.max(np.abs(ev))
    mu, V = np.linalg.eigh(H)
    lam = 1e-2
    for spectral, f in (("abs", np.abs(mu)), ("clip", np.maximum(mu, 0)), ("none", mu)):
        M = (V * (f + lam)) @ V.T
        for method in ("structured", "dense"):
            try:
                d = er.newton_direction(net, theta, X, y, damping=lam, spectral=spectral,
                                        method=method)
            except er.SingularCurvatureError:
                continue
            bound = 1e3 * 2.2e-16 * (np.linalg.norm(M, 2) * np.linalg.norm(d) + np.linalg.norm(g))
            assert np.linalg.norm(M @ d + g) <= bound, (spectral, method)
