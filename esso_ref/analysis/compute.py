r"""The work of one task: exact spectra of a block of samples or of a mini-batch.

Only the public curvature API is called: :func:`esso_ref.per_sample_eigenvalues` (every sample's
r eigenvalues that can be non-zero, in one stacked call) and :func:`esso_ref.eigenvalues` (the
mini-batch mean Hessian). Statistics are those of the full P x P spectrum of H_i, whose other
P - r eigenvalues are exactly zero:

- ``largest`` = max(mu), ``smallest`` = min(mu), zeros included when ``num_zeros`` > 0;
- ``trace`` = sum(mu); ``frobenius`` = sqrt(sum(mu^2)), both sums correctly rounded
  (``math.fsum``, independent of summation order); ``negative`` = #{mu < 0};
- ``num_zeros`` = P - r + #{mu = 0}: the exact zeros of H_i.

Every task runs its BLAS with one thread (threadpoolctl), so that the same sample gives the same
bits whatever the chunk size, scheduler or number of workers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["batch_spectrum", "sample_block", "single_thread_blas", "statistics"]

STATISTICS = ("num_zeros", "largest", "smallest", "trace", "frobenius", "negative")
BLOCK = 16  # samples per stacked call; chunks are whole blocks, so results do not depend on them


def single_thread_blas(keep: bool = True):
    """Limit BLAS / OpenMP to one thread; ``keep=False`` returns a context manager instead."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=1)
    if keep:
        return None
    return limits


def _fsum_rows(a: np.ndarray) -> np.ndarray:
    """Correctly rounded row sums (math.fsum): the same bits whatever the memory layout."""
    return np.array([math.fsum(row) for row in a.tolist()], dtype=a.dtype)


def statistics(mu: np.ndarray, num_params: int) -> dict:
    """Per-row statistics of the full spectra whose possibly non-zero values are ``mu`` (N, r)."""
    r = mu.shape[1]
    zeros = (num_params - r) + np.count_nonzero(mu == 0, axis=1)
    has_zero = zeros > 0
    return {"num_zeros": zeros.astype(np.int64),
            "largest": np.where(has_zero, np.maximum(mu.max(axis=1), 0), mu.max(axis=1)),
            "smallest": np.where(has_zero, np.minimum(mu.min(axis=1), 0), mu.min(axis=1)),
            "trace": _fsum_rows(mu),
            "frobenius": np.sqrt(_fsum_rows(mu * mu)),
            "negative": np.count_nonzero(mu < 0, axis=1).astype(np.int64)}


def _net(spec: dict):
    from ..mlp import MLP

    return MLP(spec["sizes"], spec["activation"], spec["loss"], bias=spec["bias"])


def _to(backend: str, *arrays):
    """The arrays on ``backend``; NumPy ones copied to fresh, aligned memory.

    Arrays unpickled from a message can be misaligned, and NumPy then multiplies them without
    BLAS, in another order: the copy keeps the bits those of an in-process run.
    """
    if backend == "numpy":
        return tuple(np.array(a, copy=True, order="C") for a in arrays)
    from ..backend import to_namespace

    return tuple(to_namespace(a, backend) for a in arrays)


def sample_block(spec: dict, theta, X, y, curvatures, start: int, backend: str = "numpy"):
    """Spectra and statistics of samples ``start, start + 1, ...`` (X, y hold those samples).

    The stacked calls cover blocks of :data:`BLOCK` samples aligned on multiples of ``BLOCK``
    in the whole data set (chunks hold whole blocks), so a sample is always computed in the
    same stack: stacked LAPACK / BLAS results depend on the stack's size.

    Returns:
        dict curvature -> dict with ``eigenvalues`` (n, r) and the :data:`STATISTICS` (n,).
    """
    from .. import per_sample_eigenvalues, to_host

    net = _net(spec)
    theta_b, X_b, y_b = _to(backend, theta, X, y)
    cuts = sorted({0, *range(-start % BLOCK or BLOCK, X.shape[0], BLOCK), X.shape[0]})
    out = {}
    for curvature in curvatures:
        parts = [np.asarray(to_host(per_sample_eigenvalues(net, theta_b, X_b[a:b], y_b[a:b],
                                                           curvature=curvature)))
                 for a, b in itertools.pairwise(cuts)]
        mu = np.concatenate(parts, axis=0)
        out[curvature] = {"eigenvalues": mu, **statistics(mu, net.num_params)}
    return out


def batch_spectrum(spec: dict, theta, X, y, curvatures, backend: str = "numpy"):
    """Exact spectrum of one mini-batch's mean Hessian (and GGN).

    Returns:
        dict curvature -> (values (n',) ascending, num_zeros).
    """
    from .. import eigenvalues, to_host

    net = _net(spec)
    theta_b, X_b, y_b = _to(backend, theta, X, y)
    out = {}
    for curvature in curvatures:
        s = eigenvalues(net, theta_b, X_b, y_b, curvature=curvature)
        out[curvature] = (np.asarray(to_host(s.values)), int(s.num_zeros))
    return out
