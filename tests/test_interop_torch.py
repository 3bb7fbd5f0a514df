"""PyTorch adapters: round trips bitwise exact both ways, forward equality, refusals."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.problems import random_problem

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from esso_ref.interop import (  # noqa: E402
    SOFTPLUS_EXACT_THRESHOLD,
    TORCH_ACTIVATIONS,
    SoftplusThresholdWarning,
    from_torch,
    sin_module,
    to_torch,
)

pytestmark = pytest.mark.torch
EPS = float(np.finfo(np.float64).eps)
GELU = pytest.mark.skipif("gelu_tanh" not in er.ACTIVATIONS,
                          reason="needs esso_ref's 'gelu' (erf) and 'gelu_tanh' activations")


def _vector(module):
    return nn.utils.parameters_to_vector(module.parameters()).detach().numpy()


def _net_cases():
    return [(a, loss, bias) for a in TORCH_ACTIVATIONS for loss in sorted(er.LOSSES) for bias in (True, False)]


@pytest.mark.parametrize("act,loss,bias", _net_cases())
def test_to_torch_then_from_torch_is_bitwise_and_forward_matches(act, loss, bias):
    net = er.MLP([3, 4, 5, 2], act, loss, bias=bias)
    theta, X, _ = random_problem(net, 6, seed=3)
    module = to_torch(net, theta)
    assert np.array_equal(_vector(module), theta)
    net2, theta2 = from_torch(module, loss=loss)
    assert (net2.sizes, net2.activation, net2.loss_name, net2.bias) == (
        net.sizes, act, loss, bias)
    assert theta2.dtype == np.float64 and np.array_equal(theta2, theta)
    out = module(torch.from_numpy(X)).detach().numpy()
    ref = net.predict(theta, X)
    assert np.max(np.abs(out - ref)) <= 64 * EPS * max(1.0, np.max(np.abs(ref)))


def test_from_torch_then_to_torch_is_bitwise_on_a_user_module():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Tanh(),
                           nn.Linear(3, 2)).double()
    net, theta = from_torch(module, loss="mse")
    assert net.sizes == (5, 7, 3, 2) and net.activation == "tanh" and net.loss_name == "mse"
    back = to_torch(net, theta)
    for p, q in zip(module.parameters(), back.parameters(), strict=True):
        assert p.dtype == q.dtype and torch.equal(p, q)
    X = np.random.default_rng(0).standard_normal((4, 5))
    ref = net.predict(theta, X)
    assert np.max(np.abs(module(torch.from_numpy(X)).detach().numpy() - ref)) <= 64 * EPS


def test_float32_module_keeps_its_dtype_and_loss_matches():
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    net, theta = from_torch(module)
    assert theta.dtype == np.float32 and np.array_equal(theta, _vector(module))
    assert _vector(to_torch(net, theta)).dtype == np.float32
    X = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1])
    ref = nn.CrossEntropyLoss()(module(torch.from_numpy(X)), torch.from_numpy(y)).item()
    assert abs(float(net.loss(theta, X, y)) - ref) <= 64 * np.finfo(np.float32).eps * abs(ref)


def test_single_linear_layer_and_identity_gaps():
    net, _ = from_torch(nn.Sequential(nn.Linear(3, 2)))
    assert net.sizes == (3, 2) and net.activation == "identity"
    assert from_torch(nn.Sequential(nn.Linear(3, 2)), activation="relu")[0].activation == "relu"
    net, _ = from_torch(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)))
    assert net.activation == "identity"
    net, _ = from_torch(nn.Sequential(nn.Linear(3, 4), nn.Identity(), nn.Linear(4, 2)))
    assert net.activation == "identity"


def test_sin_module_round_trip():
    net = er.MLP([2, 3, 2], "sin")
    module = to_torch(net, net.init(0))
    assert isinstance(module[1], sin_module())
    assert from_torch(module)[0].activation == "sin"


@GELU
@pytest.mark.parametrize("module,name", [(lambda: nn.GELU(), "gelu"),
                                         (lambda: nn.GELU(approximate="tanh"), "gelu_tanh")])
def test_gelu_forms_map_to_their_exact_counterparts(module, name):
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(3, 6), module(), nn.Linear(6, 2)).double()
    net, theta = from_torch(m)
    assert net.activation == name
    X = 3.0 * np.random.default_rng(2).standard_normal((8, 3))
    out = m(torch.from_numpy(X)).detach().numpy()
    assert np.max(np.abs(out - net.predict(theta, X))) <= 64 * EPS * np.max(np.abs(out))
    assert type(to_torch(net, theta)[1]) is nn.GELU
    assert to_torch(net, theta)[1].approximate == ("none" if name == "gelu" else "tanh")


@pytest.mark.skipif("gelu_tanh" in er.ACTIVATIONS, reason="this esso_ref has both GELU forms")
def test_gelu_is_refused_without_the_erf_form():
    with pytest.raises(ValueError, match="'gelu' \\(erf form\\) and 'gelu_tanh'"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Linear(2, 2)))


def test_softplus_threshold_policy():
    exact = nn.Sequential(nn.Linear(2, 3), nn.Softplus(threshold=SOFTPLUS_EXACT_THRESHOLD),
                          nn.Linear(3, 2)).double()
    assert from_torch(exact)[0].activation == "softplus"
    default = nn.Sequential(nn.Linear(2, 3), nn.Softplus(), nn.Linear(3, 2))
    with pytest.warns(SoftplusThresholdWarning, match="threshold=20"):
        assert from_torch(default)[0].activation == "softplus"
    net = er.MLP([2, 3, 2], "softplus")
    assert to_torch(net, net.init(0))[1].threshold == SOFTPLUS_EXACT_THRESHOLD
    # from z = 40 on, PyTorch's linearised softplus equals the exact one to the last bit
    z = np.array([SOFTPLUS_EXACT_THRESHOLD, 45.0, 100.0, 700.0])
    linear = nn.Softplus(threshold=SOFTPLUS_EXACT_THRESHOLD)(torch.from_numpy(z)).numpy()
    assert np.array_equal(linear, er.ACTIVATIONS["softplus"].f(z))


@pytest.mark.parametrize("module,match", [
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 2)), r"module \[1\] ELU"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 3), nn.ReLU(),
                           nn.Linear(3, 2)), "same single activation"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Tanh(), nn.Linear(3, 2)),
     "same single activation"),
    (lambda: nn.Sequential(nn.Conv1d(1, 1, 1)), r"module \[0\] Conv1d"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 2)),
     r"module \[1\] Dropout"),
    (lambda: nn.Sequential(nn.Linear(2, 3, bias=False), nn.Tanh(), nn.Linear(3, 2)),
     "bias or none"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.Softmax(dim=1)),
     r"module \[3\] Softmax"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh()), "end with nn.Linear"),
    (lambda: nn.Sequential(nn.Tanh(), nn.Linear(2, 3)), r"module \[0\] Tanh"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Softplus(beta=2.0), nn.Linear(3, 2)), "beta=1"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 2)), "take 3 inputs"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2).double()),
     "one dtype"),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Tanh()), nn.Linear(3, 2)),
     r"module \[1\] Sequential"),
])
def test_unsupported_modules_are_refused_by_name(module, match):
    with pytest.raises(ValueError, match=match):
        from_torch(module())


def test_non_sequential_and_bad_loss_are_refused():
    with pytest.raises(TypeError, match=r"expected a torch\.nn\.Sequential.*got Linear"):
        from_torch(nn.Linear(2, 3))
    with pytest.raises(ValueError, match="loss"):
        from_torch(nn.Sequential(nn.Linear(2, 3)), loss="hinge")
