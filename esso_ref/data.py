"""Datasets, all offline.

Bundled digits, users' own MNIST / Fashion-MNIST IDX files, and seeded synthetic spirals
(classification) and teacher (regression) problems.

Every loader returns a `Dataset` of float64 NumPy arrays (move them to another backend
with `esso_ref.to_namespace`).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "Dataset", "digits", "fashion_mnist", "load_dataset", "mnist",
           "read_idx", "spirals", "teacher"]


@dataclass
class Dataset:
    """Train / test arrays of a dataset.

    Attributes:
        name: dataset name.
        X_train, y_train, X_test, y_test: inputs (float64, (N, n_0)) and labels (int64, (N,))
            or targets (float64, (N, n_out)).
        loss: the matching loss, ``"cross_entropy"`` or ``"mse"``.
        num_outputs: n_L (classes for cross-entropy).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    loss: str
    num_outputs: int

    @property
    def num_inputs(self) -> int:
        """n_0."""
        return int(self.X_train.shape[1])


def _standardise(train: np.ndarray, test: np.ndarray):
    """Zero mean, unit variance per feature, with the training set's statistics."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def digits(test_fraction: float = 0.2) -> Dataset:
    """The 1,797 8x8 handwritten digits (UCI ML hand-written digits, as shipped by scikit-learn).

    Split: a fixed permutation (``numpy.random.default_rng(0)``); the last
    ``round(test_fraction * 1797)`` samples (359 by default) are the test set. Features are
    standardised with the training set's mean and standard deviation.
    """
    with resources.files("esso_ref.datasets").joinpath("digits.npz").open("rb") as fh:
        data = np.load(fh)
        X, y = data["images"].astype(np.float64), data["labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(X.shape[0])
    n_test = round(test_fraction * X.shape[0])
    train, test = order[:-n_test], order[-n_test:]
    X_train, X_test = _standardise(X[train], X[test])
    return Dataset("digits", X_train, y[train], X_test, y[test], "cross_entropy", 10)


def spirals(n: int = 600, classes: int = 3, noise: float = 0.2, seed: int = 0,
            test_fraction: float = 0.25) -> Dataset:
    """Interleaved 2-D spirals, one arm per class, Gaussian noise; seeded."""
    rng = np.random.default_rng(seed)
    per = n // classes
    t = np.linspace(0.0, 1.0, per)
    Xs, ys = [], []
    for k in range(classes):
        angle = 4.0 * t + 2.0 * math.pi * k / classes + noise * rng.standard_normal(per)
        Xs.append(np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1))
        ys.append(np.full(per, k))
    X, y = np.concatenate(Xs), np.concatenate(ys).astype(np.int64)
    order = rng.permutation(X.shape[0])
    n_test = round(test_fraction * X.shape[0])
    X, y = X[order] * 2.0, y[order]
    return Dataset("spirals", X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:],
                   "cross_entropy", classes)


def teacher(n: int = 600, sizes=(8, 16, 4), activation: str = "tanh", noise: float = 0.01,
            seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """Regression targets from a random teacher MLP (``MLP(sizes).init(seed + 1)``) plus noise."""
    from .mlp import MLP

    rng = np.random.default_rng(seed)
    net = MLP(list(sizes), activation, "mse")
    theta = net.init(seed + 1) * 2.0
    X = rng.standard_normal((n, sizes[0]))
    Y = net.predict(theta, X) + noise * rng.standard_normal((n, sizes[-1]))
    n_test = round(test_fraction * n)
    return Dataset("teacher", X[:-n_test], Y[:-n_test], X[-n_test:], Y[-n_test:], "mse",
                   sizes[-1])


# ---- IDX files (MNIST, Fashion-MNIST) --------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (raw or .gz): magic 0x0000 | type | ndim, big-endian dims, data.

    Raises:
        FileNotFoundError: no such file.
        ValueError: wrong magic number, unknown data type, a truncated file, or a non-finite
            value in a float file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected an IDX file at {path}, found none")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"expected an IDX magic number 0x0000TTNN in {path}, "
                         f"got {raw[:4].hex() or 'an empty file'}")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_TYPES:
        raise ValueError(f"expected an IDX data type in {sorted(_IDX_TYPES)}, got {dtype:#x} "
                         f"in {path}")
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated: its header lists {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dt = np.dtype(_IDX_TYPES[dtype])
    expected = int(np.prod(dims)) * dt.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path} is truncated or padded: expected {expected} data bytes for "
                         f"shape {dims}, got {len(body)}")
    data = np.frombuffer(body, dtype=dt).reshape(dims)
    if dt.kind == "f" and not np.all(np.isfinite(data)):
        bad = np.argwhere(~np.isfinite(data))[0]
        raise ValueError(f"expected finite values in {path}, got {data[tuple(bad)]} at index "
                         f"{tuple(int(i) for i in bad)}")
    return data


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed for .gz; ValueError naming the file when damaged."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except EOFError:
        raise ValueError(f"{path} is truncated: its gzip stream ends early") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"expected a gzip-compressed IDX file at {path}, got a file that is "
                         f"not valid gzip ({err})") from None


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"expected {stem} or {stem}.gz in {directory}, found neither")


def _idx_dataset(name: str, directory) -> Dataset:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"expected a directory with the {name} IDX files at "
                                f"{directory}, found none")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(f"expected {prefix} images of 3 dimensions and labels of 1, got "
                             f"{images.ndim} and {labels.ndim}")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"expected as many {prefix} images as labels, got "
                             f"{images.shape[0]} images and {labels.shape[0]} labels")
        if images.shape[0] == 0:
            raise ValueError(f"expected at least one {prefix} image in {directory}, got 0")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"expected integer {prefix} labels (IDX type 0x08, 0x09, 0x0B or "
                             f"0x0C), got {labels.dtype.str} values")
        if labels.size and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise ValueError(f"expected {prefix} labels in [0, 9], got values from "
                             f"{int(labels.min())} to {int(labels.max())}")
        parts[split] = (images.reshape(images.shape[0], -1).astype(np.float64) / 255.0,
                        labels.astype(np.int64))
    if parts["train"][0].shape[1] != parts["test"][0].shape[1]:
        raise ValueError(f"expected train and test images of the same size in {directory}, got "
                         f"{parts['train'][0].shape[1]} and {parts['test'][0].shape[1]} pixels")
    X_train, X_test = _standardise(parts["train"][0], parts["test"][0])
    return Dataset(name, X_train, parts["train"][1], X_test, parts["test"][1],
                   "cross_entropy", 10)


def mnist(directory) -> Dataset:
    """MNIST from the user's IDX files (train-images-idx3-ubyte[.gz], ... t10k-...)."""
    return _idx_dataset("mnist", directory)


def fashion_mnist(directory) -> Dataset:
    """Fashion-MNIST from the user's IDX files (same file names as MNIST)."""
    return _idx_dataset("fashion_mnist", directory)


DATASETS = ("digits", "spirals", "teacher", "mnist", "fashion_mnist")


def load_dataset(name: str, directory=None, seed: int = 0) -> Dataset:
    """Load a dataset by name; ``directory`` is needed for mnist and fashion_mnist."""
    from ._checks import check_choice

    check_choice("dataset", name, DATASETS)
    if name in ("mnist", "fashion_mnist"):
        if directory is None:
            raise ValueError(f"expected a directory of IDX files for {name}, got none "
                             "(pass --data-dir DIR)")
        return mnist(directory) if name == "mnist" else fashion_mnist(directory)
    if directory is not None:
        raise ValueError(f"expected no directory for {name} (bundled or generated; a directory "
                         f"of IDX files is for mnist and fashion_mnist), got {str(directory)!r}")
    if name == "digits":
        return digits()
    return spirals(seed=seed) if name == "spirals" else teacher(seed=seed)
