"""Activations: derivatives against the complex step, stability, complex inputs."""

import warnings

import numpy as np
import pytest

from esso_ref.activations import ACTIVATIONS, get_activation

from .conftest import EPS

Z = np.linspace(-6.0, 6.0, 241)
H = 1e-30
SCALE = float(np.max(np.abs(Z)))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_first_derivative_matches_complex_step(name):
    act = ACTIVATIONS[name]
    z = Z + 1e-3  # keep off relu's kink at 0
    cs = np.imag(act.f(z + 1j * H)) / H
    # both sides carry round-off ~ eps |z| (relative checks: test_activation_accuracy.py)
    assert np.max(np.abs(act.df(z) - cs)) <= 8 * EPS * SCALE


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_second_derivative_matches_complex_step(name):
    act = ACTIVATIONS[name]
    z = Z + 1e-3
    cs = np.imag(act.df(z + 1j * H)) / H
    assert np.max(np.abs(act.d2f(z) - cs)) <= 16 * EPS * SCALE


@pytest.mark.parametrize("dtype,big", [(np.float64, 1e300), (np.float32, 1e30)])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_finite_without_warnings_at_any_magnitude(name, dtype, big):
    act = ACTIVATIONS[name]
    z = np.array([-big, -1e3, -700.0, -40.0, -21.0, -1e-8, 0.0, 1e-8, 21.0, 40.0, 700.0, 1e3, big],
                 dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (act.f, act.df, act.d2f):
            for arg in (z, z + np.asarray(1j * H, dtype=np.result_type(dtype, np.complex64))):
                out = fn(arg)
                assert out.dtype == arg.dtype and np.all(np.isfinite(out))


def test_closed_forms_at_known_points():
    sig = ACTIVATIONS["sigmoid"]
    assert sig.f(np.array([0.0]))[0] == 0.5
    # sigmoid(-30) = 1 / (1 + e^30): accurate in the far tail, not just absolutely small
    assert abs(sig.f(np.array([-30.0]))[0] / (1.0 / (1.0 + np.exp(30.0))) - 1.0) < 4 * EPS
    sp = ACTIVATIONS["softplus"]
    assert abs(sp.f(np.array([1e3]))[0] - 1e3) == 0.0
    assert abs(sp.f(np.array([0.0]))[0] - np.log(2.0)) < 2 * EPS
    gelu_tanh = ACTIVATIONS["gelu_tanh"]
    x = np.array([0.7])
    ref = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    assert np.allclose(gelu_tanh.f(x), ref, rtol=2 * EPS, atol=0)
    # gelu is x Phi(x); Phi(1) = (1 + erf(1/sqrt 2)) / 2 = 0.8413447460685429...
    gelu = ACTIVATIONS["gelu"]
    assert abs(gelu.f(np.array([1.0]))[0] / 0.8413447460685429 - 1.0) < 2 * EPS


def test_relu_branches_on_real_part():
    relu = ACTIVATIONS["relu"]
    z = np.array([-1.0 + 1e-30j, 2.0 + 1e-30j])
    out = relu.f(z)
    assert out[0] == 0 and out[1].imag == 1e-30


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"expected an activation in \[.*'tanh'.*\], got 'tahn'"):
        get_activation("tahn")
