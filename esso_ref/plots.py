"""Matplotlib figures (the ``plot`` extra): training curves, spectra, benchmark scaling."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_bench", "plot_histories", "plot_spectrum", "plot_spectrum_evolution"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install esso_ref[plot]") from err
    return plt


def plot_histories(histories: dict, path) -> None:
    """Loss and accuracy against epochs and against wall time, one line per run label.

    Args:
        histories: label -> list of per-epoch rows (``train_loss``, ``test_loss``,
            ``test_accuracy``, ``seconds``, ``epoch``), or label -> list of such lists (seeds,
            drawn thin).
        path: PNG file to write.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for k, (label, runs) in enumerate(histories.items()):
        runs = runs if runs and isinstance(runs[0], list) else [runs]
        color = f"C{k}"
        for j, rows in enumerate(runs):
            x_ep = [r["epoch"] for r in rows]
            x_t = [r["seconds"] for r in rows]
            kw = {"color": color, "alpha": 0.9 if j == 0 else 0.35,
                  "label": label if j == 0 else None}
            axes[0, 0].plot(x_ep, [r["test_loss"] for r in rows], **kw)
            axes[0, 1].plot(x_t, [r["test_loss"] for r in rows], **kw)
            if rows and rows[0].get("test_accuracy") is not None:
                axes[1, 0].plot(x_ep, [r["test_accuracy"] for r in rows], **kw)
                axes[1, 1].plot(x_t, [r["test_accuracy"] for r in rows], **kw)
    for ax, (xl, yl) in zip(axes.flat, [("epoch", "test loss"), ("seconds", "test loss"),
                                        ("epoch", "test accuracy"), ("seconds", "test accuracy")],
                            strict=True):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0, 0].set_yscale("log")
    axes[0, 1].set_yscale("log")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectrum(values, num_zeros: int, path, title: str = "") -> None:
    """Stem plot of the eigenvalues that can be non-zero, and their histogram."""
    plt = _pyplot()
    mu = np.sort(np.asarray(values))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].stem(np.arange(mu.size), mu, markerfmt=".", basefmt=" ")
    axes[0].set_xlabel("index (ascending)")
    axes[0].set_ylabel("eigenvalue")
    axes[0].set_title(f"{mu.size} eigenvalues that can be non-zero; {num_zeros} exact zeros")
    axes[1].hist(mu, bins=min(60, max(10, mu.size // 3)), color="C1")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("eigenvalue")
    axes[1].set_title(title or "histogram")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bench(result: dict, path) -> None:
    """Log-log time against P for every route, with the fitted exponents in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    names = {"spectrum_structured_s": "spectrum, structured", "spectrum_dense_s":
             "spectrum, dense", "spectrum_torch_s": "spectrum, torch.func.hessian",
             "newton_push_through_s": "Newton, push-through", "newton_abs_s": "Newton, |H|",
             "newton_cg_s": "Newton, CG to 1e-10", "spectrum_lanczos_top10_s": "Lanczos top-10"}
    for key, label in names.items():
        pts = [(r["P"], r[key]) for r in result["sizes"] if key in r]
        if not pts:
            continue
        k = result["fit"].get(key)
        ax.loglog(*zip(*pts, strict=True), "o-",
                  label=label + (f" (~P^{k:.2f})" if k is not None else ""))
    ax.set_xlabel("P (parameters)")
    ax.set_ylabel("seconds (median)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectrum_evolution(rows: list, path) -> None:
    """Every logged epoch's exact spectrum of one sample (scatter) and its extremes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in rows:
        mu = np.asarray(r["spectrum"]["values"])
        ax.scatter(np.full(mu.size, r["epoch"]), mu, s=4, color="C0", alpha=0.4)
    ax.plot([r["epoch"] for r in rows], [r["spectrum"]["max"] for r in rows], "C1-", label="max")
    ax.plot([r["epoch"] for r in rows], [r["spectrum"]["min"] for r in rows], "C2-", label="min")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("eigenvalues of one sample's Hessian")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
