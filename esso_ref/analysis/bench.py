"""Measurements of ``esso-ref analyze`` (``python -m esso_ref.analysis.bench``), one run.

1. ``overhead``: per-sample throughput of ``analyze`` with the default scheduler (threads) and
   with ``sync`` against one stacked :func:`esso_ref.per_sample_eigenvalues` call on the same
   samples (one BLAS thread, as in the analysis tasks; best of 3, store creation and writes
   included): digits (1438 samples) at [64, 32, 10].
2. ``scaling``: ``scheduler="processes"`` with 2 workers against 1 worker, worker start-up
   included: the whole digits training set at [64, 128, 128, 10] (P = 26,122, r = 522), in
   chunks of 64 (23 tasks, so that two workers get equal shares).
3. ``estimate``: a slice of ``--slice`` synthetic 784-feature samples at [784, 128, 128, 10]
   (P = 118,282, r = 522), ``processes`` with 2 workers, in chunks of 64 (both workers busy to
   the end of the slice; the per-sample cost does not depend on the chunk size), run in a
   fresh process so that the peak resident memory of the driver and of the largest worker can
   be read; time and store size extrapolated linearly to 60,000 samples.

Prints one JSON object; ``--quick`` uses small sizes (a smoke test), ``--parts`` a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .analyze import analyze
from .problem import AnalysisConfig, resolve

__all__ = ["main", "run"]

PARTS = ("overhead", "scaling", "estimate")
WIDE = [784, 128, 128, 10]


def _timed_analyze(config: AnalysisConfig, root: Path, name: str, **kw) -> float:
    start = time.perf_counter()
    analyze(config, root / name, progress=False, **kw)
    return time.perf_counter() - start


def _stacked(p) -> float:
    from .. import per_sample_eigenvalues
    from .compute import single_thread_blas

    with single_thread_blas(keep=False):
        start = time.perf_counter()
        per_sample_eigenvalues(p.net, p.theta, p.X, p.y)
        return time.perf_counter() - start


def _overhead(root: Path, limit: int | None, repeats: int = 3) -> dict:
    config = AnalysisConfig(dataset="digits", sizes=[64, 32, 10], limit=limit)
    p = resolve(config)
    stacked = min(_stacked(p) for _ in range(repeats))
    best = {s: min(_timed_analyze(config, root, f"overhead_{s}{k}.zarr", scheduler=s)
                   for k in range(repeats)) for s in ("threads", "sync")}
    return {"sizes": [64, 32, 10], "samples": p.num_samples, "repeats": repeats,
            "stacked_one_blas_thread_s": stacked, "analyze_threads_s": best["threads"],
            "analyze_sync_s": best["sync"], "ratio": best["threads"] / stacked,
            "ratio_sync": best["sync"] / stacked}


def _scaling(root: Path, limit: int | None, sizes: list[int], chunk: int) -> dict:
    config = AnalysisConfig(dataset="digits", sizes=sizes, limit=limit, chunk_size=chunk)
    n = resolve(config).num_samples
    one = _timed_analyze(config, root, "p1.zarr", scheduler="processes", workers=1)
    two = _timed_analyze(config, root, "p2.zarr", scheduler="processes", workers=2)
    return {"sizes": sizes, "samples": n, "chunk_size": chunk, "tasks": -(-n // chunk),
            "one_worker_s": one, "two_workers_s": two, "speed_up": one / two}


def _synthetic(n: int, seed: int = 0):
    from ..data import Dataset

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, WIDE[0]))
    y = rng.integers(0, WIDE[-1], n)
    return Dataset("synthetic784", X, y, X[:1], y[:1], "cross_entropy", WIDE[-1])


def _own_peak_mib() -> float:
    """This process's peak RSS: VmHWM (Linux), which unlike ``ru_maxrss`` is not inherited."""
    import resource

    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    kib = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
    return (kib or [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss])[0] / 1024


def slice_run(n: int, out: str, workers: int) -> None:
    """Analyse ``n`` synthetic samples at :data:`WIDE` into ``out``; print time and peak RSS.

    Run in a fresh process (see :func:`_estimate`): once the worker pool is shut down its
    processes have been waited for, so ``RUSAGE_CHILDREN`` holds the largest worker's peak
    (an upper bound: a spawned process also inherits the driver's peak at its start).
    """
    import resource

    config = AnalysisConfig(sizes=WIDE, chunk_size=64)
    seconds = _timed_analyze(config, Path(out).parent, Path(out).name, data=_synthetic(n),
                             scheduler="processes", workers=workers)
    workers_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "driver_peak_rss_mib": _own_peak_mib(),
                      "worker_peak_rss_mib": workers_kib / 1024}))


def _estimate(root: Path, n: int, workers: int = 2) -> dict:
    out = root / "synthetic.zarr"
    code = ("from esso_ref.analysis.bench import slice_run; "
            f"slice_run({n}, {str(out)!r}, {workers})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"expected the slice run to succeed, got exit status "
                           f"{proc.returncode}: {proc.stderr.strip()[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    store = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"sizes": WIDE, "samples": n, "scheduler": "processes", "workers": workers, **res,
            "per_sample_s": res["seconds"] / n, "estimate_60000_s": 60000 * res["seconds"] / n,
            "store_bytes": store, "store_bytes_per_sample": store / n,
            "estimate_60000_store_bytes": 60000 * store / n}


def run(quick: bool = False, parts=PARTS, slice_samples: int | None = None) -> dict:
    """The measurements ``parts`` in one process; returns a JSON-ready dict."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
        if "overhead" in parts:
            out["overhead"] = _overhead(root, 256 if quick else None, 1 if quick else 3)
        if "scaling" in parts:
            out["scaling"] = (_scaling(root, 32, [64, 32, 10], 16) if quick else
                              _scaling(root, None, [64, 128, 128, 10], 64))
        if "estimate" in parts:
            out["estimate"] = _estimate(root, slice_samples or (16 if quick else 256))
        out["load_average_after"] = os.getloadavg()
    return out


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p for p in text.split(",") if p)
    if not parts or set(parts) - set(PARTS):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {PARTS}, got "
                                         f"{text!r}")
    return parts


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m esso_ref.analysis.bench [--quick] [--parts] [--slice N]``."""
    parser = argparse.ArgumentParser(prog="python -m esso_ref.analysis.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--parts", type=_parts, default=PARTS,
                        help="comma-separated subset of overhead,scaling,estimate (all)")
    parser.add_argument("--slice", type=int, default=None,
                        help="synthetic samples of the estimate (256; --quick: 16)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.parts, args.slice)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
