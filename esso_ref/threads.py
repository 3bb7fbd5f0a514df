"""BLAS threads for the curvature routes: one thread for small problems, the default for large.

The r x r factorisations of the exact routes are small: on a busy machine several BLAS threads
fighting over a 100 x 100 solve cost more than they gain (docs/performance.md). Like
scikit-learn, esso_ref therefore limits the BLAS thread count per call with threadpoolctl:
problems whose system size q (about B r) is below `SMALL_PROBLEM` run on one BLAS thread,
larger ones keep the process's setting. The previous setting is restored on exit. CuPy arrays are
unaffected (no host BLAS work).

A single-threaded call is bit-identical whatever the machine's thread count; a multi-threaded
one can differ in the last digits between thread counts (OpenBLAS splits some reductions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "SMALL_PROBLEM",
    "batch_system_size",
    "blas_threads",
    "limit_blas_for",
    "sample_system_size",
    "single_blas_thread",
    "threads_for",
]

SMALL_PROBLEM = 768
"""System sizes q below this run on one BLAS thread (measured crossover, docs/performance.md)."""

_LIBS: list | None = None


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


def single_blas_thread() -> bool:
    """True when every loaded BLAS runs one thread (as `blas_threads(1)` sets it)."""
    return all(lib.num_threads == 1 for lib in _blas_libraries())


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
    """Decorator: run the function under ``blas_threads(threads_for(size_of(*args, **kw)))``."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                size = int(size_of(*args, **kwargs))
            except Exception:  # invalid inputs: let the function raise its own clear error
                return fn(*args, **kwargs)
            with blas_threads(threads_for(size)):
                return fn(*args, **kwargs)

        return inner

    return wrap
