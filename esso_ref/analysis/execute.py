"""Run the missing chunks of an analysis on Dask: in this process, local processes or a cluster.

- ``scheduler="threads"`` (default) or ``"sync"``: Dask's in-process schedulers, no set-up;
- ``scheduler="processes"``: Dask's local process pool (``workers`` processes), handed one
  task (one chunk) at a time;
- ``address="tcp://HOST:PORT"``: a dask.distributed scheduler started by the user
  (``dask scheduler`` and ``dask worker ...``), reached within ``timeout`` seconds.

BLAS runs with one thread (threadpoolctl): in this process for the in-process schedulers, in
each local worker process from its start (initializer, and the ``*_NUM_THREADS`` variables it
inherits), and at the start of every task on a dask.distributed worker.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["SCHEDULERS", "connect", "run_tasks"]

SCHEDULERS = ("threads", "sync", "processes")


def _dask():
    try:
        import dask
    except ImportError as err:
        raise ImportError("esso_ref.analysis needs dask: pip install 'esso_ref[scale]'") from err
    return dask


def connect(address: str, timeout: float):
    """A dask.distributed Client of the scheduler at ``address``.

    Raises:
        ValueError: a malformed address.
        ConnectionError: no scheduler answered within ``timeout`` seconds.
    """
    if "://" not in address or not address.split("://", 1)[1]:
        raise ValueError(f"expected a scheduler address such as tcp://HOST:PORT, got "
                         f"{address!r}")
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError("--address needs dask.distributed: pip install 'esso_ref[scale]'"
                          ) from err
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"expected a dask scheduler at {address}, none answered within "
                              f"{timeout:g} s ({type(err).__name__}); start one with "
                              "'dask scheduler' and 'dask worker ADDRESS'") from None


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc="esso-ref analyze", unit="chunk")


_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_start() -> None:
    """Initializer of each local worker process: one BLAS thread from its first task on."""
    from .compute import single_thread_blas

    single_thread_blas(keep=True)


# Local process pool: each task is one whole chunk (coarse), so hand them out one at a time
# (Dask's default batches 6 per submission, which leaves one worker idle at the end).
_POOL = {"chunksize": 1, "initializer": _worker_start}


@contextlib.contextmanager
def _one_blas_thread_children():
    """Worker processes started in this block inherit one BLAS thread from the environment.

    (They also call :func:`_worker_start`; the environment keeps OpenBLAS from starting a
    thread per core at import, before that call.)
    """
    saved = {name: os.environ.get(name) for name in _BLAS_VARIABLES}
    os.environ.update(dict.fromkeys(_BLAS_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _local(tasks: list, scheduler: str, workers: int | None, bar) -> list:
    """Run delayed-style (func, args) tasks with a Dask local scheduler, updating ``bar``."""
    dask = _dask()
    from dask.callbacks import Callback

    from .compute import single_thread_blas

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            bar.update(1)

    delayed = [dask.delayed(f, pure=False)(*args, own_process=False) for f, args in tasks]
    if scheduler == "processes":
        limits, options = _one_blas_thread_children(), _POOL
    else:
        limits, options = single_thread_blas(keep=False), {}
    with limits, _Progress():
        return list(dask.compute(*delayed, scheduler=scheduler, num_workers=workers,
                                 **options))


def _distributed(tasks: list, client, bar) -> list:
    from distributed import as_completed

    futures = [client.submit(f, *args, own_process=True, pure=False) for f, args in tasks]
    done = []
    for future in as_completed(futures):
        done.append(future.result())
        bar.update(1)
    return done


def run_tasks(tasks: list, scheduler: str = "threads", workers: int | None = None,
              client=None, progress: bool = True) -> float:
    """Run ``tasks`` (a list of (function, args)); returns the wall time in seconds."""
    start = time.perf_counter()
    if not tasks:
        return 0.0
    with _bar(len(tasks), progress) as bar:
        if client is not None:
            _distributed(tasks, client, bar)
        else:
            _local(tasks, scheduler, workers, bar)
    return time.perf_counter() - start
