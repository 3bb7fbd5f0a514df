"""Stacked per-sample calls spread over worker threads, one contiguous chunk of samples each.

The samples of a stacked call are independent systems (docs/math.md eq. (36)), so a chunk of
them is computed exactly as the whole batch would compute its rows. NumPy and LAPACK release
the GIL, so threads that each run one BLAS thread keep every core busy on its own samples
(`esso_ref.threads.sample_workers` decides how many).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from ..threads import worker_context
from .state import State, subset_state

__all__ = ["chunks", "map_chunks"]


def chunks(batch: int, workers: int) -> list[slice]:
    """``workers`` contiguous slices of ``range(batch)`` whose lengths differ by at most one."""
    if not 1 <= workers <= batch:
        raise ValueError(f"expected 1 <= workers <= batch = {batch}, got {workers}")
    bounds = [k * batch // workers for k in range(workers + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(workers)]


def map_chunks(state: State, fn: Callable, workers: int) -> list:
    """[fn(state of chunk k, slice k)] for the chunks of `chunks`, in order.

    One worker calls ``fn(state, slice(0, B))`` directly. With more, every chunk runs in its
    own thread, in a copy of the caller's context (`esso_ref.threads.worker_context`), on a
    view of the batch's rows. The first chunk's exception (in order) is raised once all chunks
    have finished; a KeyboardInterrupt is raised at once (the running chunks finish in the
    background, their results dropped).
    """
    parts = chunks(state.B, workers)
    if workers == 1:
        return [fn(state, parts[0])]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esso_ref")
    interrupted = False
    try:
        futures = [pool.submit(worker_context().run, fn, subset_state(state, part), part)
                   for part in parts]
        wait(futures)
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
