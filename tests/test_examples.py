"""Every example runs exactly as a user runs it: `python examples/NAME.py`, no special variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
OPTIONAL = ("torch", "jax")  # frameworks an example may import; skipped when not installed


def test_there_are_at_least_five_examples():
    assert len(EXAMPLES) >= 5


def test_no_example_reads_a_test_only_variable():
    for script in EXAMPLES:
        assert "ESSO_" not in script.read_text(encoding="utf-8"), script.name


def _user_environment() -> dict:
    """The caller's environment without any ESSO_* variable; the package found as installed,
    or from this checkout when it is not installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESSO_")}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    source = script.read_text(encoding="utf-8")
    for module in OPTIONAL:
        if f"import {module}" in source or f"from {module}" in source:
            pytest.importorskip(module)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_user_environment(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.strip()
