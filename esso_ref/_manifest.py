"""The golden-case manifest: its SHA-256 over the canonical JSON, and its schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "manifest_digest", "read_manifest"]

SCHEMA_VERSION = 2
"""2: manifest hashed, and 'gelu' is the exact erf form ('gelu_tanh' the tanh form)."""


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON without its own ``sha256`` entry."""
    rest = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def read_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a golden-case manifest at {path}, found none; "
                                "write one with `esso-ref export-cases DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"expected valid JSON in {path}, got a parse error: {err}") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"expected a JSON object in {path}, got {type(manifest).__name__}")
    version = manifest.get("schema_version")
    cases = manifest.get("cases") if isinstance(manifest.get("cases"), list) else []
    if version == 1 and any(isinstance(c, dict) and isinstance(c.get("spec"), dict)
                            and c["spec"].get("activation") == "gelu" for c in cases):
        raise ValueError(f"golden cases in {path} use schema version 1, where 'gelu' meant the "
                         "tanh approximation; 'gelu' is now the exact erf form (PyTorch "
                         "nn.GELU()) and the tanh form is 'gelu_tanh'; export the cases again "
                         "with this esso_ref")
    if version != SCHEMA_VERSION:
        raise ValueError(f"expected golden-case schema version {SCHEMA_VERSION}, got {version!r} "
                         f"in {path}; export the cases again with this esso_ref")
    if manifest.get("sha256") != manifest_digest(manifest):
        raise ValueError(f"golden-case manifest {path} was modified: its content does not match "
                         "its SHA-256; export the cases again")
    _check_schema(manifest, path)
    return manifest


_ENTRY = {"name": str, "file": str, "sha256": str, "spec": dict, "batch": int, "edge": str,
          "dampings": list, "quantities": list}
_SPEC = {"sizes": list, "activation": str, "loss": str, "bias": bool}


def _check_schema(manifest: dict, path: Path) -> None:
    """Raise ValueError naming the first entry of the manifest that breaks the schema."""
    cases = manifest.get("cases")
    if not isinstance(cases, list) or not cases:
        raise ValueError(f"expected a non-empty list 'cases' in {path}, got {cases!r:.60}")
    for i, entry in enumerate(cases):
        for where, obj, schema in (("", entry, _ENTRY), (".spec", entry.get("spec")
                                                         if isinstance(entry, dict) else None,
                                                         _SPEC)):
            if not isinstance(obj, dict):
                raise ValueError(f"expected an object at cases[{i}]{where} in {path}")
            for key, kind in schema.items():
                if not isinstance(obj.get(key), kind):
                    raise ValueError(f"expected cases[{i}]{where}.{key} of type {kind.__name__} "
                                     f"in {path}, got {obj.get(key)!r:.60}")
        if Path(entry["file"]).name != entry["file"]:
            raise ValueError(f"expected a plain file name at cases[{i}].file in {path}, got "
                             f"{entry['file']!r}")


