"""JAX adapters: list of {W, b} and Flax Dense trees, round trips bitwise exact, forward equality."""

import itertools

import numpy as np
import pytest

import esso_ref as er
from esso_ref.interop import from_jax, to_jax
from esso_ref.problems import random_problem

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

EPS = float(np.finfo(np.float64).eps)
pytestmark = pytest.mark.jax


@pytest.fixture(autouse=True)
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def _forward_list(params, X, phi):
    a = jnp.asarray(X)
    for l, layer in enumerate(params):
        a = a @ layer["W"].T + layer.get("b", 0.0)
        a = phi(a) if l < len(params) - 1 else a
    return np.asarray(a)


def _forward_flax(tree, X, phi):
    layers = [tree["params"][f"Dense_{i}"] for i in range(len(tree["params"]))]
    a = jnp.asarray(X)
    for l, layer in enumerate(layers):
        a = a @ layer["kernel"] + layer.get("bias", 0.0)  # Flax Dense: x @ kernel + bias
        a = phi(a) if l < len(layers) - 1 else a
    return np.asarray(a)


@pytest.mark.parametrize("layout", ["list", "flax"])
@pytest.mark.parametrize("bias", [True, False])
def test_round_trip_is_bitwise_and_forward_matches(layout, bias):
    net = er.MLP([3, 5, 4, 2], "tanh", "mse", bias=bias)
    theta, X, _ = random_problem(net, 6, seed=4)
    params = to_jax(net, theta, layout=layout)
    net2, theta2 = from_jax(params, activation="tanh", loss="mse")
    assert (net2.sizes, net2.activation, net2.loss_name, net2.bias) == (
        net.sizes, "tanh", "mse", bias)
    assert theta2.dtype == np.float64 and np.array_equal(theta2, theta)
    forward = _forward_list if layout == "list" else _forward_flax
    out = forward(params, X, jnp.tanh)
    ref = net.predict(theta, X)
    assert np.max(np.abs(out - ref)) <= 64 * EPS * max(1.0, np.max(np.abs(ref)))


def test_flax_kernels_are_the_transposed_weights():
    net = er.MLP([3, 4, 2])
    theta = net.init(0)
    tree = to_jax(net, theta, layout="flax")
    W1, b1 = net.unflatten(theta)[0]
    assert tree["params"]["Dense_0"]["kernel"].shape == (3, 4)
    assert np.array_equal(np.asarray(tree["params"]["Dense_0"]["kernel"]), W1.T)
    assert np.array_equal(np.asarray(tree["params"]["Dense_0"]["bias"]), b1)
    assert to_jax(net, theta)[0]["W"].shape == (4, 3)


def test_from_jax_on_a_hand_written_flax_tree_orders_layers_numerically():
    rng = np.random.default_rng(0)
    sizes = [2] + [3] * 10 + [2]  # Dense_0 .. Dense_10: Dense_10 comes after Dense_9
    layers = {f"Dense_{i}": {"kernel": jnp.asarray(rng.standard_normal((n_in, n_out))),
                             "bias": jnp.asarray(rng.standard_normal(n_out))}
              for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))}
    shuffled = {k: layers[k] for k in sorted(layers)}  # lexical: Dense_10 before Dense_2
    net, theta = from_jax({"params": shuffled}, activation="relu")
    assert net.sizes == tuple(sizes)
    assert np.array_equal(net.unflatten(theta)[-1][0], np.asarray(layers["Dense_10"]["kernel"]).T)
    _, theta_inner = from_jax(shuffled, activation="relu")  # without the "params" level
    assert np.array_equal(theta_inner, theta)


def test_float32_params_keep_their_dtype():
    params = [{"W": jnp.ones((3, 2), dtype=jnp.float32), "b": jnp.zeros(3, dtype=jnp.float32)},
              {"W": jnp.ones((1, 3), dtype=jnp.float32), "b": jnp.zeros(1, dtype=jnp.float32)}]
    net, theta = from_jax(params, loss="mse")
    assert theta.dtype == np.float32 and net.sizes == (2, 3, 1)
    assert to_jax(net, theta)[0]["W"].dtype == jnp.float32


def test_refusals():
    with pytest.raises(TypeError, match="list of"):
        from_jax("params")
    with pytest.raises(ValueError, match="layer 2 to be a dict with 'W'"):
        from_jax([{"W": jnp.ones((3, 2))}, {"kernel": jnp.ones((3, 1))}])
    with pytest.raises(ValueError, match="'Conv_1' holding"):
        from_jax({"params": {"Dense_0": {"kernel": jnp.ones((2, 3))},
                             "Conv_1": {"weight": jnp.ones((3, 1))}}})
    with pytest.raises(ValueError, match="take 3 inputs"):
        from_jax([{"W": jnp.ones((3, 2))}, {"W": jnp.ones((1, 4))}])
    with pytest.raises(ValueError, match="bias or none"):
        from_jax([{"W": jnp.ones((3, 2)), "b": jnp.ones(3)}, {"W": jnp.ones((1, 3))}])
    with pytest.raises(ValueError, match="layout"):
        to_jax(er.MLP([2, 2]), er.MLP([2, 2]).init(0), layout="haiku")


def test_float64_needs_x64_mode():
    jax.config.update("jax_enable_x64", False)
    net = er.MLP([2, 2])
    with pytest.raises(ValueError, match="jax_enable_x64"):
        to_jax(net, net.init(0))
