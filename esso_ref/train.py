"""Training loop: epochs of shuffled mini-batches, per-epoch metrics, logs, checkpoints.

Deterministic given the seed: parameters from ``net.init(seed)``, batch order from
``numpy.random.default_rng(seed)``, whose state is checkpointed so that a resumed run is bit
for bit the uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backend import host_rng, namespace, to_host
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_dataset
from .mlp import MLP
from .optim import make_optimizer

__all__ = ["DEFAULT_LR", "TrainConfig", "evaluate", "sharpness", "train"]

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


def sharpness(net: MLP, theta, X, y, k: int = 3) -> dict:
    """Flatness of a point: the sharpest curvatures of the training loss.

    Returns the top-k eigenvalues of the full training-set Hessian (Lanczos on Hessian-vector
    products) and the mean and maximum of every sample's exact largest eigenvalue (structured,
    eqs. (24)-(25), stacked).
    """
    from scipy.sparse.linalg import eigsh

    from .curvature import as_linear_operator, per_sample_eigenvalues

    op = as_linear_operator(net, theta, X, y)
    xp = namespace(theta)
    top = sorted((float(t) for t in eigsh(op, k=min(k, net.num_params - 1), which="LA",
                                          tol=1e-8, return_eigenvectors=False)), reverse=True)
    per_sample_max = xp.concat([
        xp.max(per_sample_eigenvalues(net, theta, X[i:i + 512], y[i:i + 512]), axis=1)
        for i in range(0, X.shape[0], 512)])
    return {"full_top": top, "sample_max_mean": float(xp.mean(per_sample_max)),
            "sample_max_max": float(xp.max(per_sample_max))}


def sample_spectrum(net: MLP, theta, data: Dataset, index: int = 0) -> dict:
    """Summary of the exact spectrum of one training sample's Hessian, eqs. (24)-(25)."""
    from .curvature import eigenvalues

    mu = to_host(eigenvalues(net, theta, data.X_train[index],
                             data.y_train[index:index + 1]).values).tolist()
    return {"sample": index, "min": min(mu), "max": max(mu),
            "negative": sum(m < 0 for m in mu), "values": mu}


class Diverged(RuntimeError):
    """The training loss became non-finite."""


def _progress(total: int, quiet: bool, desc: str):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def train(config: TrainConfig, data: Dataset | None = None) -> dict:
    """Run a training; returns {"summary": ..., "history": [...]} (see docs/experiments.md).

    Raises:
        Diverged: when the training loss becomes non-finite (the last good checkpoint, if
            any, is kept).
        ValueError, FileNotFoundError: bad configuration, data or checkpoint.
    """
    data = data or load_dataset(config.dataset, config.data_dir, config.seed)
    sizes = config.sizes or [data.num_inputs, 32, data.num_outputs]
    net = MLP(sizes, config.activation, data.loss)
    opt = make_optimizer(config.optimizer, **config.optimizer_kwargs())
    theta, rng, start, history = net.init(config.seed), host_rng(config.seed), 0, []
    state = opt.init(theta)
    if config.resume:
        ckpt = load_checkpoint(config.resume, net)
        theta, state, rng = ckpt["theta"], ckpt["opt_state"], ckpt["rng"]
        start, history = ckpt["epoch"], ckpt["history"]
    seconds = history[-1]["seconds"] if history else 0.0
    N, bs = data.X_train.shape[0], config.batch_size
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(N)
        bar = _progress(math.ceil(N / bs), config.quiet, f"epoch {epoch + 1}/{config.epochs}")
        for i in range(0, N, bs):
            idx = order[i:i + bs]
            theta, state, info = opt.step(theta, state, net, data.X_train[idx], data.y_train[idx])
            xp = namespace(theta)
            if not (math.isfinite(info["loss"]) and bool(xp.all(xp.isfinite(theta)))):
                raise Diverged(f"training diverged in epoch {epoch + 1} (loss {info['loss']}); "
                               "lower the learning rate or raise the damping"
                               + (f"; the last good checkpoint is {config.checkpoint}"
                                  if config.checkpoint else ""))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        seconds += time.perf_counter() - t0
        train_loss, train_acc = evaluate(net, theta, data.X_train, data.y_train)
        test_loss, test_acc = evaluate(net, theta, data.X_test, data.y_test)
        if not math.isfinite(train_loss):
            raise Diverged(f"training diverged in epoch {epoch + 1} (train loss {train_loss})")
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc,
               "test_loss": test_loss, "test_accuracy": test_acc, "seconds": seconds}
        if config.track_spectrum:
            row["spectrum"] = sample_spectrum(net, theta, data)
        history.append(row)
        _report(config, row)
        if config.checkpoint:
            save_checkpoint(config.checkpoint, net, theta, state, rng, epoch + 1, history,
                            asdict(config))
    last = history[-1] if history else {}
    summary = {"dataset": data.name, "optimizer": config.optimizer, "epochs": config.epochs,
               "train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"),
               "test_accuracy": last.get("test_accuracy"), "seconds": last.get("seconds")}
    if config.sharpness:
        summary["sharpness"] = sharpness(net, theta, data.X_train, data.y_train)
    return {"summary": summary, "history": history, "theta": theta, "net": net}


def _report(config: TrainConfig, row: dict) -> None:
    if config.log:
        with Path(config.log).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    if not config.quiet:
        acc = "" if row["test_accuracy"] is None else f"  test acc {row['test_accuracy']:.4f}"
        print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f}  "
              f"test loss {row['test_loss']:.4f}{acc}  {row['seconds']:.1f} s", file=sys.stderr)
