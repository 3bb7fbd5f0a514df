r"""Summaries of an analysis store: tables, spectral density, outliers of mini-batch spectra.

- Per class and overall: mean and quantiles (5, 25, 50, 75, 95 %) of the largest eigenvalue
  of H_i, the fraction of negative eigenvalues (#{mu < 0} / P, averaged over samples) and the
  mean trace.
- Empirical spectral density: a histogram of all per-sample eigenvalues that can be non-zero,
  on a symmetric log scale (log-spaced bins on each side of a linear band |mu| <= t, with
  t = 1e-6 max |mu|); exact zeros are counted, not binned.
- Outliers of a mini-batch spectrum: among its positive eigenvalues above 1e-3 lambda_1 (at most
  the 64 largest, then the next one, or 1e-3 lambda_1, as the floor) the largest ratio
  lambda_k / lambda_{k+1} splits outliers (k of them) from the bulk; lambda_{k+1} is the bulk
  edge.
"""

from __future__ import annotations

import numpy as np

from .read import load

__all__ = ["density", "outliers", "summarize"]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _row(stats: dict, idx, P: int) -> dict:
    largest = stats["largest"][idx]
    q = np.quantile(largest, QUANTILES) if largest.size else [float("nan")] * len(QUANTILES)
    return {"n": int(largest.size), "largest_mean": float(np.mean(largest)),
            **{f"largest_q{round(100 * p):02d}": float(v)
               for p, v in zip(QUANTILES, q, strict=True)},
            "negative_fraction": float(np.mean(stats["negative"][idx] / P)),
            "negative_mean": float(np.mean(stats["negative"][idx])),
            "trace_mean": float(np.mean(stats["trace"][idx]))}


def _top(*arrays) -> float:
    """Max |value| over the finite entries of ``arrays`` (1 when there are none)."""
    tops = [float(np.max(np.abs(a[np.isfinite(a)])))
            for a in arrays if np.isfinite(a).any()]
    return max([t for t in tops if t > 0], default=1.0)


def density(values: np.ndarray, bins: int = 40, top: float | None = None) -> dict:
    """Histogram of ``values`` (exact zeros removed) on a symmetric log scale up to ``top``."""
    v = values[np.isfinite(values) & (values != 0)]
    top = top or _top(v)
    t = 1e-6 * top
    side = np.geomspace(t, top * (1 + 1e-12), bins + 1)
    edges = np.concatenate([-side[::-1], side])
    counts, _ = np.histogram(np.clip(v, -top, top), edges)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "linthresh": t,
            "num_values": int(v.size)}


def outliers(mu: np.ndarray, window: int = 64, floor: float = 1e-3) -> tuple[int, float, float]:
    """(k outliers, bulk edge, gap ratio) of one spectrum ``mu`` (NaN entries ignored)."""
    pos = np.sort(mu[np.isfinite(mu) & (mu > 0)])[::-1]
    if pos.size == 0:
        return 0, 0.0, 1.0
    low = floor * pos[0]
    top = pos[pos >= low][:window]
    nxt = pos[top.size] if pos.size > top.size else low
    lam = np.append(top, max(nxt, low))
    ratio = lam[:-1] / lam[1:]
    k = int(np.argmax(ratio))
    return k + 1, float(lam[k + 1]), float(ratio[k])


def _batches(g: dict, num_classes, top: float) -> dict:
    counts = [outliers(row) for row in g["batch_eigenvalues"]]
    k = np.array([c[0] for c in counts])
    return {"num_batches": len(counts), "outliers": k.tolist(),
            "outliers_median": float(np.median(k)) if k.size else None,
            "bulk_edge_median": float(np.median([c[1] for c in counts])) if counts else None,
            "gap_ratio_median": float(np.median([c[2] for c in counts])) if counts else None,
            "num_classes": num_classes, "density": density(g["batch_eigenvalues"].ravel(), top=top)}


def summarize(path) -> dict:
    """Tables, density and mini-batch outliers of a complete store (see the module doc)."""
    data = load(path)
    meta = data["meta"]
    P, labels = meta["num_params"], data.get("labels")
    out = {"meta": {k: meta[k] for k in ("dataset", "split", "num_samples", "sizes",
                                         "activation", "loss", "bias", "dtype", "num_params",
                                         "rank", "batch_size", "num_classes", "theta_sha256",
                                         "checkpoint")}}
    top = _top(*[data[c]["eigenvalues"] for c in meta["rank"]])
    batch_top = _top(*[data[c].get("batch_eigenvalues", np.zeros(0)) for c in meta["rank"]])
    for curvature in meta["rank"]:
        g = data[curvature]
        every = np.arange(meta["num_samples"])
        res = {"overall": _row(g, every, P), "per_class": {},
               "density": density(g["eigenvalues"].ravel(), top=top),
               "exact_zeros_total": int(np.sum(g["num_zeros"]))}
        if labels is not None:
            res["per_class"] = {str(c): _row(g, np.flatnonzero(labels == c), P)
                                for c in np.unique(labels).tolist()}
        if "batch_eigenvalues" in g:
            res["batches"] = _batches(g, meta["num_classes"], batch_top)
        out[curvature] = res
    return out
