"""Data-set-scale exact curvature: per-sample and mini-batch spectra, on Dask, in Zarr.

``analyze(config, out)`` computes, for every sample of a data set, the r eigenvalues of its
Hessian (and Gauss-Newton matrix) that can be non-zero, the count of exact zeros and derived
statistics, and optionally the exact spectra of disjoint mini-batches; ``load(store)`` reads a
store back and ``summarize(store)`` tabulates it. See docs/analysis.md.

Needs the ``scale`` extra (dask[distributed], zarr>=3); both are imported lazily.
"""

from .analyze import analyze, check_output
from .problem import AnalysisConfig, Problem, resolve
from .read import load, verify_store
from .store import FORMAT_VERSION, StoreMismatch
from .summary import summarize

__all__ = ["FORMAT_VERSION", "AnalysisConfig", "Problem", "StoreMismatch", "analyze",
           "check_output", "load", "resolve", "summarize", "verify_store"]
