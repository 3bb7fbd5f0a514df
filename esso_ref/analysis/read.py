"""Read an analysis store back: its attributes and arrays, and its completeness."""

from __future__ import annotations

from .chunks import scan
from .store import _zarr, read_meta

__all__ = ["load", "verify_store"]


def verify_store(path) -> dict:
    """Completeness of the store at ``path``.

    Returns:
        dict with, for ``samples`` and ``batches``: ``complete``, ``missing`` and ``corrupt``
        chunk ids (corrupt: a checksum present that the stored data do not match).
    """
    meta = read_meta(path)
    group = _zarr().open_group(str(path), mode="r")
    status = scan(group, meta)
    out = {}
    for kind, n in (("samples", meta["num_chunks"]), ("batches", meta["num_batches"])):
        good, bad = status[kind]
        out[kind] = {"complete": good, "corrupt": bad,
                     "missing": sorted(set(range(n)) - set(good) - set(bad))}
    return out


def load(path, require_complete: bool = True) -> dict:
    """All arrays of the store at ``path`` as NumPy arrays, with its attributes.

    Returns:
        dict with ``meta`` (the ``esso_ref`` attributes), ``labels`` or ``targets``, and per
        curvature a dict of ``eigenvalues``, the statistics and the mini-batch arrays.

    Raises:
        StoreMismatch: not an analysis store, or of a newer format.
        ValueError: ``require_complete`` and some chunks are missing or corrupt.
    """
    meta = read_meta(path)
    if require_complete:
        status = verify_store(path)
        gaps = {k: v["missing"] + v["corrupt"] for k, v in status.items()}
        if any(gaps.values()):
            raise ValueError(f"expected a complete store at {path}, got "
                             f"{len(gaps['samples'])} sample chunks and "
                             f"{len(gaps['batches'])} mini-batches missing or corrupt; rerun "
                             "esso-ref analyze with the same options to complete it")
    group = _zarr().open_group(str(path), mode="r")
    out = {"meta": meta}
    for name in ("labels", "targets"):
        if name in group:
            out[name] = group[name][...]
    for curvature in meta["rank"]:
        g = group[curvature]
        out[curvature] = {name: g[name][...] for name in g.array_keys()}
    return out
