"""``analyze``: exact per-sample (and mini-batch) spectra of a data set into a Zarr store.

Resumable: the store's completed chunks are checked (checksums) and only missing or corrupt
chunks are computed; a store of another run is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._checks import check_positive
from .._files import probe_folder
from .chunks import batch_task, sample_task, scan
from .commit import Target
from .execute import SCHEDULERS, connect, run_tasks
from .problem import AnalysisConfig, resolve
from .store import create, open_existing

__all__ = ["analyze", "check_output"]


def check_output(path, flag: str = "the output") -> Path:
    """Check that ``path`` can hold a store (before any work).

    Raises:
        PermissionError: the path or its parent folder is not writable.
        FileNotFoundError: the parent folder does not exist.
        ValueError: the folder takes no file (a probe file cannot be created).
    """
    path = Path(path)
    target = path if path.exists() else path.parent.resolve()
    if not target.exists():
        raise FileNotFoundError(f"expected an existing folder for the store {path}, got "
                                f"none at {target}; create it first")
    if target.is_dir():
        probe_folder(target, flag, path)  # os.access says yes to root everywhere
    elif not os.access(target, os.W_OK):
        raise PermissionError(f"expected a writable output path, got {path} "
                              f"({target} is not writable)")
    return path


def _check_run(scheduler: str, workers, address, timeout) -> None:
    check_positive("timeout", timeout)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"expected scheduler in {SCHEDULERS}, got {scheduler!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"expected workers to be a positive integer, got {workers!r}")


def _tasks(path: str, problem, meta: dict, todo: dict, backend: str) -> list:
    spec, theta, X, y = problem.net_spec(), problem.theta, problem.X, problem.y
    target = Target(path, meta["created"])
    curvatures, C, B = list(meta["rank"]), meta["chunk_size"], meta["batch_size"]
    tasks = [(sample_task, (target, k, k * C, spec, theta, X[k * C:(k + 1) * C],
                            y[k * C:(k + 1) * C], curvatures, backend)) for k in todo["samples"]]
    tasks += [(batch_task, (target, j, spec, theta, X[j * B:(j + 1) * B], y[j * B:(j + 1) * B],
                            curvatures, backend)) for j in todo["batches"]]
    return tasks


def analyze(config: AnalysisConfig, out, scheduler: str = "threads", workers: int | None = None,
            address: str | None = None, timeout: float = 10.0, overwrite: bool = False,
            progress: bool = True, data=None) -> dict:
    """Compute the exact spectra of ``config`` into the Zarr store ``out`` (resumable).

    Args:
        config: the network, theta and data set (see :class:`AnalysisConfig`).
        out: path of the Zarr store (created, or completed if it holds this analysis).
        scheduler: ``"threads"`` (default), ``"sync"`` or ``"processes"``.
        workers: number of threads / processes of the local schedulers (None: Dask's).
        address: ``tcp://HOST:PORT`` of a dask.distributed scheduler (overrides scheduler).
        timeout: seconds to wait for that scheduler.
        overwrite: replace a store of another run instead of refusing it.
        progress: show a progress bar (stderr).
        data: a :class:`esso_ref.data.Dataset` of the user's own to analyse instead of
            ``config.dataset`` (its name and content hash go into the store).

    Returns:
        dict: ``store``, ``computed_chunks`` and ``computed_batches`` (ids computed by this
        call), ``skipped_chunks`` / ``skipped_batches`` (already complete), ``corrupt``
        (chunks found corrupt and recomputed) and ``seconds``.

    Raises:
        ValueError, FileNotFoundError, PermissionError: bad input, checked before any work;
        StoreMismatch: a store of another run or format; ConnectionError: no scheduler.
    """
    path = check_output(out)
    _check_run(scheduler, workers, address, timeout)
    client = connect(address, timeout) if address else None
    try:
        problem = resolve(config, data)
        group = open_existing(path, problem.identity, config.chunk_size, overwrite)
        if group is None:
            group = create(path, problem.identity, config.chunk_size, problem.y)
        meta = group.attrs["esso_ref"]
        status = scan(group, meta)
        todo = {kind: sorted(set(range(n)) - set(status[kind][0]))
                for kind, n in (("samples", meta["num_chunks"]),
                                ("batches", meta["num_batches"]))}
        tasks = _tasks(str(path), problem, meta, todo, config.backend)
        seconds = run_tasks(tasks, scheduler, workers, client, progress)
    finally:
        if client is not None:
            client.close()
    return {"store": str(path), "computed_chunks": todo["samples"],
            "computed_batches": todo["batches"],
            "skipped_chunks": len(status["samples"][0]),
            "skipped_batches": len(status["batches"][0]),
            "corrupt": {"samples": status["samples"][1], "batches": status["batches"][1]},
            "seconds": seconds}
