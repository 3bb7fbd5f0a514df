"""Turn the compare outputs of run.sh into the tables and figures of docs/experiments.md.

Redraws every figure from the stored JSON logs (no training): python summarise.py > tables.md
"""

import json
import sys
from pathlib import Path

from esso_ref.plots import plot_histories

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "figures"
PIPE = "\\|"  # a literal | inside a markdown table cell
TITLES = {  # the shared configuration of run.sh; each method's own settings are in its label
    "digits": "digits (1,438 train / 359 test): MLP [64, 32, 10] tanh, cross-entropy, batch size "
              "1, 10 epochs, 5 seeds\nESSO lr = 1, damping lam; SGD and Adam lr as labelled",
    "spirals": "spirals (450 train / 150 test): MLP [2, 32, 3] tanh, cross-entropy, batch size "
               "1, 20 epochs, 5 seeds\nESSO lr = 1, damping lam; SGD and Adam lr as labelled",
}


def fmt(mean, std=None, digits=4):
    """Mean ± std as text (a dash when missing)."""
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def table(dataset: str, target: str) -> str:
    """The markdown table of one dataset's runs; also writes its figure."""
    rows, histories = [], {}
    for path in sorted(HERE.glob(f"{dataset}_*.json")):
        data = json.loads(path.read_text())
        for row in data["table"]:
            rows.append(row)
        histories.update(data["histories"])
    lines = ["| optimizer | test accuracy | test loss | seconds | epochs to "
             f"{target} (runs reaching it) | diverged | top eig. of full H | per-sample max eig. "
             "(mean / max) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -(r["test_accuracy_mean"] or 0)):
        lines.append(
            f"| {r['optimizer'].replace('|', PIPE)} | "
            f"{fmt(r['test_accuracy_mean'], r['test_accuracy_std'])} | "
            f"{fmt(r['test_loss_mean'], r['test_loss_std'])} | "
            f"{fmt(r['seconds_mean'], None, 1)} | "
            f"{fmt(r[f'epochs_to_{target}_mean'], None, 1)} "
            f"({r[f'reached_{target}']}/{r['seeds']}) | "
            f"{r['diverged']} | {fmt(r.get('hessian_top_mean'), r.get('hessian_top_std'), 3)} | "
            f"{fmt(r.get('sample_max_mean'), None, 2)} / {fmt(r.get('sample_max_max'), None, 1)} |")
    plot_histories(histories, FIGURES / f"{dataset}_compare.png", TITLES[dataset])
    for path in sorted(HERE.glob(f"{dataset}_*.json")):  # each run's own figure, next to it
        plot_histories(json.loads(path.read_text())["histories"], path.with_suffix(".png"),
                       TITLES[dataset].split("\n")[0])
    return "\n".join(lines)


if __name__ == "__main__":
    print(f"### digits\n\n{table('digits', sys.argv[1] if len(sys.argv) > 1 else '0.97')}\n")
    print(f"### spirals\n\n{table('spirals', sys.argv[2] if len(sys.argv) > 2 else '0.95')}")
