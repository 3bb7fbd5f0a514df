"""kill -9 at random moments and inside checkpoint and log writes: resume is bit-identical."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from esso_ref.checkpoint import load_checkpoint
from esso_ref.train import TrainConfig, train

EPOCHS = 120
ARGS = ["train", "--dataset", "spirals", "--sizes", "2,4,3", "--optimizer", "adam",
        "--batch-size", "16", "--epochs", str(EPOCHS), "--quiet"]

# a child that kills itself inside a write: mode "fsync" (checkpoint data in its temporary
# file, not yet renamed), "rename" (checkpoint renamed, log row not written) or "log" (half a
# log row written)
CHILD = r"""
import os, signal, sys
import esso_ref._files as files
import esso_ref.train as train
from esso_ref.cli import main

mode, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = {"n": 0}

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def counted(real, after=False):
    def f(*a, **k):
        calls["n"] += 1
        if calls["n"] == at and not after:
            die()
        out = real(*a, **k)
        if calls["n"] == at and after:
            die()
        return out
    return f

if mode == "fsync":
    files.os.fsync = counted(os.fsync)
elif mode == "rename":
    files.os.replace = counted(os.replace, after=True)
else:
    real_write = os.write
    def torn(fd, data):
        calls["n"] += 1
        if calls["n"] == at:
            real_write(fd, data[: len(data) // 2])
            die()
        return real_write(fd, data)
    train.os.write = torn
sys.exit(main(argv))
"""


def _rows(log):
    return len(log.read_bytes().split(b"\n")) - 1 if log.exists() else 0


def test_kill_loop_resumes_bit_identically(tmp_path):
    ck, log = tmp_path / "c.npz", tmp_path / "log.jsonl"
    outputs = ["--checkpoint", str(ck), "--log", str(log)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    rng = np.random.default_rng(2024)
    targeted = [("fsync", 2), ("rename", 1), ("log", 2), ("fsync", 1), ("rename", 3),
                ("log", 1)]
    kills = 0
    for k in range(20):
        resume = ["--resume", str(ck)] if ck.exists() else []
        if k % 3 == 2 and targeted:
            mode, at = targeted.pop()
            proc = subprocess.run([sys.executable, str(child), mode, str(at), *ARGS,
                                   *outputs, *resume], env=env, capture_output=True,
                                  timeout=300)
            assert proc.returncode == -signal.SIGKILL, proc.stderr
            kills += 1
            continue
        before = _rows(log)
        proc = subprocess.Popen([sys.executable, "-m", "esso_ref.cli", *ARGS, *outputs,
                                 *resume], env=env, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _rows(log) <= before:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills == 20
    done = subprocess.run([sys.executable, "-m", "esso_ref.cli", *ARGS, *outputs,
                           "--resume", str(ck)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    reference = train(TrainConfig(dataset="spirals", sizes=[2, 4, 3], optimizer="adam",
                                  batch_size=16, epochs=EPOCHS, quiet=True))
    final = load_checkpoint(ck)
    assert np.array_equal(final["theta"], reference["theta"])
    strip = ("seconds", "run")
    assert ([{k: v for k, v in r.items() if k not in strip} for r in final["history"]]
            == [{k: v for k, v in r.items() if k not in strip} for r in reference["history"]])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({r.pop("run") for r in rows}) == 1
    assert rows == final["history"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "child.py", "log.jsonl"]
