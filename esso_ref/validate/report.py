"""The report of `check_implementation`, with reproducers of failing cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..mlp import MLP
from ..verification.report import Report

__all__ = ["ImplementationReport", "load_reproducer", "save_reproducer"]


class ImplementationReport(Report):
    """A `Report` with one row per quantity (its worst case over all cases).

    ``meta["worst"][quantity]`` holds the worst case: its recipe (case name, sizes,
    activation, loss, bias, batch, seed), ``error_eps``, ``tol_eps``, the message of a raised
    exception or a wrong shape, and, when it failed, ``path``: a saved ``.npz`` reproducer
    (see `load_reproducer`).
    """

    def table(self) -> str:
        """The verify-style table, then one reproducer line per failed quantity."""
        lines = [super().table()]
        for name, worst in self.meta.get("worst", {}).items():
            if worst.get("passed") is False:
                recipe = ", ".join(f"{k}={worst[k]}" for k in ("case", "sizes", "activation",
                                                               "loss", "bias", "batch", "seed"))
                why = worst["message"] or f"error {worst['error_eps']:.3g} eps > " \
                                          f"{worst['tol_eps']:g} eps"
                lines.append(f"FAIL {name}: {why}\n  on {recipe}\n  reproducer: {worst['path']}")
        return "\n".join(lines)


def save_reproducer(directory: str | Path, quantity: str, case, got, expected, extra: dict):
    """Write ``quantity__case.npz`` (inputs, recipe, the user's and esso_ref's values)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{quantity}__{case.name.replace('/', '_')}.npz"
    arrays = {"theta": case.theta, "X": case.X, "y": case.y, "v": case.v,
              "recipe": np.array(json.dumps({**case.describe(), **extra}))}
    for key, value in (("got", got), ("expected", expected)):
        if value is not None:
            arrays[key] = np.asarray(value)
    np.savez(path, **arrays)
    return str(path)


def load_reproducer(path: str | Path):
    """Read a saved reproducer back.

    Returns:
        (net, theta, X, y, extras): the network and inputs of the failing case; extras holds
        ``v``, the recipe (``damping``, ``spectral``, ...), and ``got`` / ``expected`` when saved.
    """
    with np.load(path) as data:
        recipe = json.loads(str(data["recipe"]))
        arrays = {k: data[k] for k in data.files if k != "recipe"}
    net = MLP(recipe["sizes"], recipe["activation"], recipe["loss"], bias=recipe["bias"])
    extras = {"v": arrays["v"], **recipe}
    extras.update({k: arrays[k] for k in ("got", "expected") if k in arrays})
    return net, arrays["theta"], arrays["X"], arrays["y"], extras
