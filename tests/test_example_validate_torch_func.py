"""examples/validate_torch_func.py runs as a user runs it and ends with passing asserts."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "validate_torch_func.py"


@pytest.mark.torch
def test_validate_torch_func_example_runs(tmp_path):
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "5 passed, 0 failed" in proc.stdout
    assert "torch.func agrees with esso_ref on 20 cases" in proc.stdout


def test_validate_torch_func_example_is_short():
    lines = SCRIPT.read_text().split('"""', 2)[2].splitlines()
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(code) < 30
