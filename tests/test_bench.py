"""Smoke test of the benchmark harness (no timing assertions)."""

import json

from esso_ref.cli import main


def test_bench_quick_runs_and_reports(tmp_path, capsys):
    plot = tmp_path / "bench.png"
    assert main(["bench", "--quick", "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["P"] for r in result["sizes"]] == [442, 1386, 2410]
    for row in result["sizes"]:
        for key in ("spectrum_structured_s", "spectrum_dense_s", "newton_structured_s",
                    "newton_push_through_s", "spectrum_gram_s", "rss_structured_MB",
                    "rss_newton_abs_MB",
                    "newton_abs_s", "newton_cg_s", "cg_iterations", "mem_structured_MB",
                    "gram_assembly_s", "floor_eigvalsh_s", "hvp_s", "gradient_s"):
            assert key in row and row[key] >= 0
        # the harness also measures accuracy: every route agrees with the dense one
        assert row["structured_vs_dense_err"] <= 1e-12
        assert row["newton_backward_err"] <= 1e3 * 2.2e-16
        assert row["newton_vs_dense_err"] <= 1e-10
        assert row["lanczos_top10_err"] <= 1e-8
    assert {"dense_over_structured_spectrum", "hvp_over_gradient",
            "per_sample_none_speedup", "min_stacked_over_loop_speedup",
            "min_stacked_over_loop_speedup_none"} <= set(result["targets"])
    assert set(result["fit"]) >= {"spectrum_structured_s", "spectrum_dense_s"}
    stacked = [row for row in result["public"]["rows"] if "per_sample_none_s" in row]
    assert stacked and all(row["workers"][k] >= 1 for row in stacked for k in ("none", "abs"))
    assert plot.stat().st_size > 10_000


def test_bench_takes_a_network_with_fewer_than_ten_eigenvalues(capsys):
    # [8, 4] has 4 non-zero eigenvalues: the Lanczos check compares the top of all P of them
    assert main(["bench", "--quick", "--sizes", "8,4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sizes"][0]["lanczos_top10_err"] <= 1e-8
