"""What an analysis is computed for: the network, theta, the samples, and their fingerprints.

A :class:`Problem` is resolved once, in the driver, from an :class:`AnalysisConfig`; its
``identity`` (network, theta SHA-256, data set content hash, ...) is written to the store and
compared on every rerun, so that a store is never filled by two different runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_choice
from ..mlp import MLP
from .compute import BLOCK

__all__ = ["AnalysisConfig", "Problem", "resolve"]

SPLITS = ("train", "test")


@dataclass
class AnalysisConfig:
    """Everything an analysis depends on (the flags of ``esso-ref analyze``).

    Attributes:
        dataset: ``digits``, ``spirals``, ``teacher``, ``mnist`` or ``fashion_mnist``.
        data_dir: folder of IDX files (mnist, fashion_mnist).
        split: ``"train"`` or ``"test"``.
        limit: analyse only the first ``limit`` samples of the split (None: all).
        sizes: widths (default ``[n_0, 32, n_out]`` of the data set); ignored with a checkpoint.
        activation, bias: the network (ignored with a checkpoint).
        seed: init seed of theta, and of the synthetic data sets.
        checkpoint: take the network and theta from this ``esso-ref train`` checkpoint.
        dtype: ``"float64"`` or ``"float32"``.
        ggn: also compute the Gauss-Newton spectra.
        batch_size: B of the disjoint mini-batch spectra (None: none); needs B r <= P.
        chunk_size: samples per store chunk, a multiple of 16 (None: 256, or the existing
            store's).
        backend: ``"numpy"`` or ``"cupy"`` (arrays move to the backend inside each task).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    split: str = "train"
    limit: int | None = None
    sizes: list[int] | None = None
    activation: str = "tanh"
    bias: bool = True
    seed: int = 0
    checkpoint: str | None = None
    dtype: str = "float64"
    ggn: bool = False
    batch_size: int | None = None
    chunk_size: int | None = None
    backend: str = "numpy"
    extra: dict = field(default_factory=dict)

    @property
    def curvatures(self) -> tuple[str, ...]:
        """The curvature matrices analysed."""
        return ("hessian", "ggn") if self.ggn else ("hessian",)


@dataclass
class Problem:
    """A resolved analysis: the network, theta and samples (host NumPy arrays)."""

    net: MLP
    theta: np.ndarray
    X: np.ndarray
    y: np.ndarray
    identity: dict

    @property
    def num_samples(self) -> int:
        """N."""
        return int(self.X.shape[0])

    def net_spec(self) -> dict:
        """A picklable description of the network, rebuilt inside each task."""
        return {"sizes": list(self.net.sizes), "activation": self.net.activation,
                "loss": self.net.loss_name, "bias": self.net.bias}


def sha256(*arrays) -> str:
    """SHA-256 of the arrays' dtypes, shapes and C-order bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)  # the C-order bytes, without copying them
    return h.hexdigest()


def _network(config: AnalysisConfig, data) -> tuple[MLP, np.ndarray, str | None]:
    """(net, theta, checkpoint path) at init or from a checkpoint."""
    if config.checkpoint:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(config.checkpoint)
        return ckpt["net"], np.asarray(ckpt["theta"]), str(Path(config.checkpoint).resolve())
    net = MLP(config.sizes or [data.num_inputs, 32, data.num_outputs], config.activation,
              data.loss, bias=config.bias)
    return net, np.asarray(net.init(config.seed)), None


def _check_config(config: AnalysisConfig) -> None:
    check_choice("split", config.split, SPLITS)
    check_choice("dtype", config.dtype, ("float64", "float32"))
    check_choice("backend", config.backend, ("numpy", "cupy"))
    for name in ("limit", "batch_size", "chunk_size"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"expected {name} to be a positive integer or None, got {value!r}")
    if config.chunk_size is not None and config.chunk_size % BLOCK:
        raise ValueError(f"expected a chunk size that is a multiple of {BLOCK} (each stacked "
                         f"call covers the same {BLOCK} samples), got {config.chunk_size}")


def resolve(config: AnalysisConfig, data=None) -> Problem:
    """Load the data and the network of ``config`` and fingerprint them.

    Raises:
        ValueError: unknown names, a network that does not fit the data, or B r > P.
        FileNotFoundError: missing IDX files or checkpoint.
    """
    from ..data import load_dataset

    _check_config(config)
    data = data or load_dataset(config.dataset, config.data_dir, config.seed)
    X, y = (data.X_train, data.y_train) if config.split == "train" else (data.X_test,
                                                                          data.y_test)
    X, y = X[:config.limit], y[:config.limit]
    net, theta, ckpt = _network(config, data)
    if (net.sizes[0], net.sizes[-1], net.loss_name) != (X.shape[1], data.num_outputs, data.loss):
        hint = ("; a checkpoint keeps the data set it was trained on: pass it as --dataset"
                if ckpt else "")
        raise ValueError(f"expected a network from {X.shape[1]} to {data.num_outputs} with loss "
                         f"{data.loss} for {data.name}, got {net!r}{hint}")
    X, theta = X.astype(config.dtype, copy=False), theta.astype(config.dtype)
    if data.loss == "mse":
        y = y.astype(config.dtype)
    identity = {"sizes": list(net.sizes), "activation": net.activation, "loss": net.loss_name,
                "bias": net.bias, "dtype": config.dtype, "theta_sha256": sha256(theta),
                "dataset": data.name, "dataset_sha256": sha256(X, y), "split": config.split,
                "num_samples": int(X.shape[0]), "num_params": net.num_params,
                "num_classes": data.num_outputs if data.loss == "cross_entropy" else None,
                "curvatures": list(config.curvatures), "batch_size": config.batch_size}
    problem = Problem(net, theta, X, y, identity)
    _check_batch(problem, config)
    problem.identity["checkpoint"] = ckpt
    return problem


def _check_batch(problem: Problem, config: AnalysisConfig) -> None:
    B = config.batch_size
    if B is None:
        return
    r, P = problem.net.rank_bound, problem.net.num_params
    if B * r > P:
        raise ValueError(f"expected mini-batches with B r <= P = {P} (r = {r}), got "
                         f"B = {B}; use --batch-size {max(P // r, 1)} or less")
    if B > problem.num_samples:
        raise ValueError(f"expected --batch-size at most the {problem.num_samples} samples, "
                         f"got {B}")
