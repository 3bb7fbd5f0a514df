"""``esso-ref compare``: several optimizers over several seeds, one table and one figure."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import replace
from pathlib import Path

from .train import Diverged, TrainConfig, train

__all__ = ["compare", "summarise"]


def _epochs_to(history: list, target: float) -> int | None:
    for row in history:
        if row.get("test_accuracy") is not None and row["test_accuracy"] >= target:
            return row["epoch"]
    return None


def summarise(label: str, runs: list[dict], target: float) -> dict:
    """Mean and standard deviation over seeds of the final metrics of one optimizer."""
    def stats(values):
        values = [v for v in values if v is not None]
        if not values:
            return None, None
        return statistics.fmean(values), statistics.pstdev(values)

    row = {"optimizer": label, "seeds": len(runs),
           "diverged": sum("diverged" in r["summary"] for r in runs)}
    for key in ("test_accuracy", "test_loss", "train_loss", "seconds"):
        row[f"{key}_mean"], row[f"{key}_std"] = stats([r["summary"][key] for r in runs])
    reached = [_epochs_to(r["history"], target) for r in runs]
    row[f"epochs_to_{target:g}_mean"] = stats(reached)[0]
    row[f"reached_{target:g}"] = sum(e is not None for e in reached)
    sharp = [r["summary"]["sharpness"] for r in runs if "sharpness" in r["summary"]]
    if sharp:
        row["hessian_top_mean"], row["hessian_top_std"] = stats([s["full_top"][0] for s in sharp])
        row["sample_max_mean"] = stats([s["sample_max_mean"] for s in sharp])[0]
        row["sample_max_max"] = max(s["sample_max_max"] for s in sharp)
    return row


def _run(config: TrainConfig) -> dict:
    """One training; a diverged run is recorded with its message and no final metrics."""
    try:
        return train(config)
    except Diverged as err:
        summary = {"dataset": config.dataset, "optimizer": config.optimizer,
                   "epochs": config.epochs, "train_loss": None, "test_loss": None,
                   "test_accuracy": None, "seconds": None, "diverged": str(err)}
        return {"summary": summary, "history": []}


def compare(configs: dict[str, list[TrainConfig]], out: str, target: float = 0.95,
            sharpness: bool = True) -> list[dict]:
    """Train every config; write ``out.csv``, ``out.json`` (table + histories) and ``out.png``.

    Args:
        configs: label -> one TrainConfig per seed.
        out: output path prefix.
        target: test accuracy whose first epoch is reported.
        sharpness: also measure the flatness of every final point (see ``train.sharpness``).

    Returns:
        The table rows (one per label).
    """
    table, histories = [], {}
    for label, runs in configs.items():
        results = [_run(replace(c, quiet=True, sharpness=sharpness)) for c in runs]
        table.append(summarise(label, results, target))
        histories[label] = [r["history"] for r in results]
    prefix = Path(out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{prefix}.csv", "w", newline="", encoding="utf-8") as fh:
        keys = sorted({k for row in table for k in row}, key=lambda k: (k != "optimizer", k))
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(table)
    with open(f"{prefix}.json", "w", encoding="utf-8") as fh:
        json.dump({"table": table, "histories": histories}, fh, indent=1)
    try:
        from .plots import plot_histories

        plot_histories(histories, f"{prefix}.png")
    except ImportError:
        pass
    return table
