"""Losses: gradient and Hessian in the logits vs complex step; stability; PyTorch scaling."""

import warnings

import numpy as np
import pytest

from esso_ref.losses import LOSSES, get_loss

from .conftest import EPS

H = 1e-30


def _draw(name, rng, B=4, n=5, scale=1.0):
    z = scale * rng.standard_normal((B, n))
    y = rng.integers(0, n, B) if name == "cross_entropy" else rng.standard_normal((B, n))
    return z, y


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_and_hessian_match_complex_step(name):
    loss, rng = LOSSES[name], np.random.default_rng(0)
    z, y = _draw(name, rng)
    n = z.shape[1]
    cs_grad = np.stack([np.imag(loss.value(z + 1j * H * np.eye(n)[k], y)) / H for k in range(n)],
                       axis=1)
    assert np.max(np.abs(loss.grad(z, y) - cs_grad)) <= 4 * EPS
    cs_hess = np.stack([np.imag(loss.grad(z + 1j * H * np.eye(n)[k], y)) / H for k in range(n)],
                       axis=2)
    assert np.max(np.abs(loss.hess(z, y) - cs_hess)) <= 4 * EPS
    zdot = rng.standard_normal(z.shape)
    assert np.allclose(loss.hess_vec(z, y, zdot), np.einsum("bij,bj->bi", loss.hess(z, y), zdot),
                       rtol=0, atol=8 * EPS)


def test_softmax_hessian_closed_form():
    z = np.array([[0.3, -1.2, 2.0]])
    p = np.exp(z) / np.exp(z).sum()
    Lam = LOSSES["cross_entropy"].hess(z, np.array([1]))[0]
    assert np.allclose(Lam, np.diag(p[0]) - np.outer(p[0], p[0]), rtol=0, atol=4 * EPS)


def test_cross_entropy_stable_for_logits_1e3():
    z = np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, -1e3]])
    y = np.array([1, 0])
    loss = LOSSES["cross_entropy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = loss.value(z, y)
    assert v[0] == 2e3 and abs(v[1] - np.log(3.0)) < 4 * EPS
    assert np.all(np.isfinite(loss.grad(z, y))) and np.all(np.isfinite(loss.hess(z, y)))


def test_mse_scaling_is_pytorch_mean_over_elements():
    z, y = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 1.0]])
    per_sample = LOSSES["mse"].value(z, y)
    assert np.allclose(per_sample, [2.5, 1.0])
    assert np.mean(per_sample) == np.mean((z - y) ** 2)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match=r"expected a loss in \['cross_entropy', 'mse'\], got 'l1'"):
        get_loss("l1")
