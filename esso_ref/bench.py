"""``esso-ref bench``: the structured exact routes against dense, iterative and autodiff routes.

Everything runs in one process on the same network, theta and sample; times are medians of
repeated runs after a warm-up, errors are relative to the most exact route available, and peak
memory is measured with tracemalloc (NumPy reports its allocations to it).
"""

from __future__ import annotations

import math
import os
import statistics
import time
import tracemalloc
import warnings

import numpy as np

from .curvature import (
    as_linear_operator,
    eigenvalues,
    hessian,
    hessian_factor,
    hvp,
    newton_direction,
)
from .curvature.spectral import NotDescentWarning
from .mlp import MLP
from .problems import random_problem

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run_bench"]

DEFAULT_SIZES = [[16, 16, 10], [32, 32, 10], [64, 32, 10], [64, 64, 10], [128, 128, 10],
                 [784, 256, 10], [784, 512, 512, 10], [784, 1024, 1024, 10]]
QUICK_SIZES = [[16, 16, 10], [32, 32, 10], [64, 32, 10]]
DENSE_MAX = 6000
LAMBDA = 1e-3


def _time(fn, repeats: int):
    """(median seconds over ``repeats`` runs after one warm-up, last result)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _peak(fn) -> float:
    """Peak traced memory of one call, in MB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


_RSS_CODE = """
import json, sys, warnings
from esso_ref import MLP, eigenvalues, newton_direction
from esso_ref.problems import random_problem
warnings.simplefilter("ignore")


def call(net, theta, X, y):
    if sys.argv[3] == "eigenvalues":
        return eigenvalues(net, theta, X, y)
    return newton_direction(net, theta, X, y, 1e-3, sys.argv[3])


tiny = MLP([2, 2, 2], sys.argv[2], "cross_entropy")
call(tiny, *random_problem(tiny, 1, 0))  # lazy imports (SciPy's LAPACK, threadpoolctl) first
net = MLP(json.loads(sys.argv[1]), sys.argv[2], "cross_entropy")
theta, X, y = random_problem(net, 1, 0)

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key))

try:  # reset the peak to the current resident set (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
before = status("VmRSS:")
call(net, theta, X, y)
print(json.dumps([before, status("VmHWM:")]))
"""


def _peak_rss(net, call: str) -> float | None:
    """Peak RSS growth of a fresh process running one public call, in MB (Linux; else None).

    The process runs ``call`` (``"eigenvalues"`` or a spectral name of ``newton_direction``) once
    on a tiny network (so that lazy imports are not counted), builds the problem, resets its
    peak resident set (``/proc/self/clear_refs``), reads its resident set, runs ``call`` once
    and reads its peak resident set (``VmHWM``).
    """
    import json
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        return None
    out = subprocess.run([sys.executable, "-c", _RSS_CODE, json.dumps(list(net.sizes)),
                          net.activation, call], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None
    before, peak = json.loads(out.stdout.strip().splitlines()[-1])
    return max(peak - before, 0) / 1e6


def _rel(a, b) -> float:
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


def _torch_spectrum(net, theta, X, y):
    """torch.func.hessian + eigvalsh on the equivalent float64 network (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    acts = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "identity": lambda z: z, "sin": torch.sin}
    act = acts[net.activation]
    shapes = [(n_out, n_in) for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:], strict=True)]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def loss(t):
        a, start = Xt, 0
        for l, (n_out, n_in) in enumerate(shapes, start=1):
            W = t[start:start + n_out * n_in].reshape(n_out, n_in)
            b = t[start + n_out * n_in:start + n_out * (n_in + 1)]
            start += n_out * (n_in + 1)
            a = a @ W.T + b
            if l < len(shapes):
                a = act(a)
        return torch.nn.functional.cross_entropy(a, yt)

    def run():
        H = torch.func.hessian(loss)(torch.from_numpy(theta))
        return torch.linalg.eigvalsh(H).numpy()

    return run


def _spectrum_rows(net, theta, X, y, repeats, report):
    """The public ``eigenvalues`` (layer basis) against the Gram route, Lanczos, dense, torch."""
    P = net.num_params
    f = hessian_factor(net, theta, X, y, route="gram")
    t_struct, spec = _time(lambda: eigenvalues(net, theta, X, y), repeats)
    mu = np.asarray(spec.full())  # all P eigenvalues, ascending (the top ones may be zeros)
    report["spectrum_structured_s"] = t_struct
    report["spectrum_gram_s"], _ = _time(
        lambda: hessian_factor(net, theta, X, y, route="gram").eigh(), repeats)
    report["mem_structured_MB"] = _peak(lambda: eigenvalues(net, theta, X, y))
    report["rss_structured_MB"] = _peak_rss(net, "eigenvalues")
    op = as_linear_operator(net, theta, X, y)
    from scipy.sparse.linalg import eigsh

    k = min(10, P - 2)
    t_lanczos, top = _time(lambda: eigsh(op, k=k, which="LA", tol=1e-10,
                                         return_eigenvectors=False), 1)
    report["spectrum_lanczos_top10_s"] = t_lanczos
    report["lanczos_top10_err"] = _rel(np.sort(top), mu[-k:])
    if P <= DENSE_MAX:
        def dense():
            return np.linalg.eigvalsh(hessian(net, theta, X, y))

        t_dense, ev = _time(dense, 1)
        report["spectrum_dense_s"] = t_dense
        report["structured_vs_dense_err"] = _rel(spec.full(), ev)
        report["mem_dense_MB"] = _peak(dense)
        torch_run = _torch_spectrum(net, theta, X, y)
        if torch_run is not None:
            t_torch, ev_t = _time(torch_run, 1)
            report["spectrum_torch_s"] = t_torch
            report["torch_vs_dense_err"] = _rel(ev_t, ev)
    return f


def _newton_rows(net, theta, X, y, f, repeats, report):
    from scipy.sparse.linalg import cg

    P = net.num_params
    g = net.gradient(theta, X, y)

    def plain():
        return newton_direction(net, theta, X, y, LAMBDA)

    def absolute():
        return newton_direction(net, theta, X, y, LAMBDA, "abs")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotDescentWarning)
        report["newton_structured_s"], d = _time(plain, repeats)
        report["newton_push_through_s"], _ = _time(
            lambda: hessian_factor(net, theta, X, y, route="gram").newton(LAMBDA), repeats)
        report["newton_abs_s"], _ = _time(absolute, repeats)
        report["mem_newton_abs_MB"] = _peak(absolute)
        report["rss_newton_abs_MB"] = _peak_rss(net, "abs")

        report["newton_layerwise_s"], _ = _time(
            lambda: newton_direction(net, theta, X, y, LAMBDA, "abs", "layerwise"), repeats)
        if P <= DENSE_MAX:
            H = hessian(net, theta, X, y)
            report["newton_dense_s"], d_dense = _time(
                lambda: np.linalg.solve(hessian(net, theta, X, y) + LAMBDA * np.eye(P), -g), 1)
            report["newton_vs_dense_err"] = _rel(d, d_dense)
            report["newton_backward_err"] = float(
                np.linalg.norm((H + LAMBDA * np.eye(P)) @ d + g)
                / (np.linalg.norm(H + LAMBDA * np.eye(P), 2) * np.linalg.norm(d)
                   + np.linalg.norm(g)))
    op = as_linear_operator(net, theta, X, y, damping=LAMBDA)
    iters = [0]

    def count(_):
        iters[0] += 1

    t0 = time.perf_counter()
    x, info = cg(op, -g, rtol=1e-10, maxiter=20 * P, callback=count)
    report["newton_cg_s"] = time.perf_counter() - t0
    report["cg_iterations"], report["cg_info"] = iters[0], int(info)
    report["cg_err_vs_structured"] = _rel(x, d)


def _breakdown(net, theta, X, y, repeats, report):
    """Gram assembly, r x r eigvalsh / solve of the core, A^T pass, and the bare floors."""
    from .curvature.gram import gram
    from .curvature.state import prepare

    f = hessian_factor(net, theta, X, y, route="gram")
    r = f.n
    report["r"] = r
    report["gram_assembly_s"], _ = _time(lambda: gram(prepare(net, theta, X, y), f.rows),
                                         repeats)
    report["core_eigvals_s"], _ = _time(lambda: f._cholesky_eigvals(), repeats)
    eye = np.eye(r)
    report["core_solve_s"], _ = _time(lambda: np.linalg.solve(f.apply_C(f.G) + LAMBDA * eye,
                                                              f.u), repeats)
    w = np.random.default_rng(0).standard_normal((1, r))
    report["adjoint_pass_s"], _ = _time(lambda: f.adjoint(w), repeats)
    M = np.random.default_rng(1).standard_normal((r, r))
    M = M + M.T
    report["floor_eigvalsh_s"], _ = _time(lambda: np.linalg.eigvalsh(M), repeats)
    report["floor_solve_s"], _ = _time(lambda: np.linalg.solve(M, M[:, 0]), repeats)
    v = np.random.default_rng(2).standard_normal(net.num_params)
    report["gradient_s"], _ = _time(lambda: net.gradient(theta, X, y), max(repeats, 5))
    report["hvp_s"], _ = _time(lambda: hvp(net, theta, X, y, v), max(repeats, 5))


def _per_sample(repeats: int) -> dict:
    """B = 128 per-sample directions on [64, 32, 10]: one stacked call vs a Python loop.

    The loop calls the same exact per-sample algorithm (Gram route of eqs. (24)-(28)) once per
    sample; both spectral "none" (a stacked solve) and "abs" (a stacked eigh) are timed.
    """
    from .curvature import per_sample_directions

    net = MLP([64, 32, 10], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 128, 0)
    out = {}
    for spectral in ("none", "abs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotDescentWarning)
            t_stack, (D, _) = _time(
                lambda s=spectral: per_sample_directions(net, theta, X, y, 0.1, s), repeats)

            def loop(s=spectral):
                return np.stack([hessian_factor(net, theta, X[i], y[i:i + 1],
                                                route="gram").newton(0.1, s)
                                 for i in range(128)])

            t_loop, D_loop = _time(loop, 1)
        out[f"per_sample_{spectral}_stacked_samples_per_s"] = 128 / t_stack
        out[f"per_sample_{spectral}_loop_samples_per_s"] = 128 / t_loop
        out[f"per_sample_{spectral}_speedup"] = t_loop / t_stack
        out[f"per_sample_{spectral}_err"] = _rel(D, D_loop)
    return out


def run_bench(sizes=None, quick: bool = False, repeats: int | None = None,
              activation: str = "tanh", public_only: bool = False,
              max_system: int | None = None) -> dict:
    """Run the benchmark; returns {"machine", "sizes": [per-size report], "per_sample", "fit"}.

    Args:
        sizes: list of network widths (default `DEFAULT_SIZES`, or `QUICK_SIZES`
            with ``quick``).
        quick: small sizes and one repeat (the test suite's smoke run).
        repeats: timed runs per measurement (median), after one warm-up.
        activation: hidden activation of the benchmarked networks.
        public_only: only the public calls against their floors (and the load test).
        max_system: largest mini-batch system B r timed in the public table (default 6000).
    """
    import platform

    from .bench_public import MAX_DENSE_SYSTEM, public_rows, step_under_load

    repeats = repeats or (1 if quick else 3)
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "numpy": np.__version__, "cpus": os.cpu_count(), "blas": _blas_info()}
    public = {"rows": public_rows(sizes, quick, repeats, max_system or MAX_DENSE_SYSTEM),
              "load": None if quick else step_under_load()}
    if public_only:
        return {"machine": machine, "public": public}
    sizes = sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)
    rows = []
    for s in sizes:
        net = MLP(list(s), activation, "cross_entropy")
        theta, X, y = random_problem(net, 1, 0)
        big = net.num_params > 200_000
        reps = 1 if big else repeats
        report = {"sizes": list(s), "P": net.num_params, "r": net.rank_bound}
        f = _spectrum_rows(net, theta, X, y, reps, report)
        _newton_rows(net, theta, X, y, f, reps, report)
        _breakdown(net, theta, X, y, reps, report)
        rows.append(report)
    return {"machine": machine, "public": public, "sizes": rows,
            "per_sample": _per_sample(1 if quick else repeats), "fit": _fit(rows)}


def _blas_info() -> list:
    """The BLAS libraries and their default thread counts (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return []
    return [{k: i.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _fit(rows: list[dict]) -> dict:
    """Exponent k of time ~ P^k for each route (least squares on log-log)."""
    fits = {}
    for key in ("spectrum_structured_s", "spectrum_dense_s", "newton_structured_s",
                "newton_abs_s", "newton_cg_s"):
        pts = [(r["P"], r[key]) for r in rows if key in r and r[key] > 0]
        if len(pts) >= 2:
            x = np.log([p for p, _ in pts])
            t = np.log([v for _, v in pts])
            fits[key] = float(np.polyfit(x, t, 1)[0])
    return fits


def format_table(result: dict) -> str:
    """Human-readable tables of a `run_bench` result: public calls first."""
    from .bench_public import format_public

    head = "public calls with their defaults against their floors:\n" + format_public(
        result["public"]["rows"], result["public"]["load"])
    if "sizes" not in result:
        return head
    return head + "\n\ninternal routes (breakdown):\n" + _routes_table(result)


def _routes_table(result: dict) -> str:
    """The internal routes' table."""
    cols = [("P", "P", "{:>9d}"), ("r", "r", "{:>6d}"),
            ("spectrum_structured_s", "spec struct", "{:>11.4f}"),
            ("spectrum_dense_s", "spec dense", "{:>10.3f}"),
            ("spectrum_torch_s", "spec torch", "{:>10.3f}"),
            ("spectrum_lanczos_top10_s", "lanczos10", "{:>9.3f}"),
            ("spectrum_gram_s", "spec gram", "{:>9.4f}"),
            ("newton_structured_s", "newton", "{:>8.4f}"),
            ("newton_push_through_s", "newt gram", "{:>9.4f}"),
            ("newton_abs_s", "newton|H|", "{:>9.4f}"),
            ("newton_dense_s", "newt dense", "{:>10.3f}"),
            ("newton_cg_s", "cg", "{:>8.3f}"), ("cg_iterations", "cg it", "{:>6d}"),
            ("mem_structured_MB", "MB struct", "{:>9.1f}"),
            ("rss_structured_MB", "RSS struct", "{:>10.1f}"),
            ("mem_dense_MB", "MB dense", "{:>8.1f}")]
    widths = [len(fmt.format(0) if fmt.endswith("d}") else fmt.format(0.0))
              for _, _, fmt in cols]
    lines = [" ".join(f"{name:>{w}}" for (_, name, _), w in zip(cols, widths, strict=True))]
    for row in result["sizes"]:
        lines.append(" ".join(fmt.format(row[key]) if key in row else f"{'-':>{w}}"
                              for (key, _, fmt), w in zip(cols, widths, strict=True)))
    lines.append("")
    lines.append("breakdown (s): " + "; ".join(
        f"P={r['P']}: gram {r['gram_assembly_s']:.4f}, core eig {r['core_eigvals_s']:.4f}, "
        f"floor eigvalsh {r['floor_eigvalsh_s']:.4f}, core solve {r['core_solve_s']:.4f}, "
        f"floor solve {r['floor_solve_s']:.4f}, A^T {r['adjoint_pass_s']:.5f}, "
        f"grad {r['gradient_s']:.5f}, hvp {r['hvp_s']:.5f}" for r in result["sizes"]))
    ps = result["per_sample"]
    for sp in ("none", "abs"):
        lines.append(f"per-sample directions (spectral {sp}), B = 128 on [64, 32, 10]: stacked "
                     f"{ps[f'per_sample_{sp}_stacked_samples_per_s']:.0f} samples/s, loop "
                     f"{ps[f'per_sample_{sp}_loop_samples_per_s']:.0f} samples/s "
                     f"({ps[f'per_sample_{sp}_speedup']:.1f}x)")
    lines.append("fitted exponents (time ~ P^k): " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["fit"].items()))
    return "\n".join(lines)


def targets(result: dict) -> dict:
    """The ratios of the performance targets (docs/performance.md)."""
    out = _public_targets(result["public"])
    if "sizes" not in result:
        return out
    rows = result["sizes"]
    dense = [r for r in rows if "spectrum_dense_s" in r]
    if dense:
        r = max(dense, key=lambda r: r["P"])
        out["dense_over_structured_spectrum"] = r["spectrum_dense_s"] / r["spectrum_structured_s"]
        out["dense_over_structured_at_P"] = r["P"]
    for r in rows:
        if r["sizes"] == [784, 512, 512, 10]:
            out["structured_spectrum_over_eigvalsh_floor"] = (r["spectrum_structured_s"]
                                                              / r["floor_eigvalsh_s"])
            out["newton_over_solve_plus_gradient"] = r["newton_structured_s"] / (
                r["floor_solve_s"] + r["gradient_s"])
    out["hvp_over_gradient"] = max(r["hvp_s"] / r["gradient_s"] for r in rows)
    out["newton_faster_than_cg_everywhere"] = all(
        r["newton_structured_s"] < r["newton_cg_s"] for r in rows)
    out["per_sample_none_speedup"] = result["per_sample"]["per_sample_none_speedup"]
    out["per_sample_abs_speedup"] = result["per_sample"]["per_sample_abs_speedup"]
    return {k: (round(v, 3) if isinstance(v, float) and not math.isnan(v) else v)
            for k, v in out.items()}


def _public_targets(public: dict) -> dict:
    """Worst ratio to the floor per public call, the stacked speed-up and the load ratio."""
    out = {}
    for row in public["rows"]:
        for key, value in row.items():
            if key.endswith("_ratio"):
                name = f"worst_{key[:-6]}_over_floor"
                out[name] = round(max(out.get(name, 0.0), value), 3)
        for key, name in (("per_sample_stacked_speedup", "min_stacked_over_loop_speedup"),
                          ("per_sample_stacked_speedup_none",
                           "min_stacked_over_loop_speedup_none")):
            if key in row:
                out[name] = round(min(out.get(name, math.inf), row[key]), 3)
    if public.get("load"):
        out["esso_step_loaded_over_idle"] = round(public["load"]["ratio"], 3)
    return out
