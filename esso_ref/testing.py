"""Public hypothesis strategies for property tests of MLP curvature code.

Requires ``hypothesis`` (``pip install esso_ref[test]``). Example::

    from hypothesis import given
    from esso_ref.testing import networks

    @given(networks())
    def test_my_gradient(problem):
        net, theta, X, y = problem
        assert_allclose(my_gradient(net, theta, X, y), net.gradient(theta, X, y))

Assertion helpers check a third party's functions against esso_ref's exact values::

    from esso_ref.testing import assert_hvp_matches, directions, networks

    @given(st.data())
    def test_my_hvp(data):
        problem = data.draw(networks())
        assert_hvp_matches(my_hvp, problem, data.draw(directions(problem)))

Eigenvalues compare with the structured route's bound, 50 r eps |H|_2 (zeros counted)::

    assert_eigenvalues_close(my_eigenvalues, er.eigenvalues(net, theta, X, y), B * net.rank_bound)

Draws are tuned to be well conditioned: parameters come from ``net.init(seed)`` (PyTorch's
default scale), inputs are standard normal, so losses, gradients and curvatures stay O(1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import strategies as st

from .activations import ACTIVATIONS
from .backend import device_of, host_normal, namespace
from .losses import LOSSES
from .mlp import MLP
from .problems import random_problem

__all__ = [
    "Problem",
    "assert_eigenvalues_close",
    "assert_eigenvalues_match",
    "assert_hessian_matches",
    "assert_hvp_matches",
    "assert_newton_matches",
    "directions",
    "mlp_specs",
    "networks",
]


class Problem(NamedTuple):
    """A network with a point and a batch: ``net, theta, X, y``."""

    net: MLP
    theta: Any
    X: Any
    y: Any


def _check_count(name: str, value) -> None:
    """A strategy's size bound must be an integer >= 1 (hypothesis' own error names none)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")


@st.composite
def mlp_specs(draw, max_layers: int = 4, max_width: int = 8, activations=None, losses=None,
              bias=None) -> MLP:
    """Networks: 1..max_layers layers, widths 1..max_width, any activation / loss / bias.

    Args:
        draw: hypothesis' draw function (supplied by ``st.composite``).
        max_layers: largest L.
        max_width: largest width n_l.
        activations: names to draw from (all by default).
        losses: names to draw from (all by default).
        bias: True / False to fix it, None to draw it.
    """
    _check_count("max_layers", max_layers)
    _check_count("max_width", max_width)
    names = sorted(losses or LOSSES)
    if max_width == 1:  # one output: cross-entropy's loss would be constant (MLP refuses it)
        names = [n for n in names if n != "cross_entropy"]
        if not names:
            raise ValueError("expected max_width >= 2 for loss 'cross_entropy' (it needs 2 "
                             "outputs), got max_width = 1")
    L = draw(st.integers(1, max_layers))
    sizes = draw(st.lists(st.integers(1, max_width), min_size=L + 1, max_size=L + 1))
    activation = draw(st.sampled_from(sorted(activations or ACTIVATIONS)))
    loss = draw(st.sampled_from(names))
    if loss == "cross_entropy" and sizes[-1] == 1:
        sizes[-1] = 2  # one class makes a constant loss; keep the draw informative
    with_bias = draw(st.booleans()) if bias is None else bias
    return MLP(sizes, activation, loss, bias=with_bias)


@st.composite
def networks(draw, max_batch: int = 5, dtype: str = "float64", xp=None, device=None,
             **spec_kw) -> Problem:
    """(net, theta, X, y): a network drawn by `mlp_specs` and a batch of 1..max_batch."""
    net = draw(mlp_specs(**spec_kw))
    _check_count("max_batch", max_batch)
    batch = draw(st.integers(1, max_batch))
    seed = draw(st.integers(0, 2**31 - 1))
    return Problem(net, *random_problem(net, batch, seed, dtype, xp=xp, device=device))


@st.composite
def directions(draw, problem: Problem):
    """A standard normal direction v in parameter space, on theta's backend."""
    seed = draw(st.integers(0, 2**31 - 1))
    xp, theta = namespace(problem.theta), problem.theta
    host = host_normal(seed, (problem.net.num_params,))
    return xp.asarray(host, dtype=theta.dtype, device=device_of(theta))


def _relative_error(got, ref) -> float:
    from .verification.checks import rel

    xp = namespace(ref)
    return rel(xp.asarray(got, dtype=ref.dtype, device=device_of(ref)), ref)


def _fail(what: str, err: float, tol_eps: float, eps: float) -> None:
    if not err <= tol_eps * eps:
        raise AssertionError(f"{what}: relative error {err:.3e} exceeds "
                             f"{tol_eps:g} eps = {tol_eps * eps:.3e}")


def _eps(theta) -> float:
    return float(namespace(theta).finfo(theta.dtype).eps)


def assert_hvp_matches(fn, problem: Problem, v, tol_eps: float = 4500.0) -> None:
    """Assert that ``fn(net, theta, X, y, v)`` equals esso_ref's exact H v, eq. (11).

    Args:
        fn: the implementation under test.
        problem: (net, theta, X, y), e.g. drawn from [`networks`][esso_ref.testing.networks].
        v: direction, shape (P,).
        tol_eps: tolerance on the max-norm relative error, in units of eps (4500 eps ~ 1e-12).

    Raises:
        AssertionError: with the measured error and the tolerance.
    """
    from .curvature import hvp

    net, theta, X, y = problem
    _fail("H v", _relative_error(fn(net, theta, X, y, v), hvp(net, theta, X, y, v)), tol_eps,
          _eps(theta))


def assert_hessian_matches(fn, problem: Problem, tol_eps: float = 4500.0) -> None:
    """Assert that ``fn(net, theta, X, y)`` equals esso_ref's dense Hessian, eq. (12)."""
    from .curvature import hessian

    net, theta, X, y = problem
    _fail("Hessian", _relative_error(fn(net, theta, X, y), hessian(net, theta, X, y)), tol_eps,
          _eps(theta))


def assert_newton_matches(fn, problem: Problem, damping: float = 1e-1, spectral="abs",
                          tol_eps: float = 4.5e7) -> None:
    """Assert that ``fn(net, theta, X, y, damping)`` equals the exact direction, eqs. (43)-(44).

    ``spectral`` selects the reference (``"none"``, ``"abs"``, ``"clip"`` or a callable). The
    tolerance bounds a forward error, so keep the damping large enough for a well-conditioned
    system (the default 4.5e7 eps ~ 1e-8).
    """
    from .curvature import newton_direction

    net, theta, X, y = problem
    ref = newton_direction(net, theta, X, y, damping=damping, spectral=spectral)
    _fail(f"Newton direction (spectral={spectral!r}, damping={damping:g})",
          _relative_error(fn(net, theta, X, y, damping), ref), tol_eps, _eps(theta))


def assert_eigenvalues_close(mu, mu_ref, r: int, norm_H: float | None = None,
                             tol_eps: float = 50.0, eps: float | None = None) -> None:
    """Assert max_i |mu_i - mu_ref_i| <= tol_eps r eps |H|_2, both spectra sorted.

    The bound of the structured route (docs/verification.md): an eigenvalue of a rank-r factor
    computed in floating point is within a small multiple of r eps |H|_2 of the exact one.

    Args:
        mu: the eigenvalues under test: all P of them (any order), or a
            `Spectrum` (its ``num_zeros`` exact zeros are added).
        mu_ref: the reference, as an array of all P values or a `Spectrum`
            (e.g. ``er.eigenvalues(net, theta, X, y)``).
        r: the rank of the factor, B R for a batch of B (``B * net.rank_bound``).
        norm_H: |H|_2 (default: max|mu_ref|).
        tol_eps: the multiple of r eps (50).
        eps: machine epsilon (default: float64's).

    Raises:
        AssertionError: with the measured error, or when the counts differ (a missing or extra
            eigenvalue, zeros included).
    """
    from .validate.measures import eigenvalue_error

    eps = 2.0**-52 if eps is None else float(eps)  # float64's machine epsilon by default
    try:
        err = eigenvalue_error(mu, mu_ref, norm_H)
    except ValueError as exc:
        raise AssertionError(f"eigenvalues: {exc}") from None
    _fail(f"eigenvalues (r = {r})", err, tol_eps * r, eps)


def assert_eigenvalues_match(fn, problem: Problem, tol_eps: float = 50.0) -> None:
    """Assert that ``fn(net, theta, X, y)`` (all P eigenvalues) equals esso_ref's spectrum.

    The reference is ``er.eigenvalues`` (structured, eq. (42)); the tolerance is
    `assert_eigenvalues_close`'s ``tol_eps`` r eps |H|_2 with r = B R.
    """
    from .backend import to_host
    from .curvature import eigenvalues

    net, theta, X, y = problem
    B = 1 if X.ndim == 1 else int(X.shape[0])
    assert_eigenvalues_close(to_host(fn(net, theta, X, y)), eigenvalues(net, theta, X, y),
                             B * net.rank_bound, tol_eps=tol_eps, eps=_eps(theta))
