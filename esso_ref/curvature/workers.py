"""Stacked per-sample calls spread over worker threads, one contiguous chunk of samples each.

The samples of a stacked call are independent systems (docs/math.md eq. (36)), so a chunk of
them is computed exactly as the whole batch would compute its rows. NumPy and LAPACK release
the GIL, so threads that each run one BLAS thread keep every core busy on its own samples
(`esso_ref.threads.sample_workers` decides how many).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..threads import worker_context
from .state import State, subset_state

__all__ = ["PIECE_WORK", "chunks", "map_chunks", "pieces"]


def chunks(batch: int, workers: int) -> list[slice]:
    """``workers`` contiguous slices of ``range(batch)`` whose lengths differ by at most one."""
    if not 1 <= workers <= batch:
        raise ValueError(f"expected 1 <= workers <= batch = {batch}, got {workers}")
    bounds = [k * batch // workers for k in range(workers + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(workers)]


PIECE_WORK = 5e8
"""Multiply-adds of one chunk of samples at most (about a quarter of a second of LAPACK work
here), so that Ctrl-C leaves little running: `pieces`."""


def pieces(batch: int, work: float, workers: int, cap: float = PIECE_WORK) -> int:
    """How many chunks ``workers`` threads share for ``batch`` samples of ``work`` each.

    ``workers`` when that keeps every chunk below ``cap`` multiply-adds, else a multiple of it
    (at most ``batch``): on Ctrl-C the chunks not started are dropped and the running ones are
    short.
    """
    rounds = max(1, math.ceil(batch * float(work) / (workers * cap)))
    return min(batch, workers * rounds)


def map_chunks(state: State, fn: Callable, workers: int, count: int | None = None) -> list:
    """[fn(state of chunk k, slice k)] for ``count`` chunks (`chunks`; default ``workers``).

    One worker calls ``fn(state, slice(0, B))`` directly. With more, the chunks run in
    ``workers`` threads, each chunk in a copy of the caller's context
    (`esso_ref.threads.worker_context`), on a view of the batch's rows. The first chunk's
    exception (in order) is raised once all chunks have finished. On a KeyboardInterrupt the
    chunks not started are dropped and the running ones (short: `pieces`) finish before it is
    raised, still under the caller's BLAS limit, so that no thread outlives the call.
    """
    if workers == 1:
        return [fn(state, slice(0, state.B))]
    parts = chunks(state.B, count or workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esso_ref")
    interrupted = False
    try:
        futures = [pool.submit(worker_context().run, fn, subset_state(state, part), part)
                   for part in parts]
        return [future.result() for future in futures]  # the pool is joined in any case
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=interrupted)
