"""Array backends: which namespace an array lives in, and moving arrays between them.

Library code never imports an array library for data; it asks `namespace` for the
namespace of its inputs (Python array API standard, bridged by ``array_api_compat``).
NumPy is the default host backend; CuPy is imported lazily, only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "device_of",
    "get_namespace",
    "host_integers",
    "host_normal",
    "host_rng",
    "host_uniform",
    "namespace",
    "namespace_name",
    "quiet_float_errors",
    "to_host",
    "to_namespace",
    "xp_of",
]

_MODULES = {"numpy": "numpy", "cupy": "cupy", "array_api_strict": "array_api_strict"}


def namespace_name(xp: ModuleType) -> str:
    """Return a short, readable name of an array namespace (``"numpy"``, ``"cupy"``, ...)."""
    name = getattr(xp, "__name__", str(xp))
    return name.removeprefix("array_api_compat.")


_BY_TYPE: dict[type, ModuleType] = {}


def xp_of(x: Any) -> ModuleType:
    """``array_api_compat.array_namespace(x)`` for one array, remembered per array type.

    The namespace depends only on the type of the array, and the curvature routes ask for it
    dozens of times per call: the lookup is done once per type.
    """
    kind = type(x)
    xp = _BY_TYPE.get(kind)
    if xp is None:
        xp = _native(array_api_compat.array_namespace(x))
        if array_api_compat.is_numpy_namespace(xp) or not isinstance(x, np.ndarray):
            _BY_TYPE[kind] = xp  # (a NumPy array of JAX's float0 dtype maps to JAX: not cached)
    return xp


def _native(xp: ModuleType) -> ModuleType:
    """NumPy itself for its compat wrapper: NumPy 2's namespace follows the standard.

    The wrapper adds a Python call to every operation (about a microsecond each, hundreds per
    small curvature call); other namespaces keep ``array_api_compat``'s.
    """
    return np if array_api_compat.is_numpy_namespace(xp) else xp


def namespace(*arrays: Any, names: tuple[str, ...] | None = None) -> ModuleType:
    """Return the one array namespace shared by ``arrays`` (``None`` entries are ignored).

    Args:
        *arrays: arrays of any array-API library.
        names: argument names, used in the error message.

    Returns:
        The array-API-compatible namespace of the arrays.

    Raises:
        TypeError: if the arrays come from two different namespaces, or one is not an array.
    """
    names = names or tuple(f"argument {i}" for i in range(len(arrays)))
    found: list[tuple[str, ModuleType]] = []
    for label, x in zip(names, arrays, strict=True):
        if x is None:
            continue
        if not array_api_compat.is_array_api_obj(x):
            raise TypeError(f"expected {label} to be an array, got {type(x).__name__} "
                            "(convert it with numpy.asarray, or your array library's asarray)")
        found.append((label, xp_of(x)))
    if not found:
        raise TypeError("expected at least one array to take the namespace from, got none")
    first_label, xp = found[0]
    for label, other in found[1:]:
        if other is not xp and namespace_name(other) != namespace_name(xp):
            raise TypeError(
                f"arrays from two namespaces in one call: {first_label} is "
                f"{namespace_name(xp)} but {label} is {namespace_name(other)}; "
                "move them to one backend with esso_ref.backend.to_namespace"
            )
    return xp


def device_of(x: Any) -> Any:
    """Return the device an array lives on (as the array API's ``x.device``)."""
    return array_api_compat.device(x)


def get_namespace(xp: str | ModuleType | None) -> ModuleType:
    """Return the array-API namespace named by ``xp``.

    Args:
        xp: ``None`` or ``"numpy"`` (default), ``"cupy"``, ``"array_api_strict"``, or a module.

    Returns:
        The array-API-compatible namespace.

    Raises:
        ValueError: for an unknown name.
        ImportError: when the named library is not installed (e.g. CuPy without a GPU build).
    """
    if xp is None:
        xp = "numpy"
    if isinstance(xp, str):
        if xp not in _MODULES:
            raise ValueError(f"expected a backend in {sorted(_MODULES)}, got {xp!r}")
        try:
            module = importlib.import_module(_MODULES[xp])
        except ImportError as err:
            hint = " (install esso_ref[cuda12] or esso_ref[cuda13])" if xp == "cupy" else ""
            raise ImportError(f"backend {xp!r} is not installed{hint}") from err
        xp = module
    return _native(array_api_compat.array_namespace(xp.asarray([0.0])))


def to_host(x: Any) -> np.ndarray:
    """Copy an array of any backend to a NumPy array on the host.

    Args:
        x: a NumPy, CuPy, PyTorch or array-api-strict array.

    Returns:
        The NumPy array (``x`` itself when it already is one).

    Raises:
        TypeError: when ``x`` is not an array.
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_array_api_strict_namespace(xp_of(x)):
        import array_api_strict

        x = array_api_strict.asarray(x, device=array_api_strict.Device("CPU_DEVICE"))
    return np.asarray(x)


def to_namespace(x: Any, xp: str | ModuleType | None = None, device: Any = None) -> Any:
    """Copy an array (or array-like) to the namespace ``xp`` and, optionally, a device.

    Args:
        x: array of any backend, or a nested list / scalar.
        xp: target namespace (name or module); NumPy when ``None``.
        device: target device of that namespace; its default when ``None``.

    Returns:
        The array in the target namespace.

    Raises:
        ValueError: for an unknown backend name.
        ImportError: when the target backend is not installed.
    """
    target = get_namespace(xp) if not hasattr(xp, "asarray") else xp
    host = to_host(x) if array_api_compat.is_array_api_obj(x) else np.asarray(x)
    if device is None:
        return target.asarray(host)
    return target.asarray(host, device=device)


def host_uniform(seed: int, parts: list[tuple[int, float]]) -> np.ndarray:
    """Seeded uniform draws on the host: for each (count, bound), U(-bound, bound)^count.

    Uses NumPy's PCG64 generator (``numpy.random.default_rng(seed)``), never global state.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    return np.concatenate([rng.uniform(-bound, bound, count) for count, bound in parts])


def host_normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Seeded standard normal draws on the host (NumPy's PCG64 generator)."""
    return np.random.default_rng(int(seed)).standard_normal(shape)


def host_rng(seed: int) -> np.random.Generator:
    """A seeded NumPy PCG64 generator for host-side choices (batch order, draws)."""
    return np.random.default_rng(int(seed))


def host_integers(seed: int, high: int, size: int) -> np.ndarray:
    """Seeded integers uniform on [0, high) on the host (NumPy's PCG64 generator)."""
    return np.random.default_rng(int(seed)).integers(0, high, size)


def quiet_float_errors(xp: ModuleType):
    """A context in which NumPy reports no overflow or invalid-value warnings.

    For results that the caller checks for finiteness itself. array_api_strict computes with
    NumPy underneath and is silenced the same way; CuPy does not warn, so nothing is set.
    """
    if array_api_compat.is_numpy_namespace(xp) or array_api_compat.is_array_api_strict_namespace(
            xp):
        return np.errstate(all="ignore")
    return contextlib.nullcontext()
