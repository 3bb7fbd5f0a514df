"""The Zarr (v3) store of an analysis: layout, identity checks and atomic chunks.

Layout (N samples, chunk size C, M = N // B mini-batches, r per curvature)::

    zarr.json                 attributes under "esso_ref" (format, identity, chunking)
    labels (N,) int64  or  targets (N, n_out)
    <curvature>/eigenvalues   (N, r)  the r eigenvalues of H_i that can be non-zero, ascending
    <curvature>/num_zeros, largest, smallest, trace, frobenius, negative   (N,)
    <curvature>/batch_eigenvalues (M, B r) ascending, NaN-padded; batch_num_zeros (M,)
    _done/samples (ceil(N / C),)  uint64 checksum of each sample chunk, 0 while missing
    _done/batches (M,)            uint64 checksum of each mini-batch, 0 while missing

A chunk is complete when its checksum is present and equals the checksum of the stored data:
the data are written first and the checksum last, so a torn write (kill -9 in between, a
truncated file) is detected and the chunk recomputed.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import shutil
from pathlib import Path

import numpy as np

from .compute import STATISTICS

__all__ = ["FORMAT_VERSION", "StoreMismatch", "chunk_checksum", "create", "open_existing"]

FORMAT_VERSION = 1
DEFAULT_CHUNK = 256
_NOT_IDENTITY = ("checkpoint",)


class StoreMismatch(ValueError):
    """The store at the output path belongs to another run, or to a newer esso_ref."""


def _zarr():
    try:
        import zarr
    except ImportError as err:
        raise ImportError("esso_ref.analysis needs zarr>=3: pip install 'esso_ref[scale]'") from err
    return zarr


def chunk_checksum(parts) -> int:
    """Non-zero 64-bit checksum (SHA-256 prefix) of the arrays ``parts``, in order."""
    h = hashlib.sha256()
    for a in parts:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)  # the C-order bytes, without copying them
    return int.from_bytes(h.digest()[:8], "little") | 1


def _rank(sizes, curvature: str) -> int:
    """r: n_L + 2 (n_1 + ... + n_{L-1}) for the Hessian, n_L for the GGN."""
    return sizes[-1] if curvature == "ggn" else sizes[-1] + 2 * sum(sizes[1:-1])


def layout(identity: dict, chunk_size: int) -> dict:
    """The store attributes that follow from a problem's identity and the chunk size."""
    import esso_ref

    N, B = identity["num_samples"], identity["batch_size"]
    return {"format_version": FORMAT_VERSION, "esso_ref_version": esso_ref.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "chunk_size": chunk_size, "num_chunks": -(-N // chunk_size),
            "num_batches": N // B if B else 0,
            "rank": {c: _rank(identity["sizes"], c) for c in identity["curvatures"]},
            **identity}


def _specs(meta: dict, dtype: str, y: np.ndarray) -> dict:
    """Every array of the store: path -> shape, chunks, dtype and fill value."""
    N, C, M = meta["num_samples"], meta["chunk_size"], meta["num_batches"]
    label = "labels" if meta["loss"] == "cross_entropy" else "targets"
    specs = {label: dict(shape=y.shape, chunks=(C, *y.shape[1:]), dtype=y.dtype, fill_value=0)}
    for c, r in meta["rank"].items():
        specs[f"{c}/eigenvalues"] = dict(shape=(N, r), chunks=(C, r), dtype=dtype, fill_value=0)
        for name in STATISTICS:
            kind = "int64" if name in ("num_zeros", "negative") else dtype
            specs[f"{c}/{name}"] = dict(shape=(N,), chunks=(C,), dtype=kind, fill_value=0)
        if M:
            width = meta["batch_size"] * r
            specs[f"{c}/batch_eigenvalues"] = dict(shape=(M, width), chunks=(1, width),
                                                   dtype=dtype, fill_value=float("nan"))
            specs[f"{c}/batch_num_zeros"] = dict(shape=(M,), chunks=(1,), dtype="int64",
                                                 fill_value=0)
    specs["_done/samples"] = dict(shape=(meta["num_chunks"],), chunks=(1,), dtype="uint64",
                                  fill_value=0)
    specs["_done/batches"] = dict(shape=(max(M, 1),), chunks=(1,), dtype="uint64",
                                  fill_value=0)
    return specs


async def _create(path: str, meta: dict, specs: dict, y: np.ndarray) -> None:
    """Write the group, its sub-groups and arrays concurrently, then the labels / targets."""
    from zarr.api.asynchronous import open_group

    group = await open_group(store=path, mode="w", zarr_format=3, attributes={"esso_ref": meta})
    folders = dict.fromkeys(name.split("/")[0] for name in specs if "/" in name)
    await asyncio.gather(*(group.create_group(folder) for folder in folders))
    arrays = await asyncio.gather(*(group.create_array(name, **spec)
                                    for name, spec in specs.items()))
    await arrays[0].setitem(slice(None), y)


def create(path, identity: dict, chunk_size: int | None, y: np.ndarray):
    """A new store at ``path`` with its attributes, labels / targets and empty arrays."""
    zarr = _zarr()
    from zarr.core.sync import sync

    meta = layout(identity, chunk_size or DEFAULT_CHUNK)
    sync(_create(str(path), meta, _specs(meta, identity["dtype"], y), y))
    return zarr.open_group(str(path), mode="r+")


def read_meta(path) -> dict:
    """The ``esso_ref`` attributes of the store at ``path``.

    Raises:
        StoreMismatch: not an esso_ref analysis store, or one of a newer format.
    """
    zarr = _zarr()
    if not Path(path).exists():
        raise FileNotFoundError(f"expected an esso_ref analysis store at {path}, but it does "
                                "not exist (esso-ref analyze --out writes one)")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:
        raise StoreMismatch(f"expected an esso_ref analysis store (Zarr v3) at {path}, got "
                            f"something else ({type(err).__name__})") from None
    meta = group.attrs.asdict().get("esso_ref")
    if not isinstance(meta, dict) or "format_version" not in meta:
        raise StoreMismatch(f"expected an esso_ref analysis store at {path}, got a Zarr store "
                            "without esso_ref attributes")
    if int(meta["format_version"]) > FORMAT_VERSION:
        raise StoreMismatch(f"expected a store of format <= {FORMAT_VERSION}, got format "
                            f"{meta['format_version']} (written by esso_ref "
                            f"{meta.get('esso_ref_version')}) at {path}; upgrade esso_ref")
    return meta


def _differences(meta: dict, identity: dict) -> list[str]:
    return [k for k in identity if k not in _NOT_IDENTITY and meta.get(k) != identity[k]]


def open_existing(path, identity: dict, chunk_size: int | None, overwrite: bool):
    """Open the store at ``path`` for a rerun of the same analysis, or None to create one.

    Raises:
        StoreMismatch: the store belongs to another run (and ``overwrite`` is False), is of a
            newer format, or the path holds something that is not an analysis store.
    """
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if not (path / "zarr.json").is_file():
        raise StoreMismatch(f"expected an esso_ref analysis store or a new path at {path}, got "
                            "an existing file or folder that is not a Zarr store; choose "
                            "another --out")
    try:
        meta = read_meta(path)
        diff = _differences(meta, identity)
        if chunk_size and chunk_size != meta["chunk_size"]:
            diff.append("chunk_size")
        if diff:
            raise StoreMismatch(f"expected the store at {path} to hold this analysis, got one "
                                f"of another run (differs in {', '.join(diff)}); pass "
                                "--overwrite to replace it or choose another --out")
    except StoreMismatch:
        if not overwrite:
            raise
        shutil.rmtree(path)
        return None
    if overwrite:
        shutil.rmtree(path)
        return None
    return _zarr().open_group(str(path), mode="r+")
