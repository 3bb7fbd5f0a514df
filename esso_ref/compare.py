"""``esso-ref compare``: several optimizers over several seeds, one table and one figure."""

from __future__ import annotations

import csv
import io
import json
import statistics
import warnings
from dataclasses import replace
from pathlib import Path

from ._files import OutputLock, atomic_write, check_output, make_folder
from .train import Diverged, TrainConfig, preflight, train

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
    sharp = [r["summary"]["sharpness"] for r in runs if r["summary"].get("sharpness")]
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


def _outputs(out) -> dict:
    """Check the prefix and its three files before any training (the folder is created)."""
    text = str(out)
    if not text.strip() or Path(text).name in ("", ".", "..") or text.endswith(("/", "\\")):
        raise ValueError(f"expected --out to be a file prefix such as results/cmp, got {text!r}")
    make_folder(Path(text).parent, "--out")
    return {f"--out ({ext})": check_output(f"{text}.{ext}", "--out") for ext in
            ("json", "csv", "png")}


def _write(prefix: str, table: list, histories: dict) -> None:
    """Write ``prefix.csv`` and ``prefix.json`` atomically (after every finished run)."""
    text = io.StringIO()
    keys = sorted({k for row in table for k in row}, key=lambda k: (k != "optimizer", k))
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(table)
    atomic_write(f"{prefix}.csv", lambda fh: fh.write(text.getvalue().encode()))
    blob = json.dumps({"table": table, "histories": histories}, indent=1).encode()
    atomic_write(f"{prefix}.json", lambda fh: fh.write(blob))


def compare(configs: dict[str, list[TrainConfig]], out: str, target: float = 0.95,
            sharpness: bool = True, progress=None) -> list[dict]:
    """Train every config; write ``out.csv``, ``out.json`` (table + histories) and ``out.png``.

    The output locations and every configuration's memory are checked before the first run;
    the CSV and JSON are rewritten after every finished run, so a later failure (or a kill)
    keeps every finished run; the figure comes last.

    Args:
        configs: label -> one TrainConfig per seed.
        out: output path prefix.
        target: test accuracy whose first epoch is reported.
        sharpness: also measure the flatness of every final point (see ``train.sharpness``).
        progress: a text stream for one line per finished run (None: silent).

    Returns:
        The table rows (one per label).
    """
    runs = [(label, replace(c, quiet=True, sharpness=sharpness))
            for label, cs in configs.items() for c in cs]
    if not runs:
        raise ValueError("expected at least one configuration to compare, got none")
    with OutputLock(_outputs(out)):
        for config in {(c.dataset, c.optimizer, c.batch_size): c for _, c in runs}.values():
            preflight(config)
        results: dict[str, list] = {}
        for k, (label, config) in enumerate(runs, start=1):
            results.setdefault(label, []).append(_run(config))
            table = [summarise(lab, res, target) for lab, res in results.items()]
            histories = {lab: [r["history"] for r in res] for lab, res in results.items()}
            _write(str(out), table, histories)
            if progress is not None:
                _report(progress, k, len(runs), label, config, results[label][-1]["summary"])
        try:
            from .plots import config_title, plot_histories

            first = runs[0][1]
            sizes = results[runs[0][0]][0]["net"].sizes if "net" in results[runs[0][0]][0] else None
            plot_histories(histories, f"{out}.png", title=config_title(
                first, len(results[runs[0][0]]), sizes, optimizer=len(configs) == 1))
        except ImportError as err:
            warnings.warn(f"no figure {out}.png ({err}); the table is in {out}.json",
                          stacklevel=2)
    return table


def _report(stream, k: int, n: int, label: str, config: TrainConfig, summary: dict) -> None:
    if "diverged" in summary:
        what = "diverged"
    else:
        acc = summary.get("test_accuracy")
        what = (f"test loss {summary['test_loss']:.4g}"
                + ("" if acc is None else f", test accuracy {acc:.4f}")
                + f", {summary['seconds']:.1f} s")
    print(f"compare: run {k}/{n} ({label}, seed {config.seed}): {what}", file=stream, flush=True)
