"""Matplotlib figures (the ``plot`` extra): training curves, spectra, benchmark scaling.

Every figure carries a title with its configuration, labelled axes with units, and a legend
outside the axes; lines differ by colour, line style and marker so that seven methods stay
apart in print and in grey scale.
"""

from __future__ import annotations

import statistics

import numpy as np

from .curvature.spectral import Spectrum

__all__ = ["check_plot", "config_title", "plot_bench", "plot_histories", "plot_spectrum",
           "plot_spectrum_evolution"]

_STYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (8, 2))]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
_MARGIN = 0.03  # a method is competitive when its final mean accuracy is within this of the best


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install esso_ref[plot]") from err
    return plt


def check_plot(path, flag: str = "--plot"):
    """Check before any work that a figure can be written to ``path``; returns it as a Path.

    matplotlib must be installed, the file name must end in a format it writes (.png, .pdf,
    .svg, ...), and the folder must take files (`esso_ref._files.check_output`).
    """
    from ._files import check_output

    path = check_output(path, flag)
    _pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"expected {flag} to end in a figure format (.png, .pdf, .svg; "
                         f"matplotlib writes {', '.join(sorted(formats))}), got {path.name!r}")
    return path


def _style(k: int) -> dict:
    """Colour, line style and marker of the k-th method."""
    return {"color": f"C{k % 10}", "linestyle": _STYLES[k % len(_STYLES)],
            "marker": _MARKERS[k % len(_MARKERS)]}


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def config_title(config, seeds: int = 1, sizes=None, optimizer: bool = True) -> str:
    """One line naming a training configuration, for the title of its figure.

    Args:
        config: a ``TrainConfig`` (or any object with its attributes).
        seeds: number of seeds drawn in the figure.
        sizes: the layer widths when ``config.sizes`` is None (the dataset's default net).
        optimizer: append the optimizer and its settings (leave them out when the figure
            compares several optimizers whose labels carry their settings).

    Returns:
        For example ``"digits, MLP [64, 32, 10] tanh, batch size 1, 10 epochs, 5 seeds; esso
        lr=1, damping=10, spectral=abs, method=structured"``.
    """
    sizes = config.sizes or sizes
    net = f"MLP {list(sizes)} {config.activation}" if sizes else f"MLP {config.activation}"
    kwargs = config.optimizer_kwargs()
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in kwargs.items() if v is not False)
    title = (f"{config.dataset}, {net}, batch size {config.batch_size}, {config.epochs} epochs, "
             f"{seeds} seed{'s' if seeds != 1 else ''}")
    return f"{title}; {config.optimizer} {settings}" if optimizer else title


def _mean_curve(runs: list, key: str) -> tuple[list, list, list]:
    """(epochs, mean wall time, mean of ``key``) over the seeds that reached each epoch."""
    by_epoch: dict[int, list] = {}
    for rows in runs:
        for r in rows:
            if r.get(key) is not None:
                by_epoch.setdefault(r["epoch"], []).append((r["seconds"], r[key]))
    epochs = sorted(by_epoch)
    return (epochs, [statistics.fmean(s for s, _ in by_epoch[e]) for e in epochs],
            [statistics.fmean(v for _, v in by_epoch[e]) for e in epochs])


def _limits(values: list, log: bool) -> tuple[float, float] | None:
    """A y-range holding ``values``, with some padding."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    if log:
        return lo / 1.5, hi * 1.5
    pad = 0.08 * (hi - lo) or 0.01
    return lo - pad, hi + pad


def _competitive(acc: dict, loss: dict) -> set:
    """Labels whose final mean accuracy is within _MARGIN of the best (or loss within 10x)."""
    final = {k: c[2][-1] for k, c in acc.items() if c[2]}
    if final:
        best = max(final.values())
        return {k for k, v in final.items() if v >= best - _MARGIN}
    final = {k: c[2][-1] for k, c in loss.items() if c[2]}
    best = min(final.values(), default=0.0)
    return {k for k, v in final.items() if v <= 10 * best}


def _off_scale(curves: dict, limits, scale: float, unit: str) -> dict:
    """Final value of each method whose final mean lies outside the y-range (label -> text)."""
    if limits is None:
        return {}
    return {k: f"{c[2][-1] * scale:.3g}{unit}"
            for k, c in curves.items() if c[2] and not limits[0] <= c[2][-1] <= limits[1]}


def _draw_panel(ax, runs_by_label: dict, curves: dict, key: str, x: str, scale: float) -> None:
    """Faint line per seed, bold line (with markers) for the mean over seeds."""
    for k, (label, runs) in enumerate(runs_by_label.items()):
        st = _style(k)
        for rows in runs if len(runs) > 1 else []:
            pts = [(r[x], r[key] * scale) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=st["color"], linestyle=st["linestyle"],
                        linewidth=0.8, alpha=0.3)
        epochs, seconds, mean = curves[label]
        if mean:
            ax.plot(epochs if x == "epoch" else seconds, [m * scale for m in mean], linewidth=2,
                    markersize=4, markevery=max(1, len(mean) // 10), **st)


def plot_histories(histories: dict, path, title: str = "") -> None:
    """Test loss and accuracy against epochs and against wall time, one method per style.

    With several seeds per method, the bold line with markers is the mean over seeds and the
    faint lines are the single seeds. The y-range of each panel holds the competitive methods
    (final mean accuracy within 3 points of the best); a method ending outside it is named in
    the legend with its final value.

    Args:
        histories: label -> list of per-epoch rows (``train_loss``, ``test_loss``,
            ``test_accuracy``, ``seconds``, ``epoch``), or label -> list of such lists (seeds).
        path: PNG file to write.
        title: the configuration (data set, network, optimizer settings), e.g. from
            `config_title`.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    runs_by_label = {label: runs if runs and isinstance(runs[0], list) else [runs]
                     for label, runs in histories.items()}
    loss = {k: _mean_curve(r, "test_loss") for k, r in runs_by_label.items()}
    acc = {k: _mean_curve(r, "test_accuracy") for k, r in runs_by_label.items()}
    acc = {k: c for k, c in acc.items() if c[2]}
    competitive = _competitive(acc, loss)
    panels = [("test_loss", loss, True, 1.0, "")]
    if acc:
        panels.append(("test_accuracy", acc, False, 100.0, "%"))
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 4 + 3.2 * len(panels)),
                             squeeze=False, layout="constrained")
    notes: dict = {}
    for row, (key, curves, log, scale, unit) in enumerate(panels):
        values = [v for k in competitive & set(curves) for v in curves[k][2]]
        if len(runs_by_label) == 1:  # one method: every seed in view
            values += [r[key] for rows in next(iter(runs_by_label.values())) for r in rows
                       if r.get(key) is not None]
        limits = _limits(values, log)
        for k, v in _off_scale(curves, limits, scale, unit).items():
            notes.setdefault(k, []).append(f"{key.split('_')[1]} {v}")
        for col, x in enumerate(("epoch", "seconds")):
            ax = axes[row, col]
            _draw_panel(ax, runs_by_label, curves, key, x, scale)
            if limits is not None:
                ax.set_ylim(limits[0] * scale, limits[1] * scale)
            if log:
                _log_axis(ax)
            ax.set_xlabel("epoch" if x == "epoch" else "wall time (s)")
            ax.set_ylabel(_y_label(key, bool(acc)))
            ax.grid(alpha=0.3, which="both" if log else "major")
            if x == "epoch":
                _integer_epochs(ax)
    handles = [Line2D([], [], linewidth=2, **_style(k),
                      label=label + (f"  (off scale, final {', '.join(notes[label])})"
                                     if label in notes else ""))
               for k, label in enumerate(runs_by_label)]
    if any(len(r) > 1 for r in runs_by_label.values()):
        handles += [Line2D([], [], color="0.2", linewidth=2, label="bold: mean over seeds"),
                    Line2D([], [], color="0.2", linewidth=0.8, alpha=0.4,
                           label="faint: one line per seed")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    fig.suptitle(title or "Test loss and accuracy per method", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_axis(ax) -> None:
    """Log y-axis with plain numbers (0.05, 0.1, 0.2) at 1, 2, 3 and 5 times powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _y_label(key: str, classification: bool) -> str:
    if key == "test_accuracy":
        return "test accuracy (%)"
    return "test loss, mean " + ("cross-entropy (nats)" if classification else "squared error")


def plot_spectrum(values, num_zeros: int, path, title: str = "") -> None:
    """Stem plot of the eigenvalues that can be non-zero, and their histogram.

    Args:
        values: the eigenvalues that can be non-zero (e.g. ``Spectrum.values``).
        num_zeros: how many further eigenvalues are exactly zero (not drawn).
        path: PNG file to write.
        title: what the spectrum is of (sample, network, point), shown above both panels.
    """
    plt = _pyplot()
    mu = np.sort(np.asarray(values))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    axes[0].stem(np.arange(mu.size), mu, markerfmt=".", basefmt=" ")
    axes[0].set_xlabel("index in ascending order")
    axes[0].set_ylabel("eigenvalue μ (loss / parameter²)")
    negative = Spectrum(mu, num_zeros).inertia()[0]
    axes[0].set_title(f"{mu.size} eigenvalues that can be non-zero ({negative} negative beyond "
                      f"rounding); {num_zeros} exact zeros not drawn", fontsize=10)
    axes[1].hist(mu, bins=min(60, max(10, mu.size // 3)), color="C1")
    _log_axis(axes[1])
    axes[1].set_xlabel("eigenvalue μ (loss / parameter²)")
    axes[1].set_ylabel("number of eigenvalues per bin")
    axes[1].set_title("histogram (log count)", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Exact spectrum of one sample's Hessian", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


_BENCH_ROUTES = {"spectrum_structured_s": "spectrum, eigenvalues (default)",
                 "spectrum_dense_s": "spectrum, dense eigvalsh",
                 "spectrum_torch_s": "spectrum, torch.func.hessian",
                 "spectrum_lanczos_top10_s": "Lanczos top-10",
                 "newton_structured_s": "Newton, newton_direction (default)",
                 "newton_abs_s": "Newton, |H|", "newton_cg_s": "Newton, CG to 1e-10"}


def plot_bench(result: dict, path, title: str = "") -> None:
    """Log-log time against P for every route, with the fitted exponents in the legend.

    Args:
        result: the output of ``esso_ref.bench.run_bench``.
        path: PNG file to write.
        title: the machine and settings; by default taken from ``result["machine"]``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
    for k, (key, label) in enumerate(_BENCH_ROUTES.items()):
        pts = [(r["P"], r[key]) for r in result["sizes"] if key in r]
        if not pts:
            continue
        fit = result.get("fit", {}).get(key)
        ax.loglog(*zip(*pts, strict=True), linewidth=1.5, markersize=5, **_style(k),
                  label=label + (f" (~P^{fit:.2f})" if fit is not None else ""))
    ax.set_xlabel("P, number of parameters")
    ax.set_ylabel("time per call, median (s)")
    ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside right center", fontsize=9, frameon=False)
    machine = result.get("machine", {})
    where = (f" (NumPy {machine['numpy']}, {machine.get('platform', '').split('-')[0]})"
             if "numpy" in machine else "")
    fig.suptitle(title or "One sample, tanh MLPs, cross-entropy, float64: time per call "
                 "against network size" + where, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectrum_evolution(rows: list, path, title: str = "") -> None:
    """Every logged epoch's exact spectrum of one sample (dots) and its extremes (lines).

    Args:
        rows: per-epoch log rows with a ``spectrum`` entry (``train --track-spectrum``).
        path: PNG file to write.
        title: the run's configuration, e.g. from `config_title`.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    for j, r in enumerate(rows):
        mu = np.asarray(r["spectrum"]["values"])
        ax.scatter(np.full(mu.size, r["epoch"]), mu, s=4, color="C0", alpha=0.4,
                   label="eigenvalues (one dot each)" if j == 0 else None)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["spectrum"]["max"] for r in rows], label="largest", **_style(1))
    ax.plot(epochs, [r["spectrum"]["min"] for r in rows], label="smallest", **_style(2))
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("eigenvalue μ (loss / parameter²), symlog")
    ax.grid(alpha=0.3)
    _integer_epochs(ax)
    fig.legend(loc="outside right center", fontsize=9, frameon=False)
    sample = rows[0]["spectrum"].get("sample", 0) if rows else 0
    fig.suptitle(title or f"Exact spectrum of training sample {sample}'s Hessian per epoch",
                 fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
