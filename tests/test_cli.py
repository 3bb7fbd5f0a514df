"""The esso-ref command line."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from esso_ref import activations
from esso_ref.cli import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "esso_ref.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "verify" in out and "esso-ref" in out


def test_verify_default_passes_with_table(capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert "gradient/complex_step" in out and "newton/structured/hessian/abs" in out
    assert "0 failed" in out


def test_verify_json_parses_and_matches_table(capsys):
    assert main(["verify", "--sizes", "5,7,6,3", "--batch", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    names = [c["name"] for c in report["checks"]]
    assert {"name", "error", "tolerance", "passed"} <= set(report["checks"][0])
    assert main(["verify", "--sizes", "5,7,6,3", "--batch", "3"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in names)


def test_verify_fails_on_a_broken_derivative(monkeypatch, capsys):
    tanh = activations.ACTIVATIONS["tanh"]
    broken = replace(tanh, df=lambda z: 1.001 * tanh.df(z))
    monkeypatch.setitem(activations.ACTIVATIONS, "tanh", broken)
    assert main(["verify", "--checks", "gradient"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "gradient/complex_step" in out


def test_verify_bad_arguments_exit_2(capsys):
    for sizes, message in [("5", "expected at least two positive widths"),
                           ("a,b", "expected comma-separated integer widths")]:
        with pytest.raises(SystemExit) as exc:
            main(["verify", "--sizes", sizes])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("backend", ["array_api_strict"])
def test_verify_other_backend(backend, capsys):
    assert main(["verify", "--backend", backend, "--activation", "relu", "--loss", "mse"]) == 0
