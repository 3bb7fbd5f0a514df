"""Bulk and outliers of exact Hessian / GGN spectra (docs/experiments.md, last section).

For digits (10 classes), spirals (3) and teacher (regression), at initialisation and after a
short Adam training: exact per-sample spectra and exact spectra of disjoint mini-batches of
size B (B r <= P) with esso_ref.analysis; the outlier count of each mini-batch spectrum next to
the class count. Then Lanczos (SciPy eigsh) and stochastic Lanczos quadrature (SLQ) on
esso_ref.as_linear_operator against the exact spectrum of the same mini-batch.

Run: python docs/experiments/bulk_outliers.py  (a few minutes on two cores); writes
docs/experiments/bulk_outliers.json and docs/figures/bulk_outliers_*.png.
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import eigsh
from scipy.stats import wasserstein_distance

import esso_ref as er
from esso_ref.analysis import AnalysisConfig, analyze, resolve, summarize
from esso_ref.analysis.figure import plot_summary
from esso_ref.train import TrainConfig, train

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "figures"
CASES = {  # name: (sizes, B, samples analysed, training epochs)
    "digits": ([64, 32, 10], 32, 128, 10),
    "spirals": ([2, 32, 32, 3], 8, 128, 30),
    "teacher": ([8, 32, 32, 4], 8, 128, 30),
}


def _train(name, sizes, epochs, tmp):
    ckpt = str(Path(tmp) / f"{name}.npz")
    result = train(TrainConfig(dataset=name, optimizer="adam", sizes=sizes, epochs=epochs,
                               batch_size=32, lr=3e-3, checkpoint=ckpt, quiet=True))
    return ckpt, result["summary"]


def _case(name, sizes, B, n, checkpoint, tmp, tag):
    config = AnalysisConfig(dataset=name, sizes=sizes, limit=n, ggn=True, batch_size=B,
                            checkpoint=checkpoint)
    store = Path(tmp) / f"{name}_{tag}.zarr"
    analyze(config, store, progress=False)
    summary = summarize(store)
    plot_summary(summary, FIGURES / f"bulk_outliers_{name}_{tag}.png")
    row = {}
    for c in ("hessian", "ggn"):
        b = summary[c]["batches"]
        row[c] = {"outliers": b["outliers"], "outliers_median": b["outliers_median"],
                  "bulk_edge_median": b["bulk_edge_median"],
                  "gap_ratio_median": b["gap_ratio_median"],
                  "largest_mean": summary[c]["overall"]["largest_mean"],
                  "negative_fraction": summary[c]["overall"]["negative_fraction"]}
    return config, row


def _slq(op, P, steps=40, probes=8, seed=0):
    """Stochastic Lanczos quadrature: (nodes, weights) of the spectral density."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for _ in range(probes):
        v = rng.choice([-1.0, 1.0], P) / np.sqrt(P)
        V, alpha, beta = [v], [], []
        for j in range(steps):
            w = op.matvec(V[-1]) - (beta[-1] * V[-2] if beta else 0)
            alpha.append(V[-1] @ w)
            w -= alpha[-1] * V[-1]
            w -= np.array(V).T @ (np.array(V) @ w)  # full re-orthogonalisation
            beta.append(np.linalg.norm(w))
            if beta[-1] < 1e-10 or j == steps - 1:
                break
            V.append(w / beta[-1])
        T = np.diag(alpha) + np.diag(beta[:len(alpha) - 1], 1) + np.diag(beta[:len(alpha) - 1], -1)
        theta, U = np.linalg.eigh(T)
        nodes.append(theta)
        weights.append(U[0] ** 2 / probes)
    return np.concatenate(nodes), np.concatenate(weights)


def _lanczos(config, B):
    problem = resolve(config)
    net, theta, X, y = problem.net, problem.theta, problem.X[:B], problem.y[:B]
    exact = np.asarray(er.eigenvalues(net, theta, X, y).full())
    op = er.as_linear_operator(net, theta, X, y)
    top = np.sort(eigsh(op, k=10, which="LA", tol=1e-10, return_eigenvectors=False))[::-1]
    nodes, weights = _slq(op, net.num_params)
    return {"P": net.num_params, "B": B, "exact_top10": exact[::-1][:10].tolist(),
            "eigsh_top10": top.tolist(),
            "eigsh_top10_max_rel_error": float(np.max(np.abs(top - exact[::-1][:10])
                                                      / np.abs(exact[::-1][:10]))),
            "slq_wasserstein1": float(wasserstein_distance(exact, nodes, None, weights)),
            "exact_negative_mass": float(np.mean(exact < 0)),
            "slq_negative_mass": float(np.sum(weights[nodes < 0])),
            "exact_max": float(exact[-1]), "slq_max_node": float(nodes.max()),
            "exact_mean_abs": float(np.mean(np.abs(exact)))}


def main():
    """Run every case, write the JSON and figures, print the Lanczos comparison."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (sizes, B, n, epochs) in CASES.items():
            ckpt, fit = _train(name, sizes, epochs, tmp)
            _, init = _case(name, sizes, B, n, None, tmp, "init")
            config, trained = _case(name, sizes, B, n, ckpt, tmp, "trained")
            out[name] = {"sizes": sizes, "B": B, "samples": n, "epochs": epochs,
                         "training": fit, "init": init, "trained": trained}
            if name == "digits":
                out["lanczos_digits_trained"] = _lanczos(config, B)
            print(name, json.dumps({k: {c: v[c]["outliers_median"] for c in ("hessian", "ggn")}
                                    for k, v in (("init", init), ("trained", trained))}),
                  file=sys.stderr)
    (HERE / "bulk_outliers.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out["lanczos_digits_trained"], indent=1))


if __name__ == "__main__":
    main()
