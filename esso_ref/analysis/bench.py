"""Measurements of ``esso-ref analyze`` (``python -m esso_ref.analysis.bench``), one run.

1. Overhead: per-sample throughput of ``analyze`` with the default (threads) scheduler against
   one stacked :func:`esso_ref.per_sample_eigenvalues` call on the same samples (one BLAS
   thread, as in the analysis tasks; best of 3, store writes included).
2. Scaling: ``scheduler="processes"`` with 2 workers against 1 worker.
3. Estimate: seconds per sample at [784, 128, 128, 10] on synthetic 784-feature data, from a
   subset, extrapolated to 60,000 samples.

Prints one JSON object; ``--quick`` uses small sizes (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .analyze import analyze
from .problem import AnalysisConfig, resolve

__all__ = ["main", "run"]


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
    seconds = min(_timed_analyze(config, root, f"overhead{k}.zarr") for k in range(repeats))
    return {"sizes": [64, 32, 10], "samples": p.num_samples, "repeats": repeats,
            "stacked_one_blas_thread_s": stacked, "analyze_threads_s": seconds,
            "ratio": seconds / stacked}


def _scaling(root: Path, limit: int, sizes: list[int]) -> dict:
    config = AnalysisConfig(dataset="digits", sizes=sizes, limit=limit, chunk_size=16)
    one = _timed_analyze(config, root, "p1.zarr", scheduler="processes", workers=1)
    two = _timed_analyze(config, root, "p2.zarr", scheduler="processes", workers=2)
    return {"sizes": sizes, "samples": limit, "one_worker_s": one, "two_workers_s": two,
            "speed_up": one / two}


def _synthetic(n: int, seed: int = 0):
    from ..data import Dataset

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 784))
    y = rng.integers(0, 10, n)
    return Dataset("synthetic784", X, y, X[:1], y[:1], "cross_entropy", 10)


def _estimate(root: Path, n: int) -> dict:
    config = AnalysisConfig(sizes=[784, 128, 128, 10])
    seconds = _timed_analyze(config, root, "synthetic.zarr", data=_synthetic(n))
    store = sum(f.stat().st_size for f in (root / "synthetic.zarr").rglob("*") if f.is_file())
    return {"sizes": [784, 128, 128, 10], "samples": n, "seconds": seconds,
            "per_sample_s": seconds / n, "estimate_60000_s": 60000 * seconds / n,
            "store_bytes": store, "estimate_60000_store_bytes": 60000 * store / n}


def run(quick: bool = False) -> dict:
    """All measurements in one process; returns a JSON-ready dict."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
        out["overhead"] = _overhead(root, 256 if quick else None)
        out["scaling"] = _scaling(root, 32 if quick else 320,
                                  [64, 32, 10] if quick else [64, 128, 128, 10])
        out["estimate"] = _estimate(root, 16 if quick else 64)
        out["load_average_after"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m esso_ref.analysis.bench [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m esso_ref.analysis.bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
