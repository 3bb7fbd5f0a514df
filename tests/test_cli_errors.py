"""Command-line reliability: exit codes, one-line errors, outputs checked before any work."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from esso_ref.cli import main

TINY = ["--dataset", "spirals", "--sizes", "2,4,3", "--optimizer", "sgd", "--batch-size", "64",
        "--quiet"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of main(argv), usage errors included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["train", "verify", "compare", "bench", "spectrum"])
def test_an_unknown_option_is_named_by_its_command(command, capsys):
    code, _, err = run([command, "--no-such-flag"], capsys)
    line = one_line(err)
    assert code == 2 and line.startswith(f"esso-ref {command}: error: unrecognized arguments: "
                                         "--no-such-flag")
    code, _, err = run(["--no-such-flag", command], capsys)  # given to esso-ref itself
    assert code == 2 and one_line(err).startswith("esso-ref: error: unrecognized arguments: ")


@pytest.mark.parametrize("argv, pattern", [
    (["compare", "--target", "2"], r"expected an accuracy in \(0, 1\], got '2'"),
    (["train", "--sizes", "64,32,9", "--quiet"], r"expected sizes from 64 to 10 for digits"),
    (["compare", "--target", "-1"], "expected a finite number > 0"),
    (["train", "--batch-size", "0"], "expected an integer >= 1, got 0"),
    (["train", "--batch-size", "-5"], "expected an integer >= 1, got -5"),
    (["train", "--epochs", "0"], "expected an integer >= 1, got 0"),
    (["train", "--epochs", "-1"], "expected an integer >= 1, got -1"),
    (["train", "--lr", "nan"], "expected a finite number > 0"),
    (["verify", "--damping", "-1e-3"], "expected a finite number > 0, got '-1e-3'"),
    (["train", "--lr", "-2.5E+4"], r"expected a finite number > 0, got '-2\.5E\+4'"),
    (["train", "--damping", "-.5"], r"expected a finite number > 0, got '-\.5'"),
    (["compare", "--seeds", "-3"], "expected an integer >= 1, got -3"),
    (["train", "--momentum", "1.5", *TINY], r"expected momentum in \[0, 1\)"),
    (["compare", "--seeds", "0"], "expected an integer >= 1, got 0"),
    (["compare", "--optimizers", "bogus"], "expected --optimizers as distinct"),
    (["compare", "--optimizers", ""], "expected --optimizers as distinct"),
    (["compare", "--optimizers", "sgd,,"], "expected --optimizers as distinct"),
    (["compare", "--out", ""], "expected --out to be a file prefix"),
    (["bench", "--sizes", "8,4;"], "expected networks separated by ';'"),
    (["bench", "--sizes", "8,x"], "expected comma-separated integer widths"),
    (["bench", "--sizes", ""], "expected networks separated by ';'"),
    (["bench", "--repeats", "-1"], "expected an integer >= 1, got -1"),
    (["verify", "--checks", "gradient,bogus"], "expected --checks 'all', 'list'"),
    (["verify", "--batch", "0"], "expected an integer >= 1, got 0"),
    (["spectrum", "--sizes", "5,3", "--dataset", "spirals"], "expected --sizes from 2 to 3"),
    (["train", "--momentum", "0.9"], "--momentum is sgd's option; got --optimizer esso"),
    (["train", "--adaptive", *TINY], "--adaptive is esso's option; got --optimizer sgd"),
    (["compare", "--adaptive", "--optimizers", "sgd,adam"], "--adaptive is esso's option"),
    (["train", "--track-spectrum", *TINY], "--track-spectrum records the spectrum in the --log"),
    (["spectrum", "--data-dir", "."], "expected no directory for digits"),
    (["spectrum", "--plot", "s.txt"], "expected --plot to end in a figure format .* got 's.txt'"),
    (["train", "--plot", "curves", *TINY], "expected --plot to end in a figure format"),
    (["analyze", "--out", "s.zarr", "--timeout", "nan"], "argument --timeout: expected a finite"),
    (["analyze", "--out", "s.zarr", "--timeout", "-1"], "argument --timeout: expected a finite"),
    (["analyze", "--out", "s.zarr", "--limit", "0"], "argument --limit: expected an integer >= 1"),
    (["--epochs", "1", "train"], "unrecognized arguments: --epochs .a command's options go after"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--lr", "-inf"], "argument --lr: expected a finite number > 0, got '-inf'"),
    (["summary", "no-such-store.zarr"], "no-such-store.zarr, but it does not exist"),
])
def test_usage_errors_exit_2_with_one_line(argv, pattern, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert __import__("re").search(pattern, one_line(err))


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag in ("--plot", "--checkpoint"):
        code, out, err = run(["train", *TINY, "--log", str(log), flag,
                              str(blocker / "p.png")], capsys)
        assert code == 2 and "is not a folder" in one_line(err) and out == ""
        assert not log.exists()
    code, _, err = run(["train", *TINY, "--checkpoint", str(tmp_path / "none" / "c.npz")],
                       capsys)
    assert code == 2 and "does not exist" in one_line(err)
    assert list(tmp_path.iterdir()) == [blocker]
    code, _, err = run(["compare", *TINY[:4], "--out", str(blocker / "x")], capsys)
    assert code == 2 and "file" in one_line(err)
    code, _, err = run(["bench", "--quick", "--plot", str(tmp_path / "none" / "b.png")], capsys)
    assert code == 2 and "does not exist" in one_line(err)
    code, _, err = run(["export-cases", str(blocker)], capsys)
    assert code == 2 and "got the existing file" in one_line(err)


def test_version_help_defaults_and_check_groups(capsys):
    from esso_ref import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"esso-ref {__version__}"
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0 and "(default: 10)" in out and "(default: digits)" in out
    code, out, _ = run(["verify", "--checks", "list"], capsys)
    assert code == 0 and out.split() == ["gradient", "hvp", "hessian", "factor", "spectrum",
                                         "newton", "ggn", "per_sample"]


def test_train_json_keeps_progress_and_log_rows_carry_the_run_id(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    argv = ["train", *[a for a in TINY if a != "--quiet"], "--epochs", "2", "--json",
            "--log", str(log)]
    code, out, err = run(argv, capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["epochs"] == 2
    assert err.count("train loss") == 2
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({r["run"] for r in rows}) == 1 and len(rows[0]["run"]) == 12
    code, out, err = run([*argv[:-3], "--quiet"], capsys)
    assert code == 0 and err == ""
    table = out.splitlines()
    assert table[0].split() == ["quantity", "value"] and set(table[1]) <= {"-", " "}
    assert len({line.index(line.split()[1]) for line in table[2:]}) == 1


def test_compare_json_progress_and_aligned_table(tmp_path, capsys):
    argv = ["compare", *TINY[:4], "--optimizers", "sgd,adam", "--seeds", "2", "--epochs", "1",
            "--batch-size", "64", "--no-sharpness", "--out", str(tmp_path / "c")]
    code, out, err = run([*argv, "--json"], capsys)
    assert code == 0 and [r["optimizer"] for r in json.loads(out)["table"]] == ["sgd", "adam"]
    assert err.count("compare: run ") == 4 and "run 4/4 (adam, seed 1)" in err
    code, out, err = run([*argv, "--quiet"], capsys)
    lines = out.splitlines()
    assert code == 0 and err == "" and lines[0].startswith("optimizer")
    assert len({len(line) for line in lines[:2]}) == 1


def test_verify_table_aligned_with_long_names_and_the_reason_of_failures():
    from esso_ref.verification.report import Check, Report

    report = Report([Check.compare("a" * 50, "route", "reference", 1e-16, 1, 1e-16),
                     Check.compare("short", "r" * 30, "x", 1e-15, 1, 1e-16, "how measured"),
                     Check.raised("boom", "r", "x", ArithmeticError("overflow"), 1e-16)])
    lines = report.table().splitlines()  # the library's table is the command line's
    starts = {line.split()[1]: line.index(line.split()[1]) for line in lines[2:5]}
    assert starts["route"] == starts["r" * 30] == starts["r"]
    assert lines[3].endswith("FAIL (how measured)")
    assert lines[4].endswith("FAIL (raised ArithmeticError: overflow)")
    assert lines[5] == "1 passed, 2 failed, 0 skipped"


def test_internal_error_exits_1_and_debug_shows_the_traceback(monkeypatch, capsys):
    from esso_ref import problems

    def broken(*args, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(problems, "random_problem", broken)
    code, _, err = run(["verify"], capsys)
    assert code == 1 and "internal error: RuntimeError: boom" in one_line(err)
    for argv in (["--debug", "verify"], ["verify", "--debug"]):
        code, _, err = run(argv, capsys)  # the traceback, then the same line and exit status
        assert code == 1 and "Traceback" in err and 'raise RuntimeError("boom")' in err
        assert err.strip().splitlines()[-1] == "esso-ref verify: internal error: RuntimeError: boom"


def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "esso_ref.cli", *argv], env=env,
                              capture_output=True, text=True, timeout=300)

    usage = cli("train", "--batch-size", "0")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    diverged = cli("train", *TINY, "--lr", "1e300", "--epochs", "3",
                   "--checkpoint", str(tmp_path / "c.npz"))
    assert diverged.returncode == 3 and len(diverged.stderr.splitlines()) == 1
    assert "training diverged in epoch 1" in diverged.stderr
    assert "last good checkpoint" not in diverged.stderr and not (tmp_path / "c.npz").exists()
    (tmp_path / "bad.npz").write_text("not a checkpoint")
    bad = cli("spectrum", "--checkpoint", str(tmp_path / "bad.npz"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.splitlines()) == 1 and "bad.npz" in bad.stderr
    debug = cli("spectrum", "--checkpoint", str(tmp_path / "bad.npz"), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_memory_refusals_before_work(tmp_path, capsys, monkeypatch):
    import esso_ref as er

    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", "1e7")
    log = tmp_path / "run.jsonl"
    code, _, err = run(["train", "--dataset", "spirals", "--sizes", "2,1000,3",
                        "--batch-size", "64", "--log", str(log)], capsys)
    line = one_line(err)
    assert code == 2 and "needs about" in line and "9.5 MiB of memory is available" in line
    assert "lower --batch-size or use --method layerwise" in line and not log.exists()
    code, _, err = run(["train", *TINY[:4], "--sizes", "2,600,3", "--optimizer", "sgd",
                        "--sharpness", "--log", str(log)], capsys)
    assert code == 2 and "--sharpness" in one_line(err) and not log.exists()
    code, _, err = run(["compare", *TINY[:4], "--sizes", "2,600,3", "--optimizers", "sgd",
                        "--out", str(tmp_path / "cmp")], capsys)
    assert code == 2 and "--sharpness" in one_line(err)
    assert not (tmp_path / "cmp.json").exists()
    net = er.MLP([40, 40, 3])
    theta, X, y = er.random_problem(net, 1, 0) if hasattr(er, "random_problem") else (
        None, None, None)
    if theta is None:
        from esso_ref.problems import random_problem

        theta, X, y = random_problem(net, 1, 0)
    with pytest.raises(MemoryError, match=r"dense Hessian \(P x P, P = 1763\).*structured"):
        er.hessian(net, theta, X, y)


def test_sharpness_failure_keeps_the_result(tmp_path, capsys, monkeypatch):
    from esso_ref import flatness

    def fail(*args, **kw):
        raise MemoryError("too big")

    monkeypatch.setattr(flatness, "per_sample_eigenvalues", fail, raising=False)
    import esso_ref.curvature as curv

    monkeypatch.setattr(curv, "per_sample_eigenvalues", fail)
    code, out, err = run(["train", *TINY, "--epochs", "1", "--sharpness", "--json",
                          "--checkpoint", str(tmp_path / "c.npz")], capsys)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["sharpness"] is None and "sharpness skipped" in err
    assert summary["epochs"] == 1 and (tmp_path / "c.npz").exists()


def test_compare_keeps_finished_runs_when_the_figure_fails(tmp_path, capsys, monkeypatch):
    from esso_ref import plots

    def fail(*args, **kw):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(plots, "plot_histories", fail)
    out = tmp_path / "c"
    code, _, err = run(["compare", *TINY[:4], "--optimizers", "sgd", "--seeds", "2",
                        "--epochs", "1", "--batch-size", "64", "--no-sharpness", "--quiet",
                        "--out", str(out)], capsys)
    assert code == 1 and "figure failed" in one_line(err)
    table = json.loads((tmp_path / "c.json").read_text())["table"]
    assert table[0]["seeds"] == 2 and (tmp_path / "c.csv").exists()


def test_spectrum_log_tolerates_a_torn_last_line_and_names_bad_files(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    assert main(["train", *TINY, "--epochs", "2", "--track-spectrum", "--log", str(log)]) == 0
    capsys.readouterr()
    with log.open("a") as fh:
        fh.write('{"run": "x", "epoch": 3, "spec')
    code, out, err = run(["spectrum", "--log", str(log), "--json"], capsys)
    assert code == 0 and [r["epoch"] for r in json.loads(out)] == [1, 2]
    assert "torn last line" in one_line(err)
    other = tmp_path / "notes.txt"
    other.write_text("hello\nworld\n")
    code, _, err = run(["spectrum", "--log", str(other)], capsys)
    assert code == 2 and "at line 1" in one_line(err) and "notes.txt" in err


def test_spectrum_checkpoint_uses_its_dataset_and_refuses_contradictions(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    assert main(["train", *TINY, "--epochs", "1", "--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    code, out, _ = run(["spectrum", "--checkpoint", str(ckpt), "--json"], capsys)
    assert code == 0 and json.loads(out)["sizes"] == [2, 4, 3]
    code, _, err = run(["spectrum", "--checkpoint", str(ckpt), "--sizes", "2,8,3",
                        "--activation", "relu"], capsys)
    line = one_line(err)
    assert code == 2 and "--sizes [2, 8, 3]" in line and "--activation 'relu'" in line


def test_library_boundaries(tmp_path):
    import esso_ref as er
    from esso_ref.optim import Adam

    with pytest.raises(TypeError, match="expected an activation to be one of the names"):
        er.MLP([2, 3], ["tanh"])
    net = er.MLP([2, 3, 2], "tanh", "mse")
    theta = net.init(0).astype(np.float32)
    assert net.gradient(theta, [[0.5, -0.25]], [[0.1, 0.2]]).dtype == np.float32
    with pytest.raises(ValueError, match="overflow"):
        net.gradient(net.init(0), np.ones((1, 2)), np.full((1, 2), 1e300))
    opt = Adam()
    with pytest.raises(ValueError, match=r"state 'm' of shape \(17,\)"):
        opt.step(net.init(0), {"m": np.zeros(3), "v": np.zeros(3), "t": 0}, net,
                 np.ones((1, 2)), np.ones((1, 2)))


def test_debug_shows_the_traceback_and_keeps_the_exit_status(capsys):
    code, _, err = run(["spectrum", "--dataset", "digits", "--sample", "100000"], capsys)
    assert code == 2 and "expected --sample" in one_line(err)
    code, _, err = run(["--debug", "spectrum", "--dataset", "digits", "--sample", "100000"],
                       capsys)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith(
        "esso-ref spectrum: error: expected --sample")


@pytest.mark.parametrize("cap", ["-5", "0", "nan", "abc"])
def test_memory_cap_must_be_a_positive_number(cap, monkeypatch):
    import esso_ref as er
    from esso_ref.problems import random_problem

    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", cap)
    net = er.MLP([784, 512, 512, 10])
    theta, X, y = random_problem(net, 8, 0)
    with pytest.raises(ValueError, match="expected ESSO_REF_MAX_MEMORY to be a positive number"):
        er.eigenvalues(net, theta, X, y)


def test_dense_factor_views_refuse_before_allocating(monkeypatch):
    import esso_ref as er
    from esso_ref.problems import random_problem

    net = er.MLP([784, 512, 512, 10])
    theta, X, y = random_problem(net, 8, 0)
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", "1e6")
    f = er.hessian_factor(net, theta, X, y)
    for view, what in ((f.gram, "the Gram matrix"), (f.core, "the dense core C"),
                       (f.materialize_A, r"A \(16464 x 669706\)"),
                       (f.to_dense, r"the dense H \(P x P")):
        with pytest.raises(MemoryError, match=f"{what}.*needs about"):
            view()
    with pytest.raises(MemoryError, match=r"layer 1's block") as info:
        er.newton_direction(net, theta, X, y, method="layerwise")
    assert "method='layerwise'" not in str(info.value)


def test_materialized_A_matches_its_products():
    import esso_ref as er
    from esso_ref.problems import random_problem

    net = er.MLP([4, 3, 2])
    theta, X, y = random_problem(net, 3, 0)
    f = er.hessian_factor(net, theta, X, y)
    A = f.materialize_A()
    v = np.random.default_rng(0).standard_normal(net.num_params)
    assert A.shape == (f.rank_bound, net.num_params)
    assert np.max(np.abs(A @ v - f.apply_A(v))) <= 1e-14 * np.max(np.abs(A)) * np.sum(np.abs(v))


def test_too_large_requests_exit_2_before_allocating(capsys, monkeypatch):
    """verify checks its arrays up front; a NumPy MemoryError anywhere is a usage error."""
    code, _, err = run(["verify", "--sizes", "100000,100000,10"], capsys)
    assert code == 2 and "needs about" in one_line(err) and "use smaller --sizes" in err
    code, _, err = run(["verify", "--batch", "100000000"], capsys)
    assert code == 2 and "with B = 100000000" in one_line(err)
    code, _, err = run(["verify", "--backend", "array_api_strict", "--dtype", "float32",
                        "--sizes", "100000,100000,10"], capsys)
    assert code == 2 and "needs about 447" in one_line(err)  # float32: half of float64
    code, _, err = run(["verify", "--sizes", "2000,2000,10", "--max-dense-params", "100000000"],
                       capsys)
    assert code == 2 and "the dense Hessian (P = 4022010)" in one_line(err)
    from esso_ref import problems

    def refused(*args, **kw):
        raise MemoryError("Unable to allocate 74.5 GiB for an array")

    monkeypatch.setattr(problems, "random_problem", refused)
    code, _, err = run(["verify"], capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("esso-ref verify: error: not enough memory: Unable")


def test_sharpness_reports_its_progress(capsys):
    """Every chunk of samples is reported; without a terminal one line gives the time left."""
    import time

    import esso_ref as er
    from esso_ref import flatness, train
    from esso_ref.problems import random_problem

    net = er.MLP([3, 4, 2])
    theta, X, y = random_problem(net, 150, 0)
    calls = []
    flatness.sharpness(net, theta, X, y, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 150), (64, 150), (128, 150), (150, 150)]
    data = type("D", (), {"X_train": X})()
    report = train._sharpness_progress(data, quiet=False)
    report(0, 1000)  # the Lanczos part is done: the clock starts
    start = time.perf_counter()
    while time.perf_counter() - start < 0.05:
        pass
    report(1, 1000)  # 0.05 s for one sample: about 50 s to go
    report(2, 1000)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "sharpness" in ln]
    assert len(lines) == 1 and "the exact spectra of 1 of 1000 samples" in lines[0]
    assert train._sharpness_progress(data, quiet=True) is None


def test_outputs_in_folders_that_take_no_file_are_refused_in_one_line(capsys):
    """mkdir and os.access let raw errno text through (and os.access says yes to root)."""
    cases = [
        (["compare", "--optimizers", "sgd", "--out", "/proc/cmp/x"],
         "cannot create the folder /proc/cmp for --out"),
        (["export-cases", "/proc/cases"], "cannot create the folder /proc/cases for the golden"),
        (["summary", "/proc/none.zarr", "--plot", "/proc/x.png"],
         "cannot write --plot /proc/x.png: the folder /proc is not writable"),
    ]
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code == 2 and message in one_line(err), (argv, err)


def test_plot_without_matplotlib_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    from esso_ref import plots, train

    def missing():
        raise ImportError("plots need matplotlib: pip install esso_ref[plot]")

    def never(*args, **kwargs):
        raise AssertionError("trained although the plot could not be written")

    monkeypatch.setattr(plots, "_pyplot", missing)
    monkeypatch.setattr(train, "train", never)
    code, out, err = run(["train", *TINY, "--plot", str(tmp_path / "c.png")], capsys)
    assert code == 2 and out == "" and "plots need matplotlib" in one_line(err)
