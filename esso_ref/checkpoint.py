"""Checkpoints: one .npz holding the spec, theta, optimizer state, RNG state, epoch and history.

Resuming from a checkpoint continues bit for bit as the uninterrupted run would have. Every
checkpoint carries a SHA-256 of its content; a damaged file is reported by the kind of damage
(empty, not an archive, truncated or corrupt archive, missing entries, content changed).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .backend import to_host
from .mlp import MLP

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = 2
_META_KEYS = ("format", "sizes", "activation", "loss", "bias", "epoch", "opt_scalars", "rng",
              "history", "config", "sha256")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, with the kind of damage in the message."""


def _digest(meta: dict, arrays: dict) -> str:
    """SHA-256 of the metadata (without its digest) and of every array's dtype, shape, bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"},
                                  sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, net: MLP, theta, opt_state: dict, rng: np.random.Generator,
                    epoch: int, history: list, config: dict) -> None:
    """Write a checkpoint atomically (a unique temporary file, flushed, then renamed)."""
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
    meta["sha256"] = _digest(meta, arrays)
    atomic_write(path, lambda fh: np.savez(fh, meta=np.array(json.dumps(meta)), **arrays))


def _read(path: Path) -> tuple[dict, dict]:
    """(meta, arrays) of the file, or CheckpointError naming the damage."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); its write was cut short")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"expected an esso_ref checkpoint (.npz archive) at {path}, got a "
                              "file of another kind, or one truncated before its end")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is damaged: its archive fails to read "
                              f"({err}); use an earlier copy or start again") from None
    if "meta" not in arrays:
        raise CheckpointError(f"expected an esso_ref checkpoint in {path}, got an .npz without "
                              "its metadata")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        raise CheckpointError(f"checkpoint {path} is damaged: its metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} is damaged: its metadata is not an object")
    return meta, arrays


def _validate(path: Path, meta: dict, arrays: dict) -> None:
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"expected checkpoint format {FORMAT} in {path}, got "
                              f"{meta.get('format')!r}; it was written by another esso_ref")
    missing = [k for k in _META_KEYS if k not in meta] + (["theta"] * ("theta" not in arrays))
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: it lacks {missing}")
    if meta["sha256"] != _digest(meta, arrays):
        raise CheckpointError(f"checkpoint {path} is damaged: its content does not match its "
                              "SHA-256 (modified after writing)")
    epoch, history = meta["epoch"], meta["history"]
    if not (isinstance(epoch, int) and epoch >= 0 and isinstance(history, list)
            and len(history) == epoch):
        raise CheckpointError(f"checkpoint {path} is inconsistent: epoch {epoch!r} with "
                              f"{len(history) if isinstance(history, list) else '?'} history rows")
    if arrays["theta"].dtype != np.float64:
        raise CheckpointError(f"expected float64 theta in checkpoint {path}, got "
                              f"{arrays['theta'].dtype}")


def load_checkpoint(path, net: MLP | None = None) -> dict:
    """Read a checkpoint; with ``net``, check that it holds that architecture.

    Returns:
        dict with ``theta``, ``opt_state``, ``rng`` (a Generator in the saved state),
        ``epoch``, ``history``, ``config`` and ``net`` (the saved architecture).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError (a ValueError): a damaged or foreign file, one line per kind of
            damage; ValueError: a checkpoint of another architecture than ``net``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a checkpoint at {path}, found none")
    meta, arrays = _read(path)
    _validate(path, meta, arrays)
    saved = MLP(meta["sizes"], meta["activation"], meta["loss"], bias=meta["bias"])
    if net is not None and repr(net) != repr(saved):
        raise ValueError(f"expected a checkpoint of {net!r}, got one of {saved!r} in {path}")
    if arrays["theta"].shape != (saved.num_params,):
        raise CheckpointError(f"checkpoint {path} is inconsistent: theta of shape "
                              f"{arrays['theta'].shape} for P = {saved.num_params}")
    opt_state = dict(meta["opt_scalars"])
    opt_state.update({k.removeprefix("opt__"): v for k, v in arrays.items()
                      if k.startswith("opt__")})
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return {"theta": arrays["theta"], "opt_state": opt_state, "rng": rng,
            "epoch": meta["epoch"], "history": meta["history"], "config": meta["config"],
            "net": saved}

