"""Validate a PyTorch curvature implementation against esso_ref's golden cases.

Equations: gradient (8), H v (11), dense Hessian (12), exact spectrum (42), absolute-Hessian
Newton direction (44). The "implementation under test" below is plain PyTorch autograd
(torch.func); replace `torch_outputs` with your own code to validate it.

Run: python examples/validate_pytorch.py [DIR]   (DIR: where to export the cases; a temp dir
by default). Ends with asserts; the test suite runs it when torch is installed.
"""

import sys
import tempfile

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("this example needs PyTorch: pip install -e '.[torch]' (torch==2.13.0)")

import esso_ref as er


class Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


def torch_model(net):
    acts = {"sin": Sin, "identity": nn.Identity, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
            "relu": nn.ReLU,
            "softplus": lambda: nn.Softplus(threshold=float("inf")),
            "gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh")}
    layers = []
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:], strict=True), start=1):
        layers.append(nn.Linear(n_in, n_out, bias=net.bias, dtype=torch.float64))
        if l < net.L:
            layers.append(acts[net.activation]())
    return nn.Sequential(*layers)


def torch_outputs(case):
    """The implementation under test: PyTorch autograd on the same network and theta."""
    net = case.net
    model = torch_model(net)
    crit = nn.CrossEntropyLoss() if net.loss_name == "cross_entropy" else nn.MSELoss()
    shapes = [(n, p.shape) for n, p in model.named_parameters()]
    X, y = torch.from_numpy(case.X), torch.from_numpy(case.y)

    def loss(theta):
        params, start = {}, 0
        for name, shape in shapes:
            size = int(np.prod(shape))
            params[name] = theta[start:start + size].reshape(shape)
            start += size
        return crit(torch.func.functional_call(model, params, (X,)), y)

    theta = torch.from_numpy(case.theta)
    H = torch.func.hessian(loss)(theta).detach().numpy()
    g = torch.func.grad(loss)(theta).detach().numpy()
    mu, V = np.linalg.eigh(0.5 * (H + H.T))
    lam = case.dampings[0]
    d_abs = -(V @ ((V.T @ g) / (np.abs(mu) + lam)))
    return {
        "loss": loss(theta).item(),
        "gradient": g,
        "hvp": H @ case.v,
        "hessian": H,
        "eigenvalues": mu,
        f"newton__dense__hessian__abs__{lam:g}": d_abs,
    }


def main(directory: str) -> None:
    er.golden.export(directory)
    cases = er.golden.load(directory)
    failures = []
    for case in cases:
        report = er.golden.compare(case, torch_outputs(case))
        print(f"{case.name:32s} {'ok' if report.passed else 'FAIL'}  "
              f"worst error {max(c.error for c in report.checks):.2e}")
        failures += [(case.name, c.name) for c in report.failed()]
    assert not failures, failures
    assert len(cases) == len(er.golden.default_cases())
    print(f"{len(cases)} golden cases: the PyTorch implementation agrees with esso_ref")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="esso_golden_"))
