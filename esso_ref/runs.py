"""Guards of a training run: counts, divergence, resume rules, memory, and its JSON-lines log.

Divergence: a run diverges when a step's loss or parameters become non-finite, when an epoch's
training loss exceeds ``LOSS_FACTOR`` times the training loss at the initial theta, or when
|theta| exceeds ``NORM_FACTOR`` times max(1, |theta_0|).

Resume: the settings in `RESUME_FIXED` (and the optimizer's resolved keywords) must equal
the checkpoint's, except the learning rate (it applies from the next step: resume a diverged
run from its last good checkpoint with a lower one); ``epochs`` may grow; outputs,
``data_dir``, ``quiet``, ``sharpness`` and ``track_spectrum`` may change.
"""

from __future__ import annotations

import math
import numbers
import uuid
from dataclasses import dataclass
from pathlib import Path

from ._files import read_jsonl, write_jsonl
from ._memory import check_allocation

__all__ = ["LOSS_FACTOR", "NORM_FACTOR", "DivergenceGuard", "check_counts", "new_run_id",
           "prepare_log", "resume_differences"]

LOSS_FACTOR = 100.0
NORM_FACTOR = 1000.0
RESUME_FIXED = ("dataset", "optimizer", "activation", "batch_size", "seed")
RESUME_FREE = ("epochs", "data_dir", "log", "checkpoint", "resume", "quiet", "sharpness",
               "track_spectrum", "run_id")


def new_run_id() -> str:
    """A fresh run id (12 hex digits) written into every log row of the run."""
    return uuid.uuid4().hex[:12]


def _count(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} to be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"expected {name} >= {low}, got {value}")


def check_counts(config) -> None:
    """Reject epochs < 1, batch_size < 1, seed < 0 and momentum outside [0, 1)."""
    _count("epochs", config.epochs, 1)
    _count("batch_size", config.batch_size, 1)
    _count("seed", config.seed, 0)
    if not (isinstance(config.momentum, numbers.Real) and 0 <= config.momentum < 1):
        raise ValueError(f"expected momentum in [0, 1), got {config.momentum!r}")
    outputs = [p for p in (config.log, config.checkpoint) if p]
    if len({str(Path(p).resolve()) for p in outputs}) < len(outputs):
        raise ValueError(f"expected different files for --log and --checkpoint, got {outputs[0]}")


@dataclass
class DivergenceGuard:
    """Decides after every epoch whether the run diverged (see the module docstring)."""

    initial_loss: float
    initial_norm: float

    def check(self, epoch: int, train_loss: float, norm: float) -> str | None:
        """The reason the run diverged in ``epoch``, or None (then ``train_loss`` counts)."""
        ref = self.initial_loss
        if not (math.isfinite(train_loss) and math.isfinite(norm)):
            return f"training diverged in epoch {epoch} (train loss {train_loss:.4g})"
        if train_loss > LOSS_FACTOR * ref:
            return (f"training diverged in epoch {epoch}: train loss {train_loss:.4g} is above "
                    f"{LOSS_FACTOR:g} x the initial {ref:.4g}")
        if norm > NORM_FACTOR * max(1.0, self.initial_norm):
            return (f"training diverged in epoch {epoch}: |theta| = {norm:.4g} grew above "
                    f"{NORM_FACTOR:g} x its initial {self.initial_norm:.4g}")
        return None


def resume_differences(saved: dict, config) -> list[str]:
    """The settings that differ between a checkpoint's config and ``config``."""
    from .train import TrainConfig

    known = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
    old = TrainConfig(**known)
    diffs = [f"{k} {getattr(old, k)!r} (checkpoint) != {getattr(config, k)!r}"
             for k in RESUME_FIXED if getattr(old, k) != getattr(config, k)]
    if old.optimizer == config.optimizer:
        a, b = old.optimizer_kwargs(), config.optimizer_kwargs()
        diffs += [f"{k} {a[k]!r} (checkpoint) != {b[k]!r}" for k in a
                  if k != "lr" and a[k] != b[k]]
    return diffs


def check_step_memory(opt, net, batch: int, xp=None) -> None:
    """Refuse an ESSO configuration whose per-step Gram matrices would not fit in memory."""
    if getattr(opt, "memory_estimate", None) is None:
        return
    check_allocation(opt.memory_estimate(net, batch),
                     f"an esso step at batch size {batch} on {net!r}",
                     "lower --batch-size or use --method layerwise", xp)


def prepare_log(path, run_id: str, history: list) -> None:
    """Make the log agree with the checkpoint's history before a run appends to it.

    Drops a torn last line (with a warning) and this run's rows beyond the checkpoint, and
    appends the checkpoint's rows that the log lacks (a kill between the checkpoint and the
    log write).
    """
    path = Path(path)
    if not path.exists() and not history:
        return
    rows, torn = read_jsonl(path) if path.exists() else ([], False)
    mine = {r.get("epoch") for r in rows if r.get("run") == run_id}
    keep = [r for r in rows
            if not (r.get("run") == run_id and r.get("epoch", 0) > len(history))]
    missing = [{"run": run_id, **h} for h in history if h["epoch"] not in mine]
    if torn or missing or len(keep) != len(rows):
        write_jsonl(path, keep + missing)
