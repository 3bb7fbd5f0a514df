"""The figure of ``esso-ref summary --plot``: densities, largest eigenvalues, mini-batch bulk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_summary"]


def _unit(loss: str) -> str:
    return "nats / param²" if loss == "cross_entropy" else "loss units / param²"


def _hist(ax, dens: dict, label: str, color: str) -> None:
    edges, counts = np.asarray(dens["edges"]), np.asarray(dens["counts"], dtype=float)
    ax.stairs(counts / max(counts.sum(), 1.0), edges, label=label, color=color, linewidth=1.4)
    from matplotlib.ticker import NullLocator, SymmetricalLogLocator

    ax.set_xscale("symlog", linthresh=dens["linthresh"], linscale=1.0)
    ax.xaxis.set_major_locator(SymmetricalLogLocator(linthresh=dens["linthresh"], base=100))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")


def _density_panel(ax, summary: dict, unit: str) -> None:
    for k, curvature in enumerate(c for c in ("hessian", "ggn") if c in summary):
        _hist(ax, summary[curvature]["density"], curvature, f"C{k}")
    ax.set_title("per-sample spectra: empirical density")
    ax.set_xlabel(f"eigenvalue μ of H_i ({unit}); symlog, middle bin |μ| < "
                  f"{summary['hessian']['density']['linthresh']:.0e}")
    ax.set_ylabel("fraction of the non-zero eigenvalues")
    ax.legend()


def _largest_panel(ax, summary: dict, unit: str) -> None:
    res = summary["hessian"]
    rows = res["per_class"] or {"all": res["overall"]}
    names = list(rows)
    stats = [{"med": r["largest_q50"], "q1": r["largest_q25"], "q3": r["largest_q75"],
              "whislo": r["largest_q05"], "whishi": r["largest_q95"], "label": name}
             for name, r in rows.items()]
    ax.bxp(stats, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_title("largest eigenvalue of H_i" + (" per class" if res["per_class"] else "")
                 + " (5-25-50-75-95 %)")
    ax.set_xlabel("class" if res["per_class"] else "all samples (regression)")
    ax.set_ylabel(f"λ_max(H_i) ({unit})")


def _batch_panel(ax, summary: dict, unit: str) -> None:
    for k, curvature in enumerate(c for c in ("hessian", "ggn") if c in summary):
        b = summary[curvature].get("batches")
        if not b:
            continue
        _hist(ax, b["density"], f"{curvature}: median {b['outliers_median']:g} outliers "
              f"({b['num_classes'] or 'no'} classes)", f"C{k}")
        ax.axvline(b["bulk_edge_median"], color=f"C{k}", linestyle="--", linewidth=1)
    ax.set_title(f"exact spectra of mini-batches (B = {summary['meta']['batch_size']})")
    ax.set_xlabel(f"eigenvalue of the mini-batch H ({unit}); dashed: bulk edge")
    ax.set_ylabel("fraction of the listed eigenvalues")
    ax.legend()


def plot_summary(summary: dict, path) -> None:
    """Write the summary figure (PNG) of :func:`esso_ref.analysis.summarize`'s result."""
    from ..plots import _pyplot

    plt = _pyplot()
    meta = summary["meta"]
    unit = _unit(meta["loss"])
    has_batches = any("batches" in summary[c] for c in ("hessian", "ggn") if c in summary)
    fig, axes = plt.subplots(1, 3 if has_batches else 2, figsize=(17 if has_batches else 12, 5))
    _density_panel(axes[0], summary, unit)
    _largest_panel(axes[1], summary, unit)
    if has_batches:
        _batch_panel(axes[2], summary, unit)
    where = (f"checkpoint {Path(meta['checkpoint']).name}" if meta["checkpoint"]
             else "initialisation")
    fig.suptitle(f"Exact curvature spectra: {meta['dataset']} ({meta['split']}, "
                 f"N = {meta['num_samples']})")
    fig.text(0.5, 0.01, f"MLP {meta['sizes']}, {meta['activation']}, {meta['loss']}, "
             f"bias={meta['bias']}, {meta['dtype']}, P = {meta['num_params']}, r = "
             f"{meta['rank']}; theta at {where} (SHA-256 {meta['theta_sha256'][:12]}); "
             "exact per-sample eigenvalues (esso-ref analyze)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
