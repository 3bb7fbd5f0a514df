"""Training loop, CLI train / compare / spectrum, checkpoints, resume, divergence."""

import json

import numpy as np
import pytest

from esso_ref.checkpoint import load_checkpoint
from esso_ref.cli import main
from esso_ref.mlp import MLP
from esso_ref.train import Diverged, TrainConfig, train


def test_cli_train_json_summary_is_last_line(capsys, tmp_path):
    log, plot = tmp_path / "run.jsonl", tmp_path / "curves.png"
    assert main(["train", "--dataset", "spirals", "--epochs", "2", "--batch-size", "4",
                 "--json", "--log", str(log), "--plot", str(plot)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == {"dataset", "optimizer", "epochs", "train_loss", "test_loss",
                            "test_accuracy", "seconds"}
    assert summary["dataset"] == "spirals" and summary["optimizer"] == "esso"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and plot.stat().st_size > 10_000


@pytest.mark.parametrize("optimizer", ["esso", "sgd", "adam"])
def test_resume_is_bit_identical(tmp_path, optimizer):
    base = {"dataset": "spirals", "optimizer": optimizer, "batch_size": 8, "quiet": True,
            "momentum": 0.9 if optimizer == "sgd" else 0.0}
    full = train(TrainConfig(epochs=3, checkpoint=str(tmp_path / "full.npz"), **base))
    train(TrainConfig(epochs=1, checkpoint=str(tmp_path / "part.npz"), **base))
    resumed = train(TrainConfig(epochs=3, resume=str(tmp_path / "part.npz"),
                                checkpoint=str(tmp_path / "part.npz"), **base))
    assert np.array_equal(full["theta"], resumed["theta"])
    a, b = load_checkpoint(tmp_path / "full.npz"), load_checkpoint(tmp_path / "part.npz")
    assert a["epoch"] == b["epoch"] == 3
    assert [r["test_loss"] for r in a["history"]] == [r["test_loss"] for r in b["history"]]


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "c.npz"
    argv = ["train", "--dataset", "teacher", "--optimizer", "sgd", "--epochs", "1",
            "--checkpoint", str(ckpt), "--quiet"]
    assert main(argv) == 0
    good = load_checkpoint(ckpt)["theta"]
    argv = ["train", "--dataset", "teacher", "--optimizer", "sgd", "--lr", "1e6",
            "--epochs", "3", "--resume", str(ckpt), "--checkpoint", str(ckpt), "--quiet"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "training diverged in epoch 2" in err and "last good checkpoint" in err
    assert np.array_equal(load_checkpoint(ckpt)["theta"], good)
    with pytest.raises(Diverged):
        train(TrainConfig(dataset="teacher", optimizer="sgd", lr=1e6, epochs=1, quiet=True))


def test_checkpoint_of_another_architecture_fails(tmp_path):
    train(TrainConfig(dataset="spirals", epochs=1, batch_size=16, quiet=True,
                      checkpoint=str(tmp_path / "c.npz")))
    with pytest.raises(ValueError, match=r"expected a checkpoint of MLP\(\[2, 8, 3\].* got one of "
                                          r"MLP\(\[2, 32, 3\]"):
        load_checkpoint(tmp_path / "c.npz", MLP([2, 8, 3]))
    with pytest.raises(ValueError, match="expected a checkpoint of"):
        train(TrainConfig(dataset="spirals", sizes=[2, 8, 3], epochs=2, quiet=True,
                          resume=str(tmp_path / "c.npz")))
    with pytest.raises(FileNotFoundError, match="expected a checkpoint at"):
        load_checkpoint(tmp_path / "none.npz")


def test_compare_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "spirals", "--optimizers", "esso,sgd", "--seeds", "2",
                 "--epochs", "2", "--batch-size", "8", "--target", "0.5", "--out", str(out)]) == 0
    table = json.loads((tmp_path / "cmp.json").read_text())["table"]
    assert [r["optimizer"] for r in table] == ["esso", "sgd"]
    for row in table:
        assert row["seeds"] == 2 and 0 <= row["test_accuracy_mean"] <= 1
        assert row["hessian_top_mean"] is not None and row["sample_max_max"] >= row["sample_max_mean"]
    assert (tmp_path / "cmp.csv").read_text().startswith("optimizer,")
    assert (tmp_path / "cmp.png").stat().st_size > 10_000


def test_spectrum_cli(tmp_path, capsys):
    plot = tmp_path / "s.png"
    assert main(["spectrum", "--dataset", "digits", "--sample", "3", "--json",
                 "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rank_bound"] == 10 + 2 * 32 and len(out["eigenvalues"]) == 74
    assert out["num_zeros"] == out["P"] - 74 and plot.stat().st_size > 10_000
    assert main(["spectrum", "--sample", "99999"]) == 2


@pytest.mark.slow
def test_default_training_reaches_95_percent(capsys):
    assert main(["train", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dataset"] == "digits" and summary["optimizer"] == "esso"
    assert summary["test_accuracy"] >= 0.95


def test_spectrum_evolution_from_a_training_log(tmp_path, capsys):
    log = tmp_path / "run.jsonl"
    assert main(["train", "--dataset", "spirals", "--epochs", "2", "--batch-size", "8",
                 "--track-spectrum", "--log", str(log), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["spectrum", "--log", str(log), "--json", "--plot", str(tmp_path / "e.png")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["min"] <= r["max"] for r in rows)
    assert (tmp_path / "e.png").stat().st_size > 5_000
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"epoch": 1}\n')
    assert main(["spectrum", "--log", str(empty)]) == 2
