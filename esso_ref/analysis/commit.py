"""Commit one chunk to the store: its arrays, then its checksum, in one call to Zarr.

Opening a Zarr array reads and parses its metadata, and every synchronous Zarr call is a round
trip to Zarr's event loop: per chunk that cost more than computing it. Here a chunk's arrays are
written concurrently, in one call, through array handles opened once per process and store.
Every chunk file is still written atomically by Zarr (temporary file, then rename), and the
checksum, the commit point, only once every data write has finished.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from .store import _zarr, chunk_checksum

__all__ = ["Target", "commit"]


@dataclass(frozen=True)
class Target:
    """The store a task writes to.

    Attributes:
        path: the store's path (reachable from every worker).
        created: the store's creation time: a store replaced at the same path (``overwrite``)
            is another target, so array handles opened for the old one are never reused.
    """

    path: str
    created: str


_HANDLES: dict = {}  # {Target: {array name: AsyncArray}}: this process's open store


async def _handles(target: Target, names: list[str]) -> list:
    """Async handles of the arrays ``names`` of ``target``, opened once per process."""
    from zarr.api.asynchronous import open_group

    if target not in _HANDLES:
        group = await open_group(store=target.path, mode="r+")
        _HANDLES.clear()
        _HANDLES[target] = {"": group}
    cache = _HANDLES[target]
    missing = [name for name in dict.fromkeys(names) if name not in cache]
    opened = await asyncio.gather(*(cache[""].getitem(name) for name in missing))
    cache.update(zip(missing, opened, strict=True))
    return [cache[name] for name in names]


async def _commit(target: Target, writes: list, mark: tuple[str, int]) -> None:
    names = [name for name, _, _ in writes]
    *arrays, done = await _handles(target, [*names, f"_done/{mark[0]}"])
    values = [np.asarray(v, dtype=arr.dtype)
              for arr, (_, _, v) in zip(arrays, writes, strict=True)]
    await asyncio.gather(*(arr.setitem(sel, v) for arr, (_, sel, _), v
                           in zip(arrays, writes, values, strict=True)))
    await done.setitem(mark[1], chunk_checksum(values))


def commit(target: Target, writes: list, mark: tuple[str, int]) -> None:
    """Write one chunk's arrays, then its checksum into ``_done``: the commit point.

    Args:
        target: the store.
        writes: (array name, selection, values) in checksum order; the values are cast to
            the arrays' dtypes, and the checksum is that of the cast values.
        mark: (``"samples"`` or ``"batches"``, chunk id) of the checksum in ``_done``.
    """
    _zarr()
    from zarr.core.sync import sync

    sync(_commit(target, writes, mark))
