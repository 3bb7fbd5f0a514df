"""Datasets: bundled digits, synthetic sets, IDX loaders and their errors."""

import gzip
import struct

import numpy as np
import pytest

from esso_ref.data import digits, fashion_mnist, load_dataset, mnist, read_idx, spirals, teacher


def test_digits_split_and_standardisation():
    d = digits()
    assert d.X_train.shape == (1438, 64) and d.X_test.shape == (359, 64)
    assert sorted(set(d.y_train.tolist())) == list(range(10)) and d.num_outputs == 10
    assert np.allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    e = digits()
    assert np.array_equal(d.X_test, e.X_test) and np.array_equal(d.y_train, e.y_train)


def test_synthetic_sets_are_seeded():
    a, b, c = spirals(seed=1), spirals(seed=1), spirals(seed=2)
    assert np.array_equal(a.X_train, b.X_train) and not np.array_equal(a.X_train, c.X_train)
    assert a.loss == "cross_entropy" and a.X_train.shape[1] == 2
    t = teacher(n=100, sizes=(3, 5, 2))
    assert t.loss == "mse" and t.y_train.shape == (75, 2) and t.X_test.shape == (25, 3)


def _write_idx(path, array, dtype_code=0x08, gz=False, magic=None, truncate=0):
    header = struct.pack(">BBBB", 0, 0, dtype_code, array.ndim) if magic is None else magic
    header += struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(">u1" if dtype_code == 0x08 else ">i4").tobytes()
    blob = header + body[:len(body) - truncate]
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(blob)


def _mnist_dir(tmp_path, gz=False, n_train=6, n_test=4, labels_train=None):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}",
               rng.integers(0, 256, (n_train, 28, 28)), gz=gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}",
               rng.integers(0, 10, labels_train or n_train), gz=gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}",
               rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test), gz=gz)
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_and_fashion_from_tiny_idx_files(tmp_path, gz):
    d = mnist(_mnist_dir(tmp_path, gz))
    assert d.X_train.shape == (6, 784) and d.X_test.shape == (4, 784) and d.y_train.dtype == np.int64
    f = fashion_mnist(tmp_path)
    assert f.name == "fashion_mnist" and np.array_equal(f.X_train, d.X_train)
    assert load_dataset("mnist", tmp_path).X_train.shape == (6, 784)


def test_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a directory with the mnist IDX files"):
        mnist(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"expected train-images-idx3-ubyte or .*gz"):
        mnist(tmp_path)
    bad = tmp_path / "bad"
    _write_idx(bad, np.zeros((2, 2)), magic=b"\x08\x03\x08\x02")
    with pytest.raises(ValueError, match=r"expected an IDX magic number 0x0000TTNN .* got 08030802"):
        read_idx(bad)
    short = tmp_path / "short"
    _write_idx(short, np.zeros((3, 4)), truncate=5)
    with pytest.raises(ValueError, match=r"is truncated or padded: expected 12 data bytes for shape \(3, 4\), got 7"):
        read_idx(short)
    d = _mnist_dir(tmp_path / "m", labels_train=5) if (tmp_path / "m").mkdir() is None else None
    with pytest.raises(ValueError, match="expected as many train images as labels, got 6 images and 5 labels"):
        mnist(d)
    with pytest.raises(ValueError, match="expected a directory of IDX files for mnist, got none"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match=r"expected dataset in \["):
        load_dataset("cifar")


def test_idx_labels_must_be_integers_in_range(tmp_path):
    """Float labels were truncated to classes, negative ones (int8 files) accepted."""
    d = _mnist_dir(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    values = np.array([0.5, 1.5, 2.0, 3.0, 4.0, 5.0], dtype=">f4")
    labels.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0D, 1, 6) + values.tobytes())
    with pytest.raises(ValueError, match=r"expected integer train labels .* got >f4 values"):
        mnist(d)
    negative = np.array([0, 1, -1, 3, 4, 5], dtype=np.int8)
    labels.write_bytes(struct.pack(">BBBBI", 0, 0, 0x09, 1, 6) + negative.tobytes())
    with pytest.raises(ValueError, match=r"expected train labels in \[0, 9\], got values from -1 to 5"):
        mnist(d)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_a_float_idx_file_with_a_non_finite_value_is_named(tmp_path, value):
    images = np.zeros((2, 3, 3), dtype=">f4")
    images[1, 2, 0] = value
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 0x0D, 3, 2, 3, 3) + images.tobytes())
    with pytest.raises(ValueError, match=rf"expected finite values in {path}, got "
                                         rf"{value} at index \(1, 2, 0\)"):
        read_idx(path)


@pytest.mark.parametrize("name", ["digits", "spirals", "teacher"])
def test_a_directory_for_a_bundled_dataset_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match=f"expected no directory for {name}"):
        load_dataset(name, tmp_path)
