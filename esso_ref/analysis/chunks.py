"""Tasks that compute one chunk and commit it to the store, and the scan for complete chunks.

A task writes its chunk's data, then its checksum in ``_done`` (the commit point). Tasks write
disjoint Zarr chunks, each file written atomically by Zarr, so tasks of any scheduler may run
concurrently; the store path must be reachable from every worker (a shared file system).
"""

from __future__ import annotations

import numpy as np

from .compute import STATISTICS, batch_spectrum, sample_block, single_thread_blas
from .store import _zarr, chunk_checksum

__all__ = ["batch_task", "sample_task", "scan"]


def _sample_parts(group, curvatures, a: int, b: int, values: dict | None = None):
    """The arrays of samples a:b in checksum order, cast to the stored dtypes (writes them)."""
    parts = []
    for c in curvatures:
        for name in ("eigenvalues", *STATISTICS):
            arr = group[f"{c}/{name}"]
            if values is None:
                parts.append(arr[a:b])
            else:
                v = np.asarray(values[c][name], dtype=arr.dtype)
                arr[a:b] = v
                parts.append(v)
    return parts


def sample_task(path: str, k: int, a: int, spec: dict, theta, X, y, curvatures,
                backend: str, own_process: bool) -> int:
    """Compute samples a : a + len(X) (chunk k), write them, then commit the chunk."""
    if own_process:
        single_thread_blas(keep=True)
    values = sample_block(spec, theta, X, y, curvatures, a, backend)
    group = _zarr().open_group(path, mode="r+")
    parts = _sample_parts(group, curvatures, a, a + X.shape[0], values)
    group["_done/samples"][k] = chunk_checksum(parts)
    return k


def _batch_parts(group, curvatures, j: int, values: dict | None = None):
    parts = []
    for c in curvatures:
        arr, zeros = group[f"{c}/batch_eigenvalues"], group[f"{c}/batch_num_zeros"]
        if values is None:
            parts += [arr[j], zeros[j:j + 1]]
            continue
        mu, nz = values[c]
        row = np.full(arr.shape[1], np.nan, dtype=arr.dtype)
        row[:mu.shape[0]] = mu
        arr[j] = row
        zeros[j] = nz
        parts += [row, np.asarray([nz], dtype=zeros.dtype)]
    return parts


def batch_task(path: str, j: int, spec: dict, theta, X, y, curvatures, backend: str,
               own_process: bool) -> int:
    """Compute mini-batch j's exact spectra, write them, then commit it."""
    if own_process:
        single_thread_blas(keep=True)
    values = batch_spectrum(spec, theta, X, y, curvatures, backend)
    group = _zarr().open_group(path, mode="r+")
    parts = _batch_parts(group, curvatures, j, values)
    group["_done/batches"][j] = chunk_checksum(parts)
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
