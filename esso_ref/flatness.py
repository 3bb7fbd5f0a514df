"""Flatness of a point: exact per-sample spectra and the sharpest training-loss curvatures.

The stacked per-sample eigenproblems are chunked to fit in the available memory.
"""

from __future__ import annotations

from ._memory import available_memory, check_allocation
from .backend import namespace, to_host
from .mlp import MLP

__all__ = ["check_sample_memory", "sample_spectrum", "sharpness"]


def sharpness(net: MLP, theta, X, y, k: int = 3, progress=None) -> dict:
    """Flatness of a point: the sharpest curvatures of the training loss.

    Returns the top-k eigenvalues of the full training-set Hessian (Lanczos on Hessian-vector
    products) and the mean and maximum of every sample's exact largest eigenvalue (structured,
    eq. (42), stacked).

    Args:
        net: the network.
        theta: its parameters.
        X: training inputs, (N, n_0).
        y: training labels or targets.
        k: how many of the largest eigenvalues of the training-set Hessian.
        progress: optional ``progress(done, total)``, called with done = 0 once the Lanczos
            part is done, then after every chunk of samples.
    """
    from scipy.sparse.linalg import eigsh

    from .curvature import as_linear_operator, per_sample_eigenvalues

    op = as_linear_operator(net, theta, X, y)
    xp = namespace(theta)
    top = sorted((float(t) for t in eigsh(op, k=min(k, net.num_params - 1), which="LA",
                                          tol=1e-8, return_eigenvectors=False)), reverse=True)
    chunk, parts = _sample_chunk(net, xp), []
    if progress is not None:
        progress(0, X.shape[0])  # the Lanczos part is done
    for i in range(0, X.shape[0], chunk):
        parts.append(xp.max(per_sample_eigenvalues(net, theta, X[i:i + chunk], y[i:i + chunk]),
                            axis=1))
        if progress is not None:
            progress(min(i + chunk, X.shape[0]), X.shape[0])
    per_sample_max = xp.concat(parts)
    return {"full_top": top, "sample_max_mean": float(xp.mean(per_sample_max)),
            "sample_max_max": float(xp.max(per_sample_max))}


def _sample_bytes(net: MLP, samples: int) -> float:
    """Peak bytes of the stacked per-sample Gram eigenproblems: about 4 (r x r) per sample."""
    return 4.0 * samples * net.rank_bound ** 2 * 8


def _sample_chunk(net: MLP, xp=None) -> int:
    """Samples per stacked per-sample call: at most 64, and within half the free memory."""
    free = available_memory(xp)
    if free is None:
        return 64
    return max(1, min(64, int(0.5 * free // _sample_bytes(net, 1))))


def check_sample_memory(net: MLP, what: str, xp=None) -> None:
    """Refuse when even one sample's exact spectrum (r x r eigenproblems) would not fit."""
    check_allocation(_sample_bytes(net, 1), f"{what}: one sample's exact spectrum on {net!r} "
                     f"(r = {net.rank_bound})", "skip them or use a narrower network", xp)


def sample_spectrum(net: MLP, theta, data, index: int = 0) -> dict:
    """Summary of the exact spectrum of one training sample's Hessian, eq. (42)."""
    from .curvature import eigenvalues

    spec = eigenvalues(net, theta, data.X_train[index], data.y_train[index:index + 1])
    mu = to_host(spec.values).tolist()
    return {"sample": index, "min": min(mu), "max": max(mu),
            "negative": spec.inertia()[0], "values": mu}
