"""Backends: namespace from the inputs, mixing is a TypeError, transfers, same results."""

import array_api_strict as xs
import numpy as np
import pytest

import esso_ref as er
from esso_ref.backend import get_namespace, namespace, to_host, to_namespace
from esso_ref.problems import random_problem

from .conftest import relerr


def test_mixing_namespaces_names_both():
    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 2, 0)
    X_strict = xs.asarray(X)
    with pytest.raises(TypeError, match="theta is numpy but X is array_api_strict"):
        net.loss(theta, X_strict, y)


def test_mixing_devices_is_reported():
    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 2, 0, xp="array_api_strict")
    X1 = xs.asarray(to_host(X), device=xs.Device("device1"))
    with pytest.raises(ValueError, match="different devices"):
        net.loss(theta, X1, y)


def test_to_host_and_to_namespace_round_trip():
    x = np.arange(6.0).reshape(2, 3)
    s = to_namespace(x, "array_api_strict", device=xs.Device("device1"))
    assert s.device == xs.Device("device1")
    assert np.array_equal(to_host(s), x)
    assert namespace(s).__name__.endswith("array_api_strict")
    assert np.array_equal(to_host(to_namespace([[1.0, 2.0]])), [[1.0, 2.0]])


def test_cupy_missing_is_a_clear_import_error():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="install esso_ref\\[cuda12\\]"):
            get_namespace("cupy")
    else:
        pytest.skip("cupy is installed")


def test_same_results_on_every_backend(backend):
    name, device = backend
    net = er.MLP([4, 5, 3], "gelu", "cross_entropy")
    t_np, X_np, y_np = random_problem(net, 3, 7)
    theta, X, y = random_problem(net, 3, 7, xp=name, device=device)
    assert namespace(theta).__name__.endswith(name)
    assert relerr(net.gradient(theta, X, y), net.gradient(t_np, X_np, y_np)) <= 4 * 2.2e-16
    assert abs(float(net.loss(theta, X, y)) - float(net.loss(t_np, X_np, y_np))) <= 1e-15
    assert net.per_sample_gradients(theta, X, y).shape == (3, net.num_params)


def test_float32_runs_close_to_float64(backend):
    name, device = backend
    net = er.MLP([4, 5, 3], "tanh", "mse")
    t64, X64, y64 = random_problem(net, 3, 1, xp=name, device=device)
    t32, X32, y32 = random_problem(net, 3, 1, dtype="float32", xp=name, device=device)
    g32 = net.gradient(t32, X32, y32)
    assert g32.dtype == namespace(g32).float32
    assert relerr(to_host(g32).astype(np.float64), net.gradient(t64, X64, y64)) <= 1e-5


def test_float32_on_no_float64_device():
    net = er.MLP([4, 5, 3], "tanh", "cross_entropy")
    dev = xs.Device("no_float64")
    theta, X, y = random_problem(net, 2, 3, dtype="float32", xp="array_api_strict", device=dev)
    g = net.gradient(theta, X, y)
    assert g.device == dev
    t64, X64, y64 = random_problem(net, 2, 3)
    assert relerr(to_host(g).astype(np.float64), net.gradient(t64, X64, y64)) <= 1e-5
