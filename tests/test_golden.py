"""Golden cases: deterministic export, load + compare, tampering and corruption."""

import json

import numpy as np
import pytest

import esso_ref as er
from esso_ref.cli import main


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    assert main(["export-cases", str(root / "a")]) == 0
    return root


def test_export_is_byte_for_byte_deterministic(cases_dir):
    er.golden.export(cases_dir / "b")
    files_a = sorted(p.name for p in (cases_dir / "a").iterdir())
    files_b = sorted(p.name for p in (cases_dir / "b").iterdir())
    assert files_a == files_b and len(files_a) == len(er.golden.default_cases()) + 1
    for name in files_a:
        assert (cases_dir / "a" / name).read_bytes() == (cases_dir / "b" / name).read_bytes()


def test_cases_cover_activations_losses_bias_batches_and_edges(cases_dir):
    cases = er.golden.load(cases_dir / "a")
    combos = {(c.net.activation, c.net.loss_name) for c in cases}
    assert combos == {(a, l) for a in er.ACTIVATIONS for l in er.LOSSES}
    assert {c.net.bias for c in cases} == {True, False}
    assert {c.X.shape[0] for c in cases} >= {1, 3}
    assert min(c.net.L for c in cases) == 1 and max(c.net.L for c in cases) >= 4
    names = {c.name for c in cases}
    assert {"dead-relu", "zero-gradient", "large-logits"} <= names
    zero = next(c for c in cases if c.name == "zero-gradient")
    assert np.all(zero.reference["gradient"] == 0)
    big = next(c for c in cases if c.name == "large-logits")
    assert np.max(np.abs(big.net.predict(big.theta, big.X))) > 100
    for c in cases:
        assert "hessian" in c.reference and "newton__structured__hessian__abs__0.01" in c.reference


def test_own_outputs_pass(cases_dir):
    for case in er.golden.load(cases_dir / "a"):
        report = er.golden.compare(case, er.golden.outputs(case))
        assert report.passed, (case.name, report.table())
        assert len(report.checks) >= 20


def test_full_dense_spectrum_is_accepted(cases_dir):
    case = er.golden.load(cases_dir / "a")[0]
    dense = np.linalg.eigvalsh(case.reference["hessian"])
    assert er.golden.compare(case, {"eigenvalues": dense}).passed


def test_tampering_one_value_fails_exactly_that_quantity(cases_dir):
    case = er.golden.load(cases_dir / "a")[3]
    ours = er.golden.outputs(case)
    case.reference["gradient"] = case.reference["gradient"].copy()
    case.reference["gradient"][2] += 1e-9
    report = er.golden.compare(case, ours)
    assert [c.name for c in report.failed()] == ["gradient"]


def test_unknown_quantity_lists_valid_ones(cases_dir):
    case = er.golden.load(cases_dir / "a")[0]
    with pytest.raises(KeyError, match=r"no reference 'grad' in case .* expected one of"):
        er.golden.compare(case, {"grad": case.reference["gradient"]})


def test_unknown_schema_version(tmp_path, cases_dir):
    import shutil

    shutil.copytree(cases_dir / "a", tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"expected golden-case schema version {er.golden.SCHEMA_VERSION}, got 99"):
        er.golden.load(tmp_path / "c")


def test_version_1_gelu_cases_are_refused_with_the_rename(tmp_path, cases_dir):
    import shutil

    shutil.copytree(cases_dir / "a", tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["schema_version"] = 1
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"version 1, where 'gelu' meant the tanh approximation; "
                                         r"'gelu' is now the exact erf form .* 'gelu_tanh'"):
        er.golden.load(tmp_path / "c")
    manifest["cases"] = [c for c in manifest["cases"] if c["spec"]["activation"] != "gelu"]
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="expected golden-case schema version 2, got 1"):
        er.golden.load(tmp_path / "c")


def test_both_gelu_forms_have_cases(cases_dir):
    cases = er.golden.load(cases_dir / "a")
    assert {"gelu", "gelu_tanh"} <= {c.net.activation for c in cases}


def test_corrupted_and_missing_files(tmp_path, cases_dir):
    import shutil

    shutil.copytree(cases_dir / "a", tmp_path / "c")
    target = tmp_path / "c" / "tanh-mse-B1.npz"
    blob = bytearray(target.read_bytes())
    blob[-100] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"tanh-mse-B1\.npz is corrupted: expected SHA-256"):
        er.golden.load(tmp_path / "c")
    target.unlink()
    with pytest.raises(FileNotFoundError, match=r"expected golden case file .*tanh-mse-B1\.npz"):
        er.golden.load(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="expected a golden-case manifest"):
        er.golden.load(tmp_path / "nowhere")
    (tmp_path / "c" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="expected valid JSON"):
        er.golden.load(tmp_path / "c")


def test_wrong_shapes_are_named(cases_dir):
    """A candidate of the wrong shape failed with error inf and no word of the shapes."""
    case = er.golden.load(cases_dir / "a")[0]
    P = case.net.num_params
    report = er.golden.compare(case, {"gradient": np.zeros(3), "eigenvalues": np.zeros(1)})
    notes = {c.name: c.note for c in report.failed()}
    assert notes["gradient"] == f"shape (3,), expected ({P},)"
    n = case.reference["eigenvalues"].size
    zeros = int(case.reference["eigenvalues_num_zeros"])
    assert notes["eigenvalues"] == f"1 values, expected {n} (non-zero) or {n + zeros} (all)"
    bad = case.reference["eigenvalues"].copy()
    bad[0] = np.inf  # the right count with a wrong value: the usual note
    assert er.golden.compare(case, {"eigenvalues": bad}).failed()[0].note == (
        "max|mu - mu_ref| / |H|_2")
