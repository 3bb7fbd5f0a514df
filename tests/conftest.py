"""Shared fixtures: hypothesis profiles, backends and tolerances in eps units."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

EPS = float(np.finfo(np.float64).eps)


def _has_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


HAS_GPU = _has_gpu()


def _backends():
    import array_api_strict as xs

    out = [
        pytest.param(("numpy", None), id="numpy"),
        pytest.param(("array_api_strict", xs.Device("CPU_DEVICE")), id="strict-cpu"),
        pytest.param(("array_api_strict", xs.Device("device1")), id="strict-device1"),
        pytest.param(("cupy", None), id="cupy",
                     marks=[pytest.mark.cupy,
                            pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU and CuPy")]),
    ]
    return out


@pytest.fixture(params=_backends())
def backend(request):
    """(namespace name, device) of every array backend under test."""
    return request.param


def host(x):
    """Any backend's array as NumPy."""
    from esso_ref import to_host

    return to_host(x)


def relerr(a, b) -> float:
    """max|a - b| / max|b| on the host."""
    a, b = host(a), host(b)
    scale = np.max(np.abs(b)) if b.size else 0.0
    err = np.max(np.abs(a - b)) if a.size else 0.0
    return float(err / scale) if scale > 0 else float(err)
