"""Tasks that compute one chunk and commit it to the store, and the scan for complete chunks.

A task writes its chunk's data, then its checksum in ``_done`` (the commit point; see
:mod:`.commit`). Tasks write disjoint Zarr chunks, each file written atomically by Zarr, so
tasks of any scheduler may run concurrently; the store path must be reachable from every worker
(a shared file system).
"""

from __future__ import annotations

import numpy as np

from .commit import Target, commit
from .compute import STATISTICS, batch_spectrum, sample_block, single_thread_blas
from .store import _rank, chunk_checksum

__all__ = ["batch_task", "sample_task", "scan"]


def _sample_names(curvatures) -> list[str]:
    """The per-sample arrays of a chunk, in checksum order."""
    return [f"{c}/{name}" for c in curvatures for name in ("eigenvalues", *STATISTICS)]


def _sample_parts(group, curvatures, a: int, b: int) -> list:
    """The stored arrays of samples a:b, in checksum order."""
    return [group[name][a:b] for name in _sample_names(curvatures)]


def sample_task(target: Target, k: int, a: int, spec: dict, theta, X, y, curvatures,
                backend: str, own_process: bool) -> int:
    """Compute samples a : a + len(X) (chunk k), write them, then commit the chunk."""
    if own_process:
        single_thread_blas(keep=True)
    values = sample_block(spec, theta, X, y, curvatures, a, backend)
    rows = slice(a, a + X.shape[0])
    writes = [(f"{c}/{name}", rows, values[c][name])
              for c in curvatures for name in ("eigenvalues", *STATISTICS)]
    commit(target, writes, ("samples", k))  # the order of _sample_names
    return k


def _batch_parts(group, curvatures, j: int) -> list:
    """The stored arrays of mini-batch j, in checksum order."""
    parts = []
    for c in curvatures:
        parts += [group[f"{c}/batch_eigenvalues"][j], group[f"{c}/batch_num_zeros"][j:j + 1]]
    return parts


def _batch_writes(spec: dict, B: int, j: int, values: dict) -> list:
    """(array, selection, values) of mini-batch j: its spectrum NaN-padded to B r entries."""
    writes = []
    for c, (mu, num_zeros) in values.items():
        row = np.full(B * _rank(spec["sizes"], c), np.nan, dtype=mu.dtype)
        row[:mu.shape[0]] = mu
        writes += [(f"{c}/batch_eigenvalues", j, row),
                   (f"{c}/batch_num_zeros", slice(j, j + 1), np.asarray([num_zeros]))]
    return writes


def batch_task(target: Target, j: int, spec: dict, theta, X, y, curvatures, backend: str,
               own_process: bool) -> int:
    """Compute mini-batch j's exact spectra, write them, then commit it."""
    if own_process:
        single_thread_blas(keep=True)
    values = batch_spectrum(spec, theta, X, y, curvatures, backend)
    commit(target, _batch_writes(spec, X.shape[0], j, values), ("batches", j))
    return j


def _intact(read, expected: int) -> bool:
    try:
        return chunk_checksum(read()) == expected
    except Exception:  # an unreadable (torn, corrupted) chunk file
        return False


def scan(group, meta: dict) -> dict:
    """Which chunks are complete, missing or corrupt (checksum present but wrong).

    Returns:
        dict with ``samples`` / ``batches``: (complete ids, corrupt ids).
    """
    curvatures, N, C = list(meta["rank"]), meta["num_samples"], meta["chunk_size"]
    out = {}
    marks = group["_done/samples"][...]
    good = [k for k in range(meta["num_chunks"]) if marks[k] and _intact(
        lambda k=k: _sample_parts(group, curvatures, k * C, min(N, (k + 1) * C)), marks[k])]
    out["samples"] = (good, [k for k in np.flatnonzero(marks).tolist() if k not in good])
    marks = group["_done/batches"][...][:meta["num_batches"]]
    good = [j for j in range(meta["num_batches"]) if marks[j] and _intact(
        lambda j=j: _batch_parts(group, curvatures, j), marks[j])]
    out["batches"] = (good, [j for j in np.flatnonzero(marks).tolist() if j not in good])
    return out
