"""Every public route against independent dense references on seeded random configurations.

For each configuration (esso_ref.verification.configs: depth 1-5, widths 1-40, every
activation and loss, bias on/off, batch 1-6, parameter scales 0.01-5, and forced edge cases:
width 1, output 1, depth 1, r > P, dead ReLU, saturated units, zero gradient, repeated
samples, kinks) this asserts, in float64:

- eigenvalues (structured, layerwise, per-sample, GGN, mini-batch) within 50 r eps |M|_2 of
  a dense ``eigvalsh`` of the matrix M they claim to describe;
- Newton directions (structured / dense / layerwise x hessian / ggn x none / abs / clip x
  damping 1e-3, 0.1, 10, and per-sample) with normwise backward error <= 1e3 eps;
- a SingularCurvatureError only where f(M) + damping I is ill-conditioned (cond > 1e10).

The dense references are independent of the structured routes: H from P R-operator HVPs
(checked against torch.func.hessian in test_torch.py), the GGN as J^T Lam J with J from
forward-mode tangents, layer blocks as diagonal blocks of the dense H.
"""

from functools import partial

import numpy as np
import pytest

import esso_ref as er
from esso_ref.curvature.hvp import tangents
from esso_ref.curvature.state import prepare
from esso_ref.verification.configs import random_configuration

EPS = np.finfo(np.float64).eps
DAMPINGS = (1e-3, 0.1, 10.0)
SPECTRAL = {"none": None, "abs": np.abs, "clip": lambda m: np.maximum(m, 0.0)}
MAX_P = 400


def _config(seed):
    """A configuration with P <= MAX_P (dense references stay cheap); redraws past it."""
    for k in range(50):
        net, theta, X, y = random_configuration(seed + 100_003 * k)
        if net.num_params <= MAX_P:
            return net, theta, X, y
    raise AssertionError("no configuration small enough")


def _ggn_dense(net, theta, X, y):
    """(1/B) sum_i J_i^T Lam_i J_i with J_i = dz_L/dtheta from forward tangents."""
    state = prepare(net, theta, X, y)
    zdot = tangents(state, np.eye(net.num_params))[0][net.L]          # (P, B, n_L)
    J = np.transpose(zdot, (1, 2, 0))                                 # (B, n_L, P)
    return np.mean(np.transpose(J, (0, 2, 1)) @ state.Lam @ J, axis=0)


def _block_diag(net, H):
    out = np.zeros_like(H)
    for l in range(1, net.L + 1):
        s = net.layer_slice(l)
        out[s, s] = H[s, s]
    return out


def _spectrum_error(values, num_zeros, M, r, scale=None):
    """max |mu - mu_ref| in units of r eps |M|_2 (all eigenvalues, zeros included).

    ``scale`` replaces |M|_2 for layer blocks: there the bound is 50 r eps |H|_2 of the whole
    Hessian, since the dense reference block carries round-off of H's scale.
    """
    ref = np.linalg.eigvalsh(M)
    got = np.sort(np.concatenate([np.asarray(values), np.zeros(num_zeros)]))
    assert got.shape == ref.shape
    scale = np.max(np.abs(ref)) if scale is None else scale
    if scale == 0.0:
        return 0.0 if np.all(got == 0.0) else np.inf
    return float(np.max(np.abs(got - ref)) / (r * EPS * scale))


class Target:
    """A dense symmetric matrix with its eigendecomposition, for f(M) and |f(M)|_2."""

    def __init__(self, M):
        self.mu, self.V = np.linalg.eigh(M)

    def adjusted(self, f):
        """(f(M), f(mu)) (f = None: M itself)."""
        fm = self.mu if f is None else f(self.mu)
        return (self.V * fm) @ self.V.T, fm


def _backward_error(Mf, fm, d, g, lam):
    """|(f(M) + lam I) d + g| / ((|f(M)|_2 + lam) |d| + |g|) in eps units (0 for d = g = 0)."""
    res = np.linalg.norm(Mf @ d + lam * d + g)
    denom = (np.max(np.abs(fm)) + lam) * np.linalg.norm(d) + np.linalg.norm(g)
    return 0.0 if res == 0.0 else float(res / denom / EPS)


def _check_direction(call, target, f, g, lam, what):
    """Backward error <= 1e3 eps, or a singular error only on an ill-conditioned system."""
    Mf, fm = target.adjusted(f)
    try:
        d = call()
    except er.SingularCurvatureError:
        ev = np.abs(fm + lam)
        assert ev.min() <= 1e-10 * ev.max(), f"{what}: singular error on cond {ev.max() / ev.min():.2e}"
        return
    err = _backward_error(Mf, fm, d, g, lam)
    assert err <= 1e3, f"{what}: backward error {err:.3g} eps"


def _check_configuration(seed):
    net, theta, X, y = _config(seed)
    B = X.shape[0]
    H = er.hessian(net, theta, X, y)
    GGN = _ggn_dense(net, theta, X, y)
    g = net.gradient(theta, X, y)
    spec = er.eigenvalues(net, theta, X, y)
    assert _spectrum_error(spec.values, spec.num_zeros, H, B * net.rank_bound) <= 50, seed
    spec = er.eigenvalues(net, theta, X, y, curvature="ggn")
    assert _spectrum_error(spec.values, spec.num_zeros, GGN, B * net.sizes[-1]) <= 50, seed
    for l, block in enumerate(er.eigenvalues(net, theta, X, y, method="layerwise"), start=1):
        s = net.layer_slice(l)
        err = _spectrum_error(block.values, block.num_zeros, H[s, s], B * net.sizes[l],
                              scale=np.linalg.norm(H, 2))
        assert err <= 50, (seed, l, err)
    full = {"hessian": Target(H), "ggn": Target(GGN)}
    blocks = {"hessian": Target(_block_diag(net, H)), "ggn": Target(_block_diag(net, GGN))}
    for method in ("structured", "dense", "layerwise"):
        for curvature in ("hessian", "ggn"):
            target = (blocks if method == "layerwise" else full)[curvature]
            for name, f in SPECTRAL.items():
                for lam in DAMPINGS:
                    call = partial(er.newton_direction, net, theta, X, y, lam, name,
                                   method=method, curvature=curvature)
                    _check_direction(call, target, f, g, lam,
                                     f"seed {seed} {method} {curvature} {name} {lam}")
    _check_per_sample(seed, net, theta, X, y)


def _check_per_sample(seed, net, theta, X, y):
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    gs = net.per_sample_gradients(theta, X, y)
    values = er.per_sample_eigenvalues(net, theta, X, y)
    for i in range(X.shape[0]):
        err = _spectrum_error(values[i], net.num_params - values.shape[1], Hs[i], net.rank_bound)
        assert err <= 50, (seed, i, err)
    targets = [Target(H_i) for H_i in Hs]
    for name, f in SPECTRAL.items():
        lam = 0.1
        try:
            D, _ = er.per_sample_directions(net, theta, X, y, lam, name)
        except er.SingularCurvatureError:
            conds = [np.abs(t.adjusted(f)[1] + lam) for t in targets]
            assert any(c.min() <= 1e-10 * c.max() for c in conds), seed
            continue
        for i, t in enumerate(targets):
            err = _backward_error(*t.adjusted(f), D[i], gs[i], lam)
            assert err <= 1e3, (seed, name, i, err)


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
@pytest.mark.parametrize("block", range(8))
def test_every_route_against_dense_references(block):
    """200 configurations (25 per block) in the default run."""
    for seed in range(block * 25, (block + 1) * 25):
        _check_configuration(seed)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
@pytest.mark.parametrize("block", range(8))
def test_every_route_against_dense_references_1000(block):
    """800 further configurations: 1000 in all with the default run."""
    for seed in range(200 + block * 100, 200 + (block + 1) * 100):
        _check_configuration(seed)
