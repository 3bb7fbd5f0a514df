"""Input validation at the public boundary: every message says what was expected and what came.

Only this module (and backend) inspect arrays on the host, and only to report a bad entry.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .backend import device_of, namespace, to_host

__all__ = [
    "check_batch",
    "check_choice",
    "check_finite",
    "check_flag",
    "check_positive",
    "check_real_float",
    "check_sizes",
    "check_vector",
]

REAL_FLOAT_DTYPES = ("float32", "float64")


def check_choice(name: str, value: Any, choices) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"expected {name} in {sorted(choices)}, got {value!r}")


def lookup(kind: str, table: dict, name, cls):
    """``name`` if it is already a ``cls``, else ``table[name]``; ValueError listing the keys."""
    if isinstance(name, cls):
        return name
    if not isinstance(name, str):
        raise TypeError(f"expected {kind} to be one of the names {sorted(table)} or a "
                        f"{cls.__name__}, got {type(name).__name__} {name!r:.60}")
    if name not in table:
        raise ValueError(f"expected {kind} in {sorted(table)}, got {name!r}")
    return table[name]


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (NumPy's included); TypeError otherwise."""
    if not isinstance(value, bool) and type(value).__name__ != "bool":
        raise TypeError(f"expected {name} to be True or False, got {value!r}")
    return bool(value)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} to be a real number, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"expected {name} to be finite and {bound}, got {value!r}")
    return value


def check_sizes(sizes: Any) -> tuple[int, ...]:
    """Return the layer widths (n_0, ..., n_L) as a tuple of positive ints."""
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"expected sizes to be a sequence of ints, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(
            f"expected sizes with at least 2 entries (input and output width), got {list(sizes)}"
        )
    for i, n in enumerate(sizes):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"expected integer widths, got {n!r} at sizes[{i}]")
        if n <= 0:
            raise ValueError(f"expected positive widths, got {n} at sizes[{i}]")
    return tuple(int(n) for n in sizes)


def dtype_name(x: Any) -> str:
    """Readable dtype name of an array (``float64``, ``int32`` ...)."""
    return str(x.dtype).removeprefix("array_api_strict.").rsplit(".", 1)[-1]


def check_real_float(name: str, x: Any) -> None:
    """Raise TypeError unless ``x`` is a float32/float64 array."""
    xp = namespace(x, names=(name,))
    if not xp.isdtype(x.dtype, "real floating") or dtype_name(x) not in REAL_FLOAT_DTYPES:
        raise TypeError(f"expected {name} of dtype float32 or float64, got {dtype_name(x)}")


def check_finite(name: str, x: Any) -> None:
    """Raise ValueError naming the first non-finite entry of ``x``."""
    xp = namespace(x, names=(name,))
    if bool(xp.all(xp.isfinite(x))):
        return
    host = to_host(x)
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(host))[0])
    where = index[0] if len(index) == 1 else index
    raise ValueError(
        f"expected finite values in {name}, got {host[index]} at index {where}"
    )


def check_vector(name: str, v: Any, size: int, like: Any) -> Any:
    """Validate a parameter-space vector: shape (size,), dtype and namespace of ``like``."""
    namespace(like, v, names=("theta", name))
    check_real_float(name, v)
    if tuple(v.shape) != (size,):
        raise ValueError(f"expected {name} of shape ({size},), got {tuple(v.shape)}")
    if v.dtype != like.dtype:
        raise TypeError(
            f"expected {name} of dtype {dtype_name(like)} (theta's), got {dtype_name(v)}")
    check_finite(name, v)
    return v


def check_stack(name: str, v: Any, size: int, like: Any) -> Any:
    """Validate a vector (size,) or a stack of vectors (k, size) like `check_vector`."""
    if getattr(v, "ndim", None) == 2:
        namespace(like, v, names=("theta", name))
        if int(v.shape[1]) != size:
            raise ValueError(f"expected {name} of shape ({size},) or (k, {size}), "
                             f"got {tuple(v.shape)}")
        check_real_float(name, v)
        if v.dtype != like.dtype:
            raise TypeError(
                f"expected {name} of dtype {dtype_name(like)} (theta's), got {dtype_name(v)}")
        check_finite(name, v)
        return v
    if hasattr(v, "shape") and (v.ndim != 1 or tuple(v.shape) != (size,)):
        raise ValueError(f"expected {name} of shape ({size},) or (k, {size}), "
                         f"got {tuple(v.shape)}")
    return check_vector(name, v, size, like)


def _as_array(name: str, value: Any, xp, like) -> Any:
    """Return ``value`` as an array; lists and scalars go to the namespace and device of theta."""
    from array_api_compat import is_array_api_obj

    if is_array_api_obj(value):
        return value
    host = np.asarray(value) if isinstance(value, (list, tuple, numbers.Number)) else None
    if host is None or host.dtype.kind not in "biuf":
        raise TypeError(f"expected {name} to be an array, got {type(value).__name__}")
    if host.dtype.kind == "f":  # Python floats take theta's precision
        return xp.asarray(host, dtype=like.dtype, device=device_of(like))
    return xp.asarray(host, device=device_of(like))


def check_batch(sizes, integer_targets: bool, theta, X, y):
    """Validate (X, y) against a network and theta; return them as X (B, n_0) and y.

    A single sample X of shape (n_0,) is a batch of one (B = 1). ``y`` is (B,) integer class
    labels for cross-entropy and (B, n_L) targets (or (n_L,) for one sample) for mse.
    """
    xp = namespace(theta, names=("theta",))
    X = _as_array("X", X, xp, theta)
    y = _as_array("y", y, xp, theta)
    namespace(theta, X, y, names=("theta", "X", "y"))
    n0, nL = sizes[0], sizes[-1]
    check_real_float("X", X)
    if X.dtype != theta.dtype:
        raise TypeError(
            f"expected X of dtype {dtype_name(theta)} (theta's), got {dtype_name(X)}; "
            "cast one of them (xp.astype)"
        )
    single = X.ndim == 1
    if single:
        X = xp.reshape(X, (1, -1))
    if X.ndim != 2 or X.shape[1] != n0:
        raise ValueError(f"expected X of shape (B, {n0}) or ({n0},), got {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError("expected at least one sample, got X with 0 rows")
    check_finite("X", X)
    B = X.shape[0]
    if integer_targets:
        y = _check_labels(y, B, nL, single, xp)
    else:
        y = _check_targets(y, B, nL, single, theta, xp)
    return X, y


def _check_labels(y, B: int, nL: int, single: bool, xp):
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(
            f"expected integer class labels y for cross_entropy, got dtype {dtype_name(y)}"
        )
    if single and y.ndim == 0:
        y = xp.reshape(y, (1,))
    if tuple(y.shape) != (B,):
        raise ValueError(f"expected labels y of shape ({B},), got {tuple(y.shape)}")
    bad = (y < 0) | (y >= nL)
    if bool(xp.any(bad)):
        host = to_host(y)
        i = int(np.argwhere((host < 0) | (host >= nL))[0, 0])
        raise ValueError(
            f"expected labels in [0, {nL - 1}] (n_L = {nL} classes), "
            f"got {int(host[i])} at index {i}"
        )
    return y


def _check_targets(y, B: int, nL: int, single: bool, theta, xp):
    check_real_float("y", y)
    if y.dtype != theta.dtype:
        raise TypeError(f"expected y of dtype {dtype_name(theta)} (theta's), got {dtype_name(y)}")
    if single and y.ndim == 1:
        y = xp.reshape(y, (1, -1))
    if tuple(y.shape) != (B, nL):
        raise ValueError(
            f"expected targets y of shape ({B}, {nL}) for mse, got {tuple(y.shape)}"
            + ("; for one output column use y[:, None]" if y.ndim == 1 else "")
        )
    check_finite("y", y)
    limit = math.sqrt(float(xp.finfo(y.dtype).max)) / 4
    if bool(xp.any(xp.abs(y) > limit)):
        raise ValueError(f"expected mse targets y with |y| <= {limit:.3g} (larger ones overflow "
                         f"the squared error in {dtype_name(y)}), got max |y| = "
                         f"{float(xp.max(xp.abs(y))):.3g}; rescale the targets")
    return y
