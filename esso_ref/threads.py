"""BLAS threads for the curvature routes: one thread for small problems, the default for large.

The r x r factorisations of the exact routes are small: on a busy machine several BLAS threads
fighting over a 100 x 100 solve cost more than they gain (docs/performance.md). Like
scikit-learn, esso_ref therefore limits the BLAS thread count per call with threadpoolctl:
problems whose system size q (about B r) is below `SMALL_PROBLEM` run on one BLAS thread,
larger ones keep the process's setting. The previous setting is restored on exit. CuPy arrays are
unaffected (no host BLAS work).

A stacked per-sample call (B independent systems of a small size r) spreads its samples over
the threads BLAS would have used instead (`sample_workers`): each thread runs one BLAS thread on
its share of the samples, so the cores work on independent systems and never contend inside
one. A user's limit (``threadpool_limits(1)``, ``OPENBLAS_NUM_THREADS=1``) gives one worker.

A single-threaded call is bit-identical whatever the machine's thread count; a multi-threaded
one can differ in the last digits between thread counts (OpenBLAS splits some reductions), and a
stacked call spread over workers can differ in the last digits from the same call on one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import Context, ContextVar, copy_context

__all__ = [
    "PARALLEL_WORK",
    "SMALL_PROBLEM",
    "batch_system_size",
    "blas_threads",
    "cores",
    "current_threads",
    "limit_blas_for",
    "sample_system_size",
    "sample_workers",
    "single_blas_thread",
    "threads_for",
    "worker_context",
]

SMALL_PROBLEM = 768
"""System sizes q below this run on one BLAS thread (measured crossover, docs/performance.md)."""

PARALLEL_WORK = 1e8
"""Stacked calls whose samples need at least this many multiply-adds in all (some 10 ms of
work) spread their samples over workers (`sample_workers`); below it the threads cost more
than they save (measured, docs/performance.md)."""

_LIBS: list | None = None

_OUTER: ContextVar[int | None] = ContextVar("esso_ref_outer_blas_threads", default=None)
"""The BLAS thread count when the outermost public call (`limit_blas_for`) began."""


def _blas_libraries() -> list:
    """The threadpoolctl controllers of the loaded BLAS libraries (found once, [] without it)."""
    global _LIBS
    if _LIBS is None:
        import scipy.linalg  # noqa: F401  (SciPy's own BLAS, used by linalg.solve_shifted)

        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _LIBS = []
        else:
            _LIBS = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _LIBS


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads (None: leave the setting alone), then restore."""
    libs = _blas_libraries() if n is not None else []
    before = [lib.num_threads for lib in libs]
    if all(old == n for old in before):  # already set (a nested call): nothing to restore
        libs = before = []
    for lib in libs:
        lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, old in zip(libs, before, strict=True):
            lib.set_num_threads(old)


def current_threads() -> int:
    """The BLAS thread count now (the smallest over the loaded BLAS libraries; 1 without any)."""
    return min((lib.num_threads for lib in _blas_libraries()), default=1)


def single_blas_thread() -> bool:
    """True when every loaded BLAS runs one thread (as `blas_threads(1)` sets it)."""
    return all(lib.num_threads == 1 for lib in _blas_libraries())


def sample_workers(batch: int, size: int, work: float | None = None,
                   least: float = PARALLEL_WORK) -> int:
    """Threads for a stacked call of ``batch`` independent systems of size ``size``.

    ``work``: multiply-adds per sample (default ``size^3``, a dense factorisation of the
    system); ``least``: the total work from which threads pay. Systems that run on one BLAS
    thread (size below `SMALL_PROBLEM`) with ``batch work`` of at least ``least`` get as many
    workers as BLAS had threads when the public call began, and no more than the cores this
    process may run on
    (before `limit_blas_for` limited them; at most ``batch``); anything else gets 1 (large
    systems use BLAS's own threads). Inside a worker (`worker_context`) it gives 1.
    """
    work = float(size) ** 3 if work is None else float(work)
    if threads_for(size) != 1 or batch < 2 or batch * work < least:
        return 1
    outer = _OUTER.get()
    return max(1, min(current_threads() if outer is None else outer, cores(), batch))


def cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - systems without affinity


def worker_context() -> Context:
    """A copy of the caller's context for a worker thread, in which `sample_workers` gives 1.

    NumPy's errstate goes with it; a call made inside a worker never spreads again.
    """
    context = copy_context()
    context.run(_OUTER.set, 1)
    return context


def threads_for(size: int) -> int | None:
    """1 for systems of size below `SMALL_PROBLEM`, else None (the process default)."""
    return 1 if size < SMALL_PROBLEM else None


def batch_system_size(net, theta, X, *args, **kwargs) -> int:
    """B r for the public calls ``f(net, theta, X, y, ...)`` (r = net.rank_bound)."""
    return net.rank_bound * (X.shape[0] if len(X.shape) == 2 else 1)


def sample_system_size(net, *args, **kwargs) -> int:
    """The size r of the stacked per-sample calls (B systems of size r)."""
    return net.rank_bound


def limit_blas_for(size_of: Callable) -> Callable:
    """Decorator: run the function under ``blas_threads(threads_for(size_of(*args, **kw)))``.

    The outermost decorated call also records the BLAS thread count it found, for
    `sample_workers`.
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                size = int(size_of(*args, **kwargs))
            except Exception:  # invalid inputs: let the function raise its own clear error
                return fn(*args, **kwargs)
            token = _OUTER.set(current_threads()) if _OUTER.get() is None else None
            try:
                with blas_threads(threads_for(size)):
                    return fn(*args, **kwargs)
            finally:
                if token is not None:
                    _OUTER.reset(token)

        return inner

    return wrap
