"""Checkpoints, resume rules, divergence, concurrent runs, damaged files."""

import gzip
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from esso_ref._files import OutputBusyError, OutputLock
from esso_ref.checkpoint import CheckpointError, load_checkpoint
from esso_ref.cli import main
from esso_ref.optim import ESSO
from esso_ref.runs import DivergenceGuard
from esso_ref.train import Diverged, TrainConfig, train

BASE = {"dataset": "spirals", "sizes": [2, 4, 3], "optimizer": "adam", "batch_size": 64,
        "quiet": True}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    train(TrainConfig(epochs=2, checkpoint=str(path), **BASE))
    return path


def _damaged(path, tmp_path):
    blob = path.read_bytes()
    z = zipfile.ZipFile(path)
    offset = z.getinfo("theta.npy").header_offset + 200
    flipped = bytearray(blob)
    flipped[offset] ^= 0xFF
    return {"empty": (b"", "is empty"), "truncated": (blob[:len(blob) // 2], "truncated"),
            "flipped byte": (bytes(flipped), "damaged"),
            "text file": (b"hello\n" * 20, "a file of another kind")}


def test_damaged_checkpoints_give_one_clear_error_each(ckpt, tmp_path):
    for kind, (blob, pattern) in _damaged(ckpt, tmp_path).items():
        bad = tmp_path / f"{kind}.npz"
        bad.write_bytes(blob)
        with pytest.raises(CheckpointError, match=pattern):
            load_checkpoint(bad)
    with np.load(ckpt) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    cases = {"missing theta": ({k: v for k, v in arrays.items() if k != "theta"}, "lacks"),
             "changed theta": ({**arrays, "theta": arrays["theta"] + 1}, "SHA-256"),
             "no meta": ({"theta": arrays["theta"]}, "without its metadata"),
             "old format": ({**arrays, "meta": np.array(json.dumps({**meta, "format": 1}))},
                            "format 2")}
    from esso_ref.checkpoint import save_checkpoint
    from esso_ref.mlp import MLP

    net = MLP([2, 4, 3])
    single = tmp_path / "float32.npz"
    save_checkpoint(single, net, net.init(0).astype(np.float32), {"t": 0},
                    np.random.default_rng(0), 0, [], {})
    with pytest.raises(CheckpointError, match=r"expected float64 theta .* got float32"):
        load_checkpoint(single)
    for kind, (content, pattern) in cases.items():
        bad = tmp_path / f"{kind}.npz"
        np.savez(bad, **content)
        with pytest.raises(CheckpointError, match=pattern):
            load_checkpoint(bad)


def test_resume_names_every_difference(ckpt, tmp_path):
    cases = [({"optimizer": "sgd"}, "optimizer 'adam' (checkpoint) != 'sgd'"),
             ({"seed": 3}, "seed 0 (checkpoint) != 3"),
             ({"epochs": 1}, "already holds 2 epochs; expected --epochs >= 2, got 1")]
    for change, pattern in cases:
        with pytest.raises(ValueError, match=pattern.replace("(", r"\(").replace(")", r"\)")):
            train(TrainConfig(**{**BASE, "epochs": 3, **change}, resume=str(ckpt)))
    esso = tmp_path / "esso.npz"
    train(TrainConfig(**{**BASE, "optimizer": "esso", "epochs": 1}, checkpoint=str(esso)))
    with pytest.raises(ValueError, match=r"damping 10.0 \(checkpoint\) != 3.0"):
        train(TrainConfig(**{**BASE, "optimizer": "esso", "epochs": 2, "damping": 3.0},
                          resume=str(esso)))
    same = train(TrainConfig(**{**BASE, "epochs": 2}, resume=str(ckpt)))
    assert same["summary"]["epochs"] == 2 == len(same["history"])


def test_divergence_definition_and_checkpoint_kept(tmp_path, capsys):
    guard = DivergenceGuard(initial_loss=1.0, initial_norm=2.0)
    assert guard.check(1, 99.0, 10.0) is None
    assert "above 100 x the initial" in guard.check(2, 101.0, 10.0)
    assert "grew above 1000 x" in guard.check(3, 1.0, 2001.0)
    assert "train loss nan" in guard.check(4, float("nan"), 1.0)
    ck = tmp_path / "c.npz"
    args = ["--dataset", "spirals", "--sizes", "2,4,3", "--optimizer", "sgd", "--quiet",
            "--batch-size", "64", "--checkpoint", str(ck)]
    assert main(["train", *args, "--epochs", "1"]) == 0
    good = load_checkpoint(ck)["theta"]
    assert main(["train", *args, "--epochs", "2", "--resume", str(ck), "--lr", "0.05"]) == 0
    good2 = load_checkpoint(ck)
    capsys.readouterr()
    with pytest.raises(Diverged, match=r"last good checkpoint is .*c.npz \(epoch 2\)"):
        train(TrainConfig(**{**BASE, "optimizer": "sgd", "lr": 1e300, "epochs": 3},
                          resume=str(ck), checkpoint=str(ck)))
    with pytest.raises(Diverged) as info:
        train(TrainConfig(**{**BASE, "optimizer": "sgd", "lr": 1e300, "epochs": 3},
                          checkpoint=str(tmp_path / "new.npz")))
    assert "checkpoint" not in str(info.value) and not (tmp_path / "new.npz").exists()
    after = load_checkpoint(ck)
    assert after["epoch"] == 2 and np.array_equal(after["theta"], good2["theta"])
    assert not np.array_equal(good, good2["theta"])


def test_adaptive_damping_never_below_the_configured_damping():
    from esso_ref.mlp import MLP

    net = MLP([3, 4, 2], "tanh", "mse")
    opt = ESSO(damping=5.0, adaptive=True)
    theta, state = net.init(0), {"damping": 50.0, "t": 0}
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    seen = []
    for i in range(20):
        theta, state, _ = opt.step(theta, state, net, X[i:i + 1], Y[i:i + 1])
        seen.append(state["damping"])
    assert min(seen) == 5.0 and all(d >= 5.0 for d in seen)
    with pytest.raises(ValueError, match="min_damping <= damping"):
        ESSO(damping=1e-3, min_damping=1.0)


def test_adaptive_run_on_teacher_does_not_diverge():
    out = train(TrainConfig(dataset="teacher", adaptive=True, epochs=1, batch_size=1,
                            sizes=[8, 6, 4], quiet=True))
    assert out["summary"]["train_loss"] < 1.0


def test_a_locked_output_is_refused_and_released(tmp_path, capsys):
    ck = tmp_path / "c.npz"
    with OutputLock({"--checkpoint": ck}):
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()}"):
            OutputLock({"--checkpoint": ck}).__enter__()
        code = main(["train", "--dataset", "spirals", "--sizes", "2,4,3", "--quiet",
                     "--optimizer", "sgd", "--checkpoint", str(ck)])
        assert code == 2 and "being written by another esso-ref run" in capsys.readouterr().err
    assert not (tmp_path / "c.npz.lock").exists()
    with OutputLock({"--checkpoint": ck}):
        pass


def test_two_concurrent_runs_on_the_same_outputs(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "esso_ref.cli", "train", "--dataset", "spirals", "--sizes",
            "2,4,3", "--optimizer", "adam", "--batch-size", "16", "--epochs", "30", "--quiet",
            "--checkpoint", str(tmp_path / "c.npz"), "--log", str(tmp_path / "log.jsonl")]
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(code in (0, 2) for code, _ in results) and any(c == 0 for c, _ in results)
    for code, err in results:
        assert code == 0 or ("being written by another esso-ref run" in err
                             and len(err.splitlines()) == 1)
    ck = load_checkpoint(tmp_path / "c.npz")
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    finished = sum(code == 0 for code, _ in results)
    assert ck["epoch"] == 30 and len(rows) == 30 * finished
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".tmp", ".lock")] == []


def test_damaged_idx_files(tmp_path):
    from esso_ref.data import mnist, read_idx

    def idx(n, rows=2, cols=2):
        return bytes([0, 0, 8, 3]) + np.array([n, rows, cols], ">u4").tobytes() + bytes(
            n * rows * cols)

    def labels(n):
        return bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + bytes(n)

    (tmp_path / "t.gz").write_bytes(gzip.compress(idx(3))[:-12])
    with pytest.raises(ValueError, match=r"t\.gz is truncated"):
        read_idx(tmp_path / "t.gz")
    (tmp_path / "n.gz").write_bytes(b"no gzip here")
    with pytest.raises(ValueError, match=r"n\.gz, got a file that is not valid gzip"):
        read_idx(tmp_path / "n.gz")
    for name, blob in [("train-images-idx3-ubyte", idx(3)), ("train-labels-idx1-ubyte",
                                                              labels(3)),
                       ("t10k-images-idx3-ubyte", idx(2, 3, 3)),
                       ("t10k-labels-idx1-ubyte", labels(2))]:
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match=r"same size.*got 4 and 9 pixels"):
        mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(0))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(labels(0))
    with pytest.raises(ValueError, match="at least one train image"):
        mnist(tmp_path)


def test_golden_manifest_is_hashed_and_validated(tmp_path):
    from esso_ref import golden

    root = tmp_path / "g"
    path = root / "manifest.json"
    root.mkdir()
    entry = {"name": "a", "file": "a.npz", "sha256": "0" * 64,
             "spec": {"sizes": [2, 2], "activation": "tanh", "loss": "mse", "bias": True},
             "batch": 1, "edge": "", "dampings": [1.0], "quantities": []}
    good = {"schema_version": golden.SCHEMA_VERSION, "cases": [entry]}

    def write(manifest, digest=True):
        if digest:
            manifest = {**manifest, "sha256": golden.manifest_digest(manifest)}
        path.write_text(json.dumps(manifest))

    write({**good, "cases": [{**entry, "spec": {**entry["spec"], "activation": "relu"}}]},
          digest=False)
    with pytest.raises(ValueError, match="was modified"):
        golden.load(root)
    bad_entry = {k: v for k, v in entry.items() if k != "sha256"}
    write({**good, "cases": [bad_entry]})
    with pytest.raises(ValueError, match=r"cases\[0\].sha256 of type str"):
        golden.load(root)
    write({**good, "cases": "oops"})
    with pytest.raises(ValueError, match="non-empty list 'cases'"):
        golden.load(root)
    write({**good, "cases": [{**entry, "file": "../x.npz"}]})
    with pytest.raises(ValueError, match="plain file name"):
        golden.load(root)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        golden.load(root)


def test_outputs_get_the_mode_of_a_plain_open(tmp_path):
    """Renamed temporary files kept mkstemp's owner-only mode (0600) whatever the umask."""
    from esso_ref._files import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.bin", lambda fh: fh.write(b"x"))
        os.umask(0o077)
        atomic_write(tmp_path / "private.bin", lambda fh: fh.write(b"y"))
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.bin").stat().st_mode & 0o777 == 0o600
