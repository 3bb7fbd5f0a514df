"""Training loop: epochs of shuffled mini-batches, per-epoch metrics, logs, checkpoints.

Deterministic given the seed: parameters from ``net.init(seed)``, batch order from
``numpy.random.default_rng(seed)``, whose state is checkpointed so that a resumed run is bit
for bit the uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ._files import OutputLock, check_output
from .backend import host_rng, namespace, to_host
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_dataset
from .flatness import check_sample_memory, sample_spectrum, sharpness
from .mlp import MLP
from .optim import make_optimizer
from .runs import (
    DivergenceGuard,
    check_counts,
    check_step_memory,
    new_run_id,
    prepare_log,
    resume_differences,
)

__all__ = ["DEFAULT_LR", "Diverged", "TrainConfig", "evaluate", "preflight", "sample_spectrum",
           "sharpness", "train"]

DEFAULT_LR = {"esso": 1.0, "sgd": 0.05, "adam": 1e-3}


@dataclass
class TrainConfig:
    """Everything a run depends on (the CLI flags of ``esso-ref train``)."""

    dataset: str = "digits"
    optimizer: str = "esso"
    sizes: list[int] | None = None  # default: [n_0, 32, n_out] of the dataset
    activation: str = "tanh"
    epochs: int = 10
    batch_size: int = 1
    seed: int = 0
    lr: float | None = None  # default: DEFAULT_LR[optimizer]
    damping: float = 10.0
    spectral: str = "abs"
    method: str = "structured"
    curvature: str = "hessian"
    adaptive: bool = False
    momentum: float = 0.0
    data_dir: str | None = None
    log: str | None = None
    checkpoint: str | None = None
    resume: str | None = None
    quiet: bool = False
    sharpness: bool = False
    track_spectrum: bool = False  # log the exact spectrum of training sample 0 every epoch
    run_id: str = ""  # written into every log row; a resumed run keeps its checkpoint's
    extra: dict = field(default_factory=dict)

    def optimizer_kwargs(self) -> dict:
        """Keyword arguments of the chosen optimizer."""
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        if self.optimizer == "esso":
            return {"lr": lr, "damping": self.damping, "spectral": self.spectral,
                    "method": self.method, "curvature": self.curvature,
                    "adaptive": self.adaptive}
        if self.optimizer == "sgd":
            return {"lr": lr, "momentum": self.momentum}
        return {"lr": lr}


def evaluate(net: MLP, theta, X, y) -> tuple[float, float | None]:
    """(mean loss, accuracy) on (X, y); accuracy is None for regression."""
    loss = float(net.loss(theta, X, y))
    if net.loss_name != "cross_entropy":
        return loss, None
    xp = namespace(theta)
    correct = xp.argmax(net.predict(theta, X), axis=1) == y
    return loss, float(xp.mean(xp.astype(correct, theta.dtype)))


class Diverged(RuntimeError):
    """The training diverged (see :mod:`esso_ref.runs` for the definition)."""


def _progress(total: int, quiet: bool, desc: str):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def _outputs(config: TrainConfig) -> dict:
    """Check every output location before any work; returns flag -> path."""
    out = {"--log": config.log, "--checkpoint": config.checkpoint}
    out = {flag: check_output(p, flag) for flag, p in out.items() if p}
    if config.resume and not Path(config.resume).is_file():
        raise FileNotFoundError(f"expected a checkpoint to resume at {config.resume}, found none")
    return out


def _start(config: TrainConfig, net: MLP, opt) -> dict:
    """theta, optimizer state, RNG, epoch, history and run id: fresh or from --resume."""
    run = {"theta": net.init(config.seed), "rng": host_rng(config.seed), "epoch": 0,
           "history": [], "run_id": config.run_id or new_run_id()}
    run["state"] = opt.init(run["theta"])
    if not config.resume:
        return run
    ckpt = load_checkpoint(config.resume, net)
    saved = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    diffs = resume_differences(saved, config)
    if diffs:
        raise ValueError(f"cannot resume from {config.resume}: " + "; ".join(diffs)
                         + " (pass the checkpoint's settings)")
    if config.epochs < ckpt["epoch"]:
        raise ValueError(f"cannot resume from {config.resume}: it already holds "
                         f"{ckpt['epoch']} epochs; expected --epochs >= {ckpt['epoch']}, "
                         f"got {config.epochs}")
    opt.check_state(ckpt["opt_state"], run["theta"])
    run.update(theta=ckpt["theta"], state=ckpt["opt_state"], rng=ckpt["rng"],
               epoch=ckpt["epoch"], history=ckpt["history"],
               run_id=config.run_id or saved.get("run_id") or run["run_id"])
    return run


def train(config: TrainConfig, data: Dataset | None = None) -> dict:
    """Run a training; returns {"summary": ..., "history": [...]} (see docs/cli.md).

    Every output location is checked and locked before any work; each epoch first writes the
    checkpoint (atomically), then the log row, so that after a kill both agree on resume.

    Raises:
        Diverged: when the run diverges; the checkpoint keeps the last good epoch.
        ValueError, FileNotFoundError: bad configuration, data, checkpoint or output path;
            OutputBusyError (a ValueError) when another run writes the same output.
    """
    check_counts(config)
    with OutputLock(_outputs(config)):
        return _train(config, data)


def preflight(config: TrainConfig, data: Dataset | None = None):
    """(data, net, optimizer) of a configuration, refused when a step would not fit in memory.

    Raises:
        ValueError: bad counts, or a step, ``sharpness`` or ``track_spectrum`` whose memory
            estimate exceeds the available memory (InsufficientMemoryError).
    """
    check_counts(config)
    data = data or load_dataset(config.dataset, config.data_dir, config.seed)
    sizes = config.sizes or [data.num_inputs, 32, data.num_outputs]
    if sizes[0] != data.num_inputs or sizes[-1] != data.num_outputs:
        raise ValueError(f"expected sizes from {data.num_inputs} to {data.num_outputs} for "
                         f"{config.dataset}, got {list(sizes)}")
    net = MLP(sizes, config.activation, data.loss)
    opt = make_optimizer(config.optimizer, **config.optimizer_kwargs())
    check_step_memory(opt, net, min(config.batch_size, data.X_train.shape[0]))
    if config.sharpness or config.track_spectrum:
        check_sample_memory(net, "the flatness measures (train --sharpness / "
                            "--track-spectrum, compare without --no-sharpness)")
    return data, net, opt


def _train(config: TrainConfig, data: Dataset | None) -> dict:
    data, net, opt = preflight(config, data)
    run = _start(config, net, opt)
    config = replace(config, run_id=run["run_id"])
    theta0 = net.init(config.seed)
    guard = DivergenceGuard(evaluate(net, theta0, data.X_train, data.y_train)[0],
                            float(np.linalg.norm(to_host(theta0))))
    if config.log:
        prepare_log(config.log, run["run_id"], run["history"])
    run["saved"] = config.checkpoint if config.resume and config.checkpoint and \
        Path(config.resume).resolve() == Path(config.checkpoint).resolve() else None
    for epoch in range(run["epoch"], config.epochs):
        _epoch(config, net, opt, data, run, epoch, guard)
    history = run["history"]
    last = history[-1] if history else {}
    summary = {"dataset": data.name, "optimizer": config.optimizer, "epochs": len(history),
               "train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"),
               "test_accuracy": last.get("test_accuracy"), "seconds": last.get("seconds")}
    if config.sharpness:
        _optional_sharpness(summary, net, run["theta"], data, config.quiet)
    return {"summary": summary, "history": history, "theta": run["theta"], "net": net,
            "run_id": run["run_id"]}


def _epoch(config, net, opt, data, run, epoch: int, guard: DivergenceGuard) -> None:
    """One epoch of mini-batch steps, its checks, checkpoint, log row and report."""
    seconds = run["history"][-1]["seconds"] if run["history"] else 0.0
    theta, state = run["theta"], run["state"]
    N, bs = data.X_train.shape[0], config.batch_size
    t0 = time.perf_counter()
    order = run["rng"].permutation(N)
    bar = _progress(math.ceil(N / bs), config.quiet, f"epoch {epoch + 1}/{config.epochs}")
    for i in range(0, N, bs):
        idx = order[i:i + bs]
        with warnings.catch_warnings():  # overflow is reported as a divergence below
            warnings.simplefilter("ignore", RuntimeWarning)
            theta, state, info = opt.step(theta, state, net, data.X_train[idx],
                                          data.y_train[idx])
        xp = namespace(theta)
        if not (math.isfinite(info["loss"]) and bool(xp.all(xp.isfinite(theta)))):
            _diverged(run, f"training diverged in epoch {epoch + 1} (loss {info['loss']:.4g})")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    seconds += time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        train_loss, train_acc = evaluate(net, theta, data.X_train, data.y_train)
        norm = float(np.linalg.norm(to_host(theta)))
    reason = guard.check(epoch + 1, train_loss, norm)
    if reason:
        _diverged(run, reason)
    test_loss, test_acc = evaluate(net, theta, data.X_test, data.y_test)
    row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc,
           "test_loss": test_loss, "test_accuracy": test_acc, "seconds": seconds}
    if config.track_spectrum:
        row["spectrum"] = sample_spectrum(net, theta, data)
    run["history"].append(row)
    run.update(theta=theta, state=state)
    if config.checkpoint:
        save_checkpoint(config.checkpoint, net, theta, state, run["rng"], epoch + 1,
                        run["history"], asdict(config))
        run["saved"] = config.checkpoint
    _report(config, run["run_id"], row)


def _diverged(run: dict, reason: str):
    where = (f"; the last good checkpoint is {run['saved']} (epoch {run['history'][-1]['epoch']})"
             if run["saved"] and run["history"] and Path(run["saved"]).is_file() else "")
    raise Diverged(f"{reason}; lower the learning rate or raise the damping{where}")


def _optional_sharpness(summary: dict, net, theta, data, quiet: bool) -> None:
    """Sharpness after everything else is saved; a failure is reported, not raised."""
    try:
        summary["sharpness"] = sharpness(net, theta, data.X_train, data.y_train,
                                         progress=_sharpness_progress(data, quiet))
    except (MemoryError, ArithmeticError, RuntimeError) as err:
        warnings.warn(f"sharpness skipped: {err}", stacklevel=3)
        summary["sharpness"] = None


def _sharpness_progress(data, quiet: bool):
    """A progress bar on a terminal; elsewhere one line with the time left when it is long."""
    if quiet:
        return None
    bar, start, told = _progress(data.X_train.shape[0], quiet, "sharpness"), 0.0, False

    def report(done: int, total: int) -> None:
        nonlocal start, told
        if done == 0:  # the samples start now
            start = time.perf_counter()
            return
        if bar is not None:
            bar.update(done - bar.n)
            if done == total:
                bar.close()
            return
        spent = time.perf_counter() - start
        left = spent * (total - done) / done
        if not told and left > 10:
            told = True
            print(f"esso-ref train: sharpness: the exact spectra of {done} of {total} samples "
                  f"took {spent:.0f} s, about {left:.0f} s to go", file=sys.stderr)

    return report


def _report(config: TrainConfig, run_id: str, row: dict) -> None:
    if config.log:
        line = (json.dumps({"run": run_id, **row}) + "\n").encode()
        fd = os.open(config.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    if not config.quiet:
        acc = "" if row["test_accuracy"] is None else f"  test acc {row['test_accuracy']:.4f}"
        print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  "
              f"test loss {row['test_loss']:.4f}{acc}  {row['seconds']:.1f} s", file=sys.stderr)
