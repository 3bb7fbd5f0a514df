"""Golden cases: versioned reference values for validating other curvature implementations.

``esso-ref export-cases DIR`` (or [`export`][esso_ref.golden.export]) writes
``DIR/manifest.json`` and one ``.npz`` per case. Each case holds its inputs (network spec,
theta, X, y, a direction v, dampings) and esso_ref's outputs: loss, gradient, H v, the dense
Hessian (P <= 2000), the structured eigenvalues and zero count, every layer block's
eigenvalues, and Newton directions for each method x curvature x spectral x damping.
[`load`][esso_ref.golden.load] reads them back (checking the schema version and every file's
SHA-256), and [`compare`][esso_ref.golden.compare] checks another implementation's outputs
against a case, returning the same [`Report`][esso_ref.verification.Report] as ``er.verify``.

The files are byte-for-byte deterministic: fixed case list, seeds, key order and zip
timestamps.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._files import atomic_write, make_folder, probe_folder
from ._manifest import SCHEMA_VERSION, manifest_digest, read_manifest
from .curvature import (
    NotDescentWarning,
    SingularCurvatureError,
    eigenvalues,
    hessian,
    hvp,
    newton_direction,
)
from .mlp import MLP
from .problems import random_problem
from .verification.report import Check, Report

__all__ = ["SCHEMA_VERSION", "GoldenCase", "compare", "default_cases", "export", "load",
           "outputs"]

DAMPINGS = (1e-2, 1.0)
METHODS = ("structured", "layerwise", "dense")
SPECTRALS = ("none", "abs", "clip")
MAX_DENSE = 2000
EPS = float(np.finfo(np.float64).eps)
# tolerances in eps units for other implementations compared with the references
TOLERANCES = {"loss": 64.0, "gradient": 4500.0, "hvp": 4500.0, "hessian": 4500.0,
              "newton": 4.5e7}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class GoldenCase:
    """One golden case: its network, inputs and reference outputs.

    Attributes:
        name: case name (also the file stem).
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta, X, y, v: inputs (NumPy, float64; y int64 labels or float64 targets).
        dampings: the dampings of the Newton references.
        reference: quantity name -> reference array.
    """

    name: str
    net: MLP
    theta: np.ndarray
    X: np.ndarray
    y: np.ndarray
    v: np.ndarray
    dampings: tuple[float, ...]
    reference: dict = field(default_factory=dict)

    @property
    def rank_bound(self) -> int:
        """B r: rows of the batch factor A."""
        return self.X.shape[0] * self.net.rank_bound


@dataclass(frozen=True)
class _Spec:
    name: str
    sizes: tuple[int, ...]
    activation: str
    loss: str
    bias: bool
    batch: int
    edge: str = ""


def default_cases() -> list[_Spec]:
    """The fixed case list: every activation x loss, bias on/off, batch 1 and 3, edge cases."""
    from .activations import ACTIVATIONS
    from .losses import LOSSES

    out = []
    for act in sorted(ACTIVATIONS):
        for loss in sorted(LOSSES):
            out.append(_Spec(f"{act}-{loss}-B1", (4, 5, 3), act, loss, True, 1))
            out.append(_Spec(f"{act}-{loss}-nobias-B3", (3, 4, 3, 2), act, loss, False, 3))
    out += [
        _Spec("one-layer", (5, 3), "tanh", "cross_entropy", True, 2),
        _Spec("deep", (3, 4, 4, 4, 2), "tanh", "mse", True, 2),
        _Spec("dead-relu", (3, 5, 3), "relu", "cross_entropy", True, 3, "dead_relu"),
        _Spec("zero-gradient", (3, 4, 2), "sigmoid", "mse", True, 2, "zero_gradient"),
        _Spec("large-logits", (3, 4, 3), "tanh", "cross_entropy", True, 2, "large_logits"),
    ]
    return out


def _inputs(spec: _Spec, seed: int):
    net = MLP(list(spec.sizes), spec.activation, spec.loss, bias=spec.bias)
    theta, X, y = random_problem(net, spec.batch, seed)
    if spec.edge == "dead_relu":
        theta[net.layer_slice(1)][-net.sizes[1]:][:3] = -50.0  # b_1: three units never fire
    elif spec.edge == "zero_gradient":
        y = net.predict(theta, X)
    elif spec.edge == "large_logits":
        theta[net.layer_slice(net.L)] *= 1e3
    v = np.random.default_rng(seed + 3).standard_normal(net.num_params)
    return net, theta, X, y, v


def newton_key(method: str, curvature: str, spectral: str, damping: float) -> str:
    """Reference key of a Newton direction, e.g. ``newton__structured__hessian__abs__0.01``."""
    return f"newton__{method}__{curvature}__{spectral}__{damping:g}"


def outputs(case: GoldenCase, max_dense: int = MAX_DENSE) -> dict[str, np.ndarray]:
    """esso_ref's outputs for a case, under the reference keys."""
    net, args = case.net, (case.theta, case.X, case.y)
    out = {"loss": np.asarray(net.loss(*args)), "gradient": net.gradient(*args),
           "hvp": hvp(net, *args, case.v)}
    if net.num_params <= max_dense:
        out["hessian"] = hessian(net, *args)
    spec = eigenvalues(net, *args)
    out["eigenvalues"], out["eigenvalues_num_zeros"] = spec.values, np.asarray(spec.num_zeros)
    for l, block in enumerate(eigenvalues(net, *args, method="layerwise"), start=1):
        out[f"layer{l}_eigenvalues"] = block.values
        out[f"layer{l}_num_zeros"] = np.asarray(block.num_zeros)
    for method in METHODS:
        for curvature in ("hessian", "ggn"):
            for spectral in SPECTRALS:
                for lam in case.dampings:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", NotDescentWarning)
                        try:
                            d = newton_direction(net, *args, damping=lam, spectral=spectral,
                                                 method=method, curvature=curvature)
                        except SingularCurvatureError:
                            continue
                    out[newton_key(method, curvature, spectral, lam)] = d
    return out


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic .npz: fixed key order, no compression, fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            data = io.BytesIO()
            np.lib.format.write_array(data, np.require(arrays[key], requirements="C"),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data.getvalue())
    return buffer.getvalue()


def export(directory, seed: int = 0, max_dense: int = MAX_DENSE) -> Path:
    """Write the golden cases to ``directory`` (created if missing); returns the manifest path.

    Args:
        directory: output folder.
        seed: base seed of every case's inputs.
        max_dense: largest P whose dense Hessian is stored.
    """
    from . import __version__

    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValueError(f"expected a folder for the golden cases, got the existing file {root}")
    probe_folder(make_folder(root, "the golden cases"), "the golden cases", root / "manifest")
    entries = []
    for i, spec in enumerate(default_cases()):
        net, theta, X, y, v = _inputs(spec, seed + 10 * i)
        case = GoldenCase(spec.name, net, theta, X, y, v, DAMPINGS)
        arrays = {"theta": theta, "X": X, "y": y, "v": v, "dampings": np.asarray(DAMPINGS)}
        arrays.update({f"ref__{k}": a for k, a in outputs(case, max_dense).items()})
        blob = _npz_bytes(arrays)
        atomic_write(root / f"{spec.name}.npz", lambda fh, blob=blob: fh.write(blob))
        entries.append({
            "name": spec.name, "file": f"{spec.name}.npz",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "spec": {"sizes": list(spec.sizes), "activation": spec.activation,
                     "loss": spec.loss, "bias": spec.bias},
            "batch": spec.batch, "edge": spec.edge, "dampings": list(DAMPINGS),
            "quantities": sorted(k.removeprefix("ref__") for k in arrays if k.startswith("ref__")),
        })
    manifest = {"schema_version": SCHEMA_VERSION, "generator": f"esso_ref {__version__}",
                "dtype": "float64", "tolerances_eps": TOLERANCES, "cases": entries}
    manifest["sha256"] = manifest_digest(manifest)
    path = root / "manifest.json"
    text = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    atomic_write(path, lambda fh: fh.write(text))
    return path


def _read_case(root: Path, entry: dict) -> GoldenCase:
    path = root / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"expected golden case file {path} (listed in the manifest), "
                                "found none")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"golden case file {path} is corrupted: expected SHA-256 "
                         f"{entry['sha256']}, got {digest}")
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    spec = entry["spec"]
    net = MLP(spec["sizes"], spec["activation"], spec["loss"], bias=spec["bias"])
    reference = {k.removeprefix("ref__"): a for k, a in arrays.items() if k.startswith("ref__")}
    return GoldenCase(entry["name"], net, arrays["theta"], arrays["X"], arrays["y"],
                      arrays["v"], tuple(float(d) for d in arrays["dampings"]), reference)


def load(directory) -> list[GoldenCase]:
    """Read every golden case of ``directory``.

    Raises:
        FileNotFoundError: a missing manifest or case file.
        ValueError: an unknown schema version, invalid JSON, or a file whose SHA-256 differs.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    return [_read_case(root, entry) for entry in manifest["cases"]]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    return err / scale if scale > 0 else err


def _spectrum_error(case: GoldenCase, got: np.ndarray, ref: np.ndarray, zeros: int) -> float:
    """max|mu - mu_ref| / max|mu_ref|, on all P values when ``got`` lists all of them."""
    got = np.sort(np.ravel(got))
    ref = np.sort(np.ravel(ref))
    if got.shape[0] != ref.shape[0]:
        ref = np.sort(np.concatenate([ref, np.zeros(zeros)]))
    if got.shape != ref.shape:
        return float("inf")
    return _rel(got, ref)


def compare(case: GoldenCase, candidate: dict) -> Report:
    """Check another implementation's outputs against a golden case.

    Args:
        case: a case from [`load`][esso_ref.golden.load].
        candidate: quantity name -> array (NumPy or any array with ``__array__``). Names are
            the reference keys: ``loss``, ``gradient``, ``hvp``, ``hessian``, ``eigenvalues``
            (the non-zero ones or all P), ``layer{l}_eigenvalues``, and ``newton__{method}__
            {curvature}__{spectral}__{damping}``. Only the given quantities are checked.

    Returns:
        A [`Report`][esso_ref.verification.Report] with one row per quantity.

    Raises:
        KeyError: for a name that the case has no reference for (the message lists them).
    """
    report = Report(meta={"case": case.name, "sizes": list(case.net.sizes),
                          "activation": case.net.activation})
    for key in sorted(candidate):
        if key not in case.reference:
            raise KeyError(f"no reference {key!r} in case {case.name}; "
                           f"expected one of {sorted(case.reference)}")
        got, ref = np.asarray(candidate[key], dtype=np.float64), case.reference[key]
        if key.endswith("num_zeros"):
            report.checks.append(Check.compare(key, "candidate", "golden",
                                               float(np.max(np.abs(got - ref))), 0.0, EPS,
                                               "exact count"))
            continue
        if key.endswith("eigenvalues"):
            zeros = int(case.reference[key.replace("eigenvalues", "num_zeros")]
                        if key != "eigenvalues" else case.reference["eigenvalues_num_zeros"])
            r = case.rank_bound if key == "eigenvalues" else case.X.shape[0] * max(case.net.sizes)
            err = _spectrum_error(case, got, ref, zeros)
            note = "max|mu - mu_ref| / |H|_2" if got.size in (ref.size, ref.size + zeros) else (
                f"{got.size} values, expected {ref.size} (non-zero) or {ref.size + zeros} (all)")
            report.checks.append(Check.compare(key, "candidate", "golden", err, 50.0 * r, EPS,
                                               note))
            continue
        tol = TOLERANCES["newton" if key.startswith("newton") else key]
        same = got.shape == ref.shape
        report.checks.append(Check.compare(
            key, "candidate", "golden", _rel(got, ref) if same else float("inf"), tol, EPS,
            "max-norm relative" if same else f"shape {got.shape}, expected {ref.shape}"))
    return report
