"""Memory estimates before large allocations.

Refuse early with a clear error instead of an out-of-memory kill after minutes of work.

``ESSO_REF_MAX_MEMORY`` (bytes, e.g. ``8e9``) caps the memory this package assumes it may use;
without it the host's available memory (``MemAvailable`` of /proc/meminfo) is the limit.
"""

from __future__ import annotations

import math
import os

__all__ = ["InsufficientMemoryError", "available_memory", "check_allocation", "check_entries",
           "format_bytes"]

ENV = "ESSO_REF_MAX_MEMORY"
# refuse an allocation above this fraction of the available memory (copies and workspace)
FRACTION = 0.8
# without a cap, requests below this are not checked (no /proc read on every small call)
UNCHECKED = 64 * 2**20


class InsufficientMemoryError(MemoryError, ValueError):
    """An allocation that would not fit in the available memory (refused before it is tried)."""


def format_bytes(nbytes: float) -> str:
    """Human-readable size: ``15.4 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(nbytes) < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def _meminfo() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def available_memory(xp=None) -> float | None:
    """Bytes this process may allocate (None when unknown).

    The ``ESSO_REF_MAX_MEMORY`` cap, the free device memory of a CuPy namespace, or the host's
    available memory.
    """
    limit = os.environ.get(ENV)
    if limit:
        try:
            value = float(limit)
        except ValueError:
            value = math.nan
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"expected {ENV} to be a positive number of bytes, got {limit!r}")
        return value
    if xp is not None and "cupy" in getattr(xp, "__name__", ""):
        import cupy

        return float(cupy.cuda.runtime.memGetInfo()[0])
    found = _meminfo()
    if found is not None:
        return found
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(nbytes: float, what: str, hint: str, xp=None) -> None:
    """Raise InsufficientMemoryError when ``nbytes`` would not fit in the available memory.

    Args:
        nbytes: estimated peak bytes of the step.
        what: what would be allocated, e.g. ``"the dense Hessian (P x P, P = 31000)"``.
        hint: the route or option that avoids the allocation.
        xp: the array namespace (device memory for CuPy).

    Without ``ESSO_REF_MAX_MEMORY``, requests below 64 MiB are accepted without a look.
    """
    if nbytes < UNCHECKED and not os.environ.get(ENV):
        return
    available = available_memory(xp)
    if available is None or nbytes <= FRACTION * available:
        return
    raise InsufficientMemoryError(
        f"{what} needs about {format_bytes(nbytes)}, but only {format_bytes(available)} "
        f"of memory is available; {hint}")


def check_entries(count: float, dtype, what: str, hint: str, xp) -> None:
    """`check_allocation` for ``count`` array entries of ``dtype`` in the namespace ``xp``."""
    check_allocation(count * (xp.finfo(dtype).bits // 8), what, hint, xp)
