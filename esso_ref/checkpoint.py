"""Checkpoints: one .npz holding the spec, theta, optimizer state, RNG state, epoch and history.

Resuming from a checkpoint continues bit for bit as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .backend import to_host
from .mlp import MLP

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT = 1


def save_checkpoint(path, net: MLP, theta, opt_state: dict, rng: np.random.Generator,
                    epoch: int, history: list, config: dict) -> None:
    """Write a checkpoint atomically (a temporary file, then a rename)."""
    arrays = {"theta": to_host(theta)}
    scalars = {}
    for key, value in opt_state.items():
        if value is None or isinstance(value, (int, float)):
            scalars[key] = value
        else:
            arrays[f"opt__{key}"] = to_host(value)
    meta = {"format": FORMAT, "sizes": list(net.sizes), "activation": net.activation,
            "loss": net.loss_name, "bias": net.bias, "epoch": epoch, "opt_scalars": scalars,
            "rng": rng.bit_generator.state, "history": history, "config": config}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def load_checkpoint(path, net: MLP | None = None) -> dict:
    """Read a checkpoint; with ``net``, check that it holds that architecture.

    Returns:
        dict with ``theta``, ``opt_state``, ``rng`` (a Generator in the saved state),
        ``epoch``, ``history``, ``config`` and ``net`` (the saved architecture).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an esso_ref checkpoint, or one of another architecture than ``net``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a checkpoint at {path}, found none")
    with np.load(path, allow_pickle=False) as data:
        if "meta" not in data.files:
            raise ValueError(f"expected an esso_ref checkpoint in {path}, got an .npz without "
                             "its metadata")
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    saved = MLP(meta["sizes"], meta["activation"], meta["loss"], bias=meta["bias"])
    if net is not None and repr(net) != repr(saved):
        raise ValueError(f"expected a checkpoint of {net!r}, got one of {saved!r} in {path}")
    opt_state = dict(meta["opt_scalars"])
    opt_state.update({k.removeprefix("opt__"): v for k, v in arrays.items()
                      if k.startswith("opt__")})
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return {"theta": arrays["theta"], "opt_state": opt_state, "rng": rng,
            "epoch": meta["epoch"], "history": meta["history"], "config": meta["config"],
            "net": saved}
