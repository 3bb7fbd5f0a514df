"""esso_ref.analysis: stored spectra, statistics, resumability, schedulers and bad input."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("dask")

import esso_ref as er
from esso_ref.analysis import AnalysisConfig, StoreMismatch, analyze, load, resolve, verify_store
from esso_ref.analysis.store import DEFAULT_CHUNK
from esso_ref.cli import main

EPS = np.finfo(np.float64).eps
CONFIG = dict(dataset="digits", limit=96, sizes=[64, 8, 10], seed=3, ggn=True, batch_size=16)


def _config(**kw):
    return AnalysisConfig(**{**CONFIG, **kw})


def _arrays(path):
    data = load(path)
    return {f"{c}/{k}": v for c in data["meta"]["rank"] for k, v in data[c].items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].tobytes() == b[k].tobytes(), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("analysis") / "ref.zarr"
    report = analyze(_config(chunk_size=16), path, scheduler="sync", progress=False)
    assert report["computed_chunks"] == list(range(6))
    return path, _arrays(path)


def test_sample_spectrum_is_eigenvalues_of_that_sample(reference):
    _path, arrays = reference
    problem = resolve(_config())
    net, theta, X, y = problem.net, problem.theta, problem.X, problem.y
    P = net.num_params
    for curvature in ("hessian", "ggn"):
        mu, zeros = arrays[f"{curvature}/eigenvalues"], arrays[f"{curvature}/num_zeros"]
        for i in (0, 37, 95):
            spec = er.eigenvalues(net, theta, X[i], y[i:i + 1], curvature=curvature)
            full = np.sort(np.concatenate([mu[i], np.zeros(P - mu.shape[1])]))
            scale = np.max(np.abs(full))
            np.testing.assert_allclose(full, np.asarray(spec.full()), rtol=0,
                                       atol=64 * EPS * scale)
            assert zeros[i] == P - np.count_nonzero(mu[i])
            assert zeros[i] >= spec.num_zeros - mu.shape[1]


def test_statistics_equal_their_definitions(reference):
    _, arrays = reference
    P = resolve(_config()).net.num_params
    for curvature in ("hessian", "ggn"):
        mu = arrays[f"{curvature}/eigenvalues"]
        for i in range(mu.shape[0]):
            full = np.concatenate([mu[i], np.zeros(P - mu.shape[1])])
            assert arrays[f"{curvature}/largest"][i] == full.max()
            assert arrays[f"{curvature}/smallest"][i] == full.min()
            assert arrays[f"{curvature}/negative"][i] == np.count_nonzero(full < 0)
            assert arrays[f"{curvature}/num_zeros"][i] == np.count_nonzero(full == 0)
            assert arrays[f"{curvature}/trace"][i] == math.fsum(full)
            assert arrays[f"{curvature}/frobenius"][i] == np.sqrt(math.fsum(full * full))


def test_minibatch_spectra_are_eigenvalues_of_the_batch(reference):
    _, arrays = reference
    problem = resolve(_config())
    B = 16
    for curvature in ("hessian", "ggn"):
        rows, zeros = arrays[f"{curvature}/batch_eigenvalues"], arrays[f"{curvature}/batch_num_zeros"]
        assert rows.shape == (6, B * problem.net.rank_bound if curvature == "hessian" else B * 10)
        for j in (0, 5):
            spec = er.eigenvalues(problem.net, problem.theta, problem.X[j * B:(j + 1) * B],
                                  problem.y[j * B:(j + 1) * B], curvature=curvature)
            values = rows[j][np.isfinite(rows[j])]
            np.testing.assert_allclose(values, np.asarray(spec.values), rtol=0,
                                       atol=64 * EPS * np.max(np.abs(values)))
            assert zeros[j] == spec.num_zeros


def test_bit_identical_across_chunk_sizes_and_schedulers(reference, tmp_path):
    _, arrays = reference
    for chunk, scheduler, workers in ((32, "threads", 2), (48, "processes", 2)):
        path = tmp_path / f"{scheduler}.zarr"
        analyze(_config(chunk_size=chunk), path, scheduler=scheduler, workers=workers,
                progress=False)
        _assert_same(_arrays(path), arrays)


def test_distributed_cluster_is_bit_identical(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, arrays = reference
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        report = analyze(_config(chunk_size=16), tmp_path / "d.zarr", address=cluster.scheduler_address,
                         progress=False)
    assert report["computed_chunks"] == list(range(6))
    _assert_same(_arrays(tmp_path / "d.zarr"), arrays)


SLOW_RUN = """
import sys, time
import esso_ref.analysis.chunks as chunks
from esso_ref.analysis import AnalysisConfig, analyze
block = chunks.sample_block
def slow(*args, **kw):
    time.sleep(0.5)
    return block(*args, **kw)
chunks.sample_block = slow
analyze(AnalysisConfig(**{config}), sys.argv[1], scheduler="sync", progress=False)
"""


def test_killed_run_resumes_without_recomputing(reference, tmp_path):
    _, arrays = reference
    path = tmp_path / "killed.zarr"
    config = dict(CONFIG, chunk_size=16, batch_size=None)
    script = SLOW_RUN.format(config=config)
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(verify_store(path)["samples"]["complete"]) >= 2:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    before = verify_store(path)["samples"]
    assert 2 <= len(before["complete"]) < 6
    report = analyze(AnalysisConfig(**config), path, scheduler="threads", progress=False)
    assert report["computed_chunks"] == sorted(before["missing"] + before["corrupt"])
    assert not set(report["computed_chunks"]) & set(before["complete"])
    assert report["skipped_chunks"] == len(before["complete"])
    stored = _arrays(path)
    for key in ("hessian/eigenvalues", "ggn/eigenvalues", "hessian/trace", "ggn/num_zeros"):
        assert stored[key].tobytes() == arrays[key].tobytes(), key
    again = analyze(AnalysisConfig(**config), path, progress=False)
    assert again["computed_chunks"] == []


def test_mixed_runs_refused_unless_overwrite(reference, tmp_path):
    path = tmp_path / "mix.zarr"
    shutil.copytree(reference[0], path)
    for change in ({"seed": 4}, {"sizes": [64, 9, 10]}, {"limit": 95}, {"chunk_size": 32}):
        with pytest.raises(StoreMismatch, match="another run"):
            analyze(_config(**change), path, progress=False)
    report = analyze(_config(seed=4, batch_size=None), path, overwrite=True, progress=False)
    assert report["computed_chunks"] == list(range(-(-96 // DEFAULT_CHUNK)))  # all, new chunking
    assert load(path)["meta"]["chunk_size"] == DEFAULT_CHUNK
    assert load(path)["meta"]["theta_sha256"] != load(reference[0])["meta"]["theta_sha256"]


def test_corrupted_chunk_detected_and_recomputed(reference, tmp_path):
    _, arrays = reference
    path = tmp_path / "bad.zarr"
    shutil.copytree(reference[0], path)
    chunk_file = path / "hessian" / "eigenvalues" / "c" / "2" / "0"
    raw = bytearray(chunk_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk_file.write_bytes(bytes(raw))
    import zarr

    zarr.open_group(str(path), mode="r+")["ggn/trace"][70] = 1.0  # chunk 4, readable but wrong
    status = verify_store(path)["samples"]
    assert status["corrupt"] == [2, 4] and status["missing"] == []
    with pytest.raises(ValueError, match="missing or corrupt"):
        load(path)
    report = analyze(_config(), path, progress=False)
    assert report["computed_chunks"] == [2, 4] and report["corrupt"]["samples"] == [2, 4]
    _assert_same(_arrays(path), arrays)


def _cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr()


def test_cli_bad_input_one_line_exit_2(reference, tmp_path, capsys):
    code, out = _cli(capsys, "analyze", "--dataset", "nope", "--out", str(tmp_path / "a.zarr"))
    assert code == 2 and "dataset" in out.err and len(out.err.strip().splitlines()) == 1
    missing = tmp_path / "no" / "such" / "a.zarr"
    code, out = _cli(capsys, "analyze", "--dataset", "nope", "--out", str(missing))
    assert code == 2 and str(missing) in out.err  # the output path is checked first
    newer = tmp_path / "newer.zarr"
    shutil.copytree(reference[0], newer)
    meta = json.loads((newer / "zarr.json").read_text())
    meta["attributes"]["esso_ref"]["format_version"] = 99
    (newer / "zarr.json").write_text(json.dumps(meta))
    for argv in (["analyze", "--limit", "96", "--sizes", "64,8,10", "--seed", "3", "--out",
                  str(newer)], ["summary", str(newer)]):
        code, out = _cli(capsys, *argv)
        assert code == 2 and "format 99" in out.err and len(out.err.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_checked_before_any_work(tmp_path, capsys, monkeypatch):
    import esso_ref.analysis.analyze as mod

    monkeypatch.setattr(mod, "resolve", lambda *a, **k: pytest.fail("work before the check"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out = _cli(capsys, "analyze", "--out", str(locked / "a.zarr"))
    finally:
        locked.chmod(0o700)
    assert code == 2 and "writable" in out.err


def test_unreachable_address_clear_error():
    proc = subprocess.run([sys.executable, "-m", "esso_ref.cli", "analyze", "--limit", "8",
                           "--out", "unused.zarr", "--address", "tcp://127.0.0.1:9",
                           "--timeout", "2"], capture_output=True, text=True, timeout=90,
                          cwd=os.environ.get("TMPDIR", "/tmp"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert "tcp://127.0.0.1:9" in lines[0] and "within 2 s" in lines[0]


def test_summary_tables_and_figure(reference, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path, arrays = reference
    png = tmp_path / "s.png"
    code, out = _cli(capsys, "summary", str(path), "--json", "--plot", str(png))
    assert code == 0 and png.stat().st_size > 10_000
    summary = json.loads(out.out)
    labels = load(path)["labels"]
    overall = summary["hessian"]["overall"]
    assert overall["largest_mean"] == pytest.approx(np.mean(arrays["hessian/largest"]), rel=1e-15)
    assert overall["largest_q50"] == np.quantile(arrays["hessian/largest"], 0.5)
    P = load(path)["meta"]["num_params"]
    row = summary["ggn"]["per_class"]["3"]
    assert row["n"] == np.count_nonzero(labels == 3)
    assert row["negative_fraction"] == pytest.approx(np.mean(arrays["ggn/negative"][labels == 3] / P), rel=1e-15)
    dens = summary["hessian"]["density"]
    assert sum(dens["counts"]) == np.count_nonzero(arrays["hessian/eigenvalues"])
    assert summary["hessian"]["batches"]["num_classes"] == 10
    assert len(summary["hessian"]["batches"]["outliers"]) == 6


def test_chunk_size_must_hold_whole_blocks(tmp_path):
    with pytest.raises(ValueError, match="multiple of 16"):
        analyze(_config(chunk_size=24), tmp_path / "x.zarr", progress=False)


def test_outlier_rule_on_a_planted_spectrum():
    from esso_ref.analysis.summary import outliers

    mu = np.concatenate([[50.0, 40.0, 30.0], np.linspace(0.01, 1.0, 200), -np.linspace(0, 2, 20)])
    k, edge, ratio = outliers(mu)
    assert (k, edge, ratio) == (3, 1.0, 30.0)


def test_core_imports_without_dask_and_zarr():
    code = ("import sys; sys.modules['dask'] = None; sys.modules['zarr'] = None; "
            "sys.modules['distributed'] = None; import esso_ref, esso_ref.cli; "
            "esso_ref.cli.build_parser(); import esso_ref.analysis")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _blas_threads(own_process):
    import numpy  # noqa: F401  (its BLAS loaded, as in a task)
    from threadpoolctl import threadpool_info

    return sorted({lib["num_threads"] for lib in threadpool_info()})


def test_process_workers_run_one_blas_thread(monkeypatch):
    from tqdm import tqdm

    from esso_ref.analysis.execute import _local

    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    with tqdm(disable=True) as bar:  # every library of every worker, whatever the task
        assert _local([(_blas_threads, ())] * 3, "processes", 2, bar) == [[1]] * 3
    assert not any(name in os.environ for name in names)  # this process's setting restored


def test_bench_runs_and_reports_its_ratios(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "esso_ref.analysis.bench", "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for part, keys in (("overhead", ("ratio", "ratio_sync", "samples")),
                       ("scaling", ("speed_up", "one_worker_s", "two_workers_s")),
                       ("estimate", ("estimate_60000_s", "worker_peak_rss_mib",
                                     "store_bytes_per_sample"))):
        for key in keys:
            assert math.isfinite(out[part][key]) and out[part][key] > 0, (part, key)


def test_a_network_that_does_not_fit_the_data_is_named():
    """--sizes 64,3 on digits blamed the labels ('expected labels in [0, 2]') instead."""
    with pytest.raises(ValueError, match=r"expected a network from 64 to 10 with loss "
                                         r"cross_entropy for digits, got MLP\(\[64, 3\]"):
        resolve(_config(sizes=[64, 3]))
