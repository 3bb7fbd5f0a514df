"""Run the missing chunks of an analysis on Dask: in this process, local processes or a cluster.

- ``scheduler="threads"`` (default) or ``"sync"``: Dask's in-process schedulers, no set-up;
- ``scheduler="processes"``: Dask's local process pool (``workers`` processes);
- ``address="tcp://HOST:PORT"``: a dask.distributed scheduler started by the user
  (``dask scheduler`` and ``dask worker ...``), reached within ``timeout`` seconds.

BLAS runs with one thread per task (threadpoolctl): in this process for the in-process
schedulers, and in each worker process otherwise.
"""

from __future__ import annotations

import contextlib
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


def _local(tasks: list, scheduler: str, workers: int | None, bar) -> list:
    """Run delayed-style (func, args) tasks with a Dask local scheduler, updating ``bar``."""
    dask = _dask()
    from dask.callbacks import Callback

    from .compute import single_thread_blas

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            bar.update(1)

    delayed = [dask.delayed(f, pure=False)(*args, own_process=scheduler == "processes")
               for f, args in tasks]
    limits = single_thread_blas(keep=False) if scheduler != "processes" else None
    with limits or contextlib.nullcontext(), _Progress():
        return list(dask.compute(*delayed, scheduler=scheduler, num_workers=workers))


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
