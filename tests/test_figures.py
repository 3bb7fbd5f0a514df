"""Figures a person can put in a talk: titles, units, integer epochs, legends off the data."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from esso_ref import plots

SEVEN = ["Adam lr=0.003", "SGD lr=0.03", "ESSO |H| lam=10", "ESSO |H| lam=30",
         "ESSO layerwise lam=10", "ESSO clip lam=10", "ESSO none lam=10"]


@pytest.fixture
def saved(monkeypatch):
    """The figures the plotting functions save, kept open for inspection."""
    figures = []
    original = Figure.savefig

    def keep(fig, path, **kw):
        fig.canvas.draw()
        figures.append(fig)
        return original(fig, path, **kw)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _histories(seeds=3, epochs=10):
    rng = np.random.default_rng(0)
    out = {}
    for k, label in enumerate(SEVEN):
        final = 0.7 if "none" in label else 0.98 - 0.002 * k
        out[label] = [[{"epoch": e, "seconds": 0.5 * e * (k + 1), "train_loss": 1.0 / e,
                        "test_loss": (30.0 if "none" in label else 0.05) * (1 + 1 / e),
                        "test_accuracy": final - 0.1 / e + 0.003 * rng.standard_normal()}
                       for e in range(1, epochs + 1)] for _ in range(seeds)]
    return out


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_histories_figure_reads_with_seven_methods(tmp_path, saved):
    plots.plot_histories(_histories(), tmp_path / "h.png", "digits, MLP [64, 32, 10] tanh")
    fig = saved[-1]
    assert fig.get_suptitle() == "digits, MLP [64, 32, 10] tanh"
    axes = fig.get_axes()
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    assert all("(s)" in ax.get_xlabel() or ax.get_xlabel() == "epoch" for ax in axes)
    for ax in (a for a in axes if a.get_xlabel() == "epoch"):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    legend = fig.legends[0]
    box = legend.get_window_extent()
    assert not any(_overlaps(box, ax.get_window_extent()) for ax in axes)
    labels = [t.get_text() for t in legend.get_texts()]
    assert any(lbl.startswith("ESSO none lam=10") and "off scale" in lbl for lbl in labels)
    assert not any("off scale" in lbl for lbl in labels if not lbl.startswith("ESSO none"))
    assert "bold: mean over seeds" in labels and "faint: one line per seed" in labels
    styles = {(h.get_color(), str(h.get_linestyle()), h.get_marker())
              for h in legend.legend_handles[:len(SEVEN)]}
    assert len(styles) == len(SEVEN)
    accuracy = [ax for ax in axes if "accuracy" in ax.get_ylabel()]
    assert accuracy and all(ax.get_ylim()[0] > 70.0 for ax in accuracy)  # "none" ends at ~70%


def test_single_run_has_no_seed_legend_and_keeps_every_point(tmp_path, saved):
    run = _histories(seeds=1)["SGD lr=0.03"][0]
    plots.plot_histories({"sgd": run}, tmp_path / "one.png", "spirals")
    fig = saved[-1]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["sgd"]
    for ax in fig.get_axes():
        if "accuracy" in ax.get_ylabel():
            low, high = ax.get_ylim()
            assert all(low <= 100 * r["test_accuracy"] <= high for r in run)


def test_spectrum_figure_has_labels_on_both_panels(tmp_path, saved):
    plots.plot_spectrum(np.linspace(-1.0, 2.0, 40), 100, tmp_path / "s.png", "digits sample 0")
    fig = saved[-1]
    assert fig.get_suptitle() == "digits sample 0"
    for ax in fig.get_axes():
        assert ax.get_xlabel() and ax.get_ylabel()
    assert "100 exact zeros" in fig.get_axes()[0].get_title()


def test_spectrum_evolution_has_integer_epochs_and_outside_legend(tmp_path, saved):
    rows = [{"epoch": e, "spectrum": {"values": [-e, 0.5, 2.0 * e], "min": -e, "max": 2.0 * e}}
            for e in range(1, 8)]
    plots.plot_spectrum_evolution(rows, tmp_path / "e.png", "digits, esso")
    fig = saved[-1]
    (ax,) = fig.get_axes()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)
    assert not _overlaps(fig.legends[0].get_window_extent(), ax.get_window_extent())
    assert fig.get_suptitle() == "digits, esso"


def test_config_title_names_data_network_and_optimizer():
    from esso_ref.train import TrainConfig

    title = plots.config_title(TrainConfig(dataset="spirals", damping=3.0), seeds=5,
                               sizes=[2, 32, 3])
    assert title.startswith("spirals, MLP [2, 32, 3] tanh, batch size 1, 10 epochs, 5 seeds")
    assert "esso lr=1, damping=3, spectral=abs" in title
    assert plots.config_title(TrainConfig(), sizes=[64, 32, 10], optimizer=False) == (
        "digits, MLP [64, 32, 10] tanh, batch size 1, 10 epochs, 1 seed")
