"""check_implementation through the PyTorch adapter: torch.func code passes, a wrong one fails."""

import numpy as np
import pytest

import esso_ref as er
from esso_ref.validate import default_cases

torch = pytest.importorskip("torch")
from esso_ref.interop import TORCH_ACTIVATIONS, flat_loss, torch_callable  # noqa: E402

pytestmark = pytest.mark.torch


def grad(model, crit, theta, X, y):
    return torch.func.grad(flat_loss(model, crit))(theta, X, y)


def newton(model, crit, theta, X, y, damping):
    H = torch.func.hessian(flat_loss(model, crit))(theta, X, y)
    return -torch.linalg.solve(H + damping * torch.eye(len(theta), dtype=H.dtype),
                               grad(model, crit, theta, X, y))


def test_torch_callable_passes_numpy_in_and_out():
    seen = {}

    def probe(model, crit, theta, X, y, v):
        seen.update(model=model, crit=crit, types={type(t) for t in (theta, X, y, v)})
        return v

    net = er.MLP([2, 3, 2], "tanh", "mse")
    theta = net.init(0)
    v = np.arange(net.num_params, dtype=np.float64)
    out = torch_callable(probe)(net, theta, np.ones((1, 2)), np.ones((1, 2)), v)
    assert isinstance(out, np.ndarray) and np.array_equal(out, v)
    assert seen["types"] == {torch.Tensor} and isinstance(seen["crit"], torch.nn.MSELoss)
    assert np.array_equal(torch.nn.utils.parameters_to_vector(
        seen["model"].parameters()).detach().numpy(), theta)


def test_torch_func_passes_and_wrong_damping_fails(tmp_path):
    cases = default_cases(activations=TORCH_ACTIVATIONS, n_random=4, seed=2)
    good = er.check_implementation(gradient=torch_callable(grad), newton=torch_callable(newton),
                                   cases=cases, save_dir=tmp_path)
    assert good.passed, good.table()

    def wrong(model, crit, theta, X, y, damping):
        return newton(model, crit, theta, X, y, 1.5 * damping)

    bad = er.check_implementation(newton=torch_callable(wrong), cases=cases, save_dir=tmp_path)
    assert [c.name for c in bad.failed()] == ["newton"]
    assert bad.meta["worst"]["newton"]["error_eps"] > 1e3
