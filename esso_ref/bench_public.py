"""The public calls with their defaults against their floors (``esso-ref bench``).

See docs/performance.md.

A floor is what no exact route can beat on the same machine in the same run: one gradient
(per-sample gradients for the stacked calls) plus a bare dense routine of the system's size,
``solve`` for spectral ``"none"``, ``eigh`` for an adjusted direction, ``eigvalsh`` for a
spectrum (for the stacked per-sample calls: the same routine on B stacked r x r matrices).
Times are medians after a warm-up (calls under 0.5 s / 3 are repeated until 0.5 s was
measured, at most 100 times: medians of 3 millisecond calls are noise); every call runs with
esso_ref's default BLAS thread policy.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .curvature import (
    eigenvalues,
    hessian_factor,
    newton_direction,
    per_sample_directions,
    per_sample_eigenvalues,
)
from .curvature.core import Rows
from .curvature.exact import coordinates
from .curvature.per_sample import chunk_plan
from .curvature.spectral import NotDescentWarning
from .curvature.state import prepare
from .curvature.workers import chunks, map_chunks
from .mlp import MLP
from .problems import random_problem
from .threads import (
    blas_threads,
    limit_blas_for,
    sample_system_size,
    threads_for,
)

__all__ = ["PUBLIC_SIZES", "QUICK_PUBLIC_SIZES", "format_public", "public_rows"]

PUBLIC_SIZES = [[64, 32, 32, 10], [64, 64, 64, 10], [784, 128, 128, 10], [784, 512, 512, 10]]
QUICK_PUBLIC_SIZES = [[16, 16, 10], [32, 32, 10]]
MAX_DENSE_SYSTEM = 6000
"""Mini-batch rows are skipped when B r exceeds this (a bare eigh alone would take minutes);
``esso-ref bench --max-system`` raises it. Larger systems are timed once, without warm-up."""


STACKED_DAMPING = 0.1
"""The damping of the stacked per-sample calls and of their loop."""

MIN_SECONDS = 0.5
"""Fast calls are repeated (up to `MAX_REPEATS` times) until this much time was measured."""
MAX_REPEATS = 100


def _time(fn, repeats: int, min_seconds: float = MIN_SECONDS, warmup: bool = True) -> float:
    """Median seconds of ``fn`` after a warm-up: at least ``repeats`` runs, more while short."""
    if warmup:
        fn()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < MAX_REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)



def _floors(n: int, batch: int, repeats: int, budget: float, workers: dict | None = None) -> dict:
    """Median seconds of bare solve / eigh / eigvalsh of ``batch`` stacked n x n matrices.

    ``workers``: {routine: k}; with k > 1 the stack is split into k chunks, each routine run in
    its own thread, as the stacked per-sample calls split their samples
    (`esso_ref.curvature.workers`).
    """
    warm = n * batch <= MAX_DENSE_SYSTEM
    M = np.random.default_rng(0).standard_normal((batch, n, n))
    M = M + np.swapaxes(M, -1, -2)
    b = M[..., 0:1]
    routines = {"solve": lambda k: np.linalg.solve(M[k], b[k]),
                "eigh": lambda k: np.linalg.eigh(M[k]),
                "eigvalsh": lambda k: np.linalg.eigvalsh(M[k])}

    def spread(fn, count: int):
        if count == 1:
            return fn(slice(None))
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(fn, chunks(batch, count)))

    counts = {kind: (workers or {}).get(kind, 1) for kind in routines}
    with blas_threads(threads_for(n)):
        return {kind: _time(lambda fn=fn, k=counts[kind]: spread(fn, k), repeats, budget, warm)
                for kind, fn in routines.items()}


def _batch_row(net: MLP, B: int, repeats: int, budget: float) -> dict:
    """One network, one batch size: public batch calls against gradient + r_B-sized routine."""
    theta, X, y = random_problem(net, B, 0)
    n = B * net.rank_bound
    grad = _time(lambda: net.gradient(theta, X, y), repeats, budget)
    floor = _floors(n, 1, repeats, budget)
    calls = {
        "newton_none": (lambda: newton_direction(net, theta, X, y), "solve"),
        "newton_abs": (lambda: newton_direction(net, theta, X, y, spectral="abs"), "eigh"),
        "newton_clip": (lambda: newton_direction(net, theta, X, y, spectral="clip"), "eigh"),
        "eigenvalues": (lambda: eigenvalues(net, theta, X, y), "eigvalsh"),
    }
    row = {"sizes": list(net.sizes), "B": B, "P": net.num_params, "n": n, "gradient_s": grad}
    for name, (fn, kind) in calls.items():
        t = _time(fn, repeats, budget, n <= MAX_DENSE_SYSTEM)
        row[f"{name}_s"], row[f"{name}_floor_s"] = t, grad + floor[kind]
        row[f"{name}_ratio"] = t / (grad + floor[kind])
    return row


def _per_sample_row(net: MLP, B: int, repeats: int, budget: float) -> dict:
    """Stacked per-sample calls against per-sample gradients + B stacked r x r routines.

    The routines of the floor are spread over as many threads as the calls spread their
    samples (``workers``, `esso_ref.threads.sample_workers`); the loop is what a user's loop of
    one-sample calls takes.
    """
    theta, X, y = random_problem(net, B, 1)
    dense = chunk_plan(net, B)[0]  # r x r factorisations (eq. (42))
    workers = {"none": chunk_plan(net, B, sweeps=True)[0], "abs": dense}
    grad = _time(lambda: net.per_sample_gradients(theta, X, y), repeats, budget)
    floor = _floors(net.rank_bound, B, repeats, budget,
                    {"solve": workers["none"], "eigh": dense, "eigvalsh": dense})
    calls = {
        "per_sample_none": (lambda: per_sample_directions(net, theta, X, y, STACKED_DAMPING),
                            "solve"),
        "per_sample_abs": (lambda: per_sample_directions(net, theta, X, y, STACKED_DAMPING,
                                                         "abs"), "eigh"),
        "per_sample_eigenvalues": (lambda: per_sample_eigenvalues(net, theta, X, y), "eigvalsh"),
    }
    row = {"sizes": list(net.sizes), "B": B, "P": net.num_params, "n": net.rank_bound,
           "workers": workers}
    for name, (fn, kind) in calls.items():
        t = _time(fn, repeats, budget)
        row[f"{name}_s"], row[f"{name}_floor_s"] = t, grad + floor[kind]
        row[f"{name}_ratio"] = t / (grad + floor[kind])

    for spectral in ("none", "abs"):
        def loop(spectral=spectral):
            return [newton_direction(net, theta, X[i], y[i:i + 1], STACKED_DAMPING, spectral)
                    for i in range(B)]

        row[f"per_sample_loop_{spectral}_s"] = _time(loop, 1, budget)
    row["per_sample_none_basis_s"] = _time(lambda: _basis_directions(net, theta, X, y), repeats,
                                           budget)
    row["per_sample_stacked_speedup_none"] = (row["per_sample_loop_none_s"]
                                              / row["per_sample_none_s"])
    row["per_sample_stacked_speedup"] = row["per_sample_loop_abs_s"] / row["per_sample_abs_s"]
    return row


@limit_blas_for(sample_system_size)
def _basis_directions(net: MLP, theta, X, y):
    """The stacked plain directions in the layer basis (eq. (43)): the route before eq. (45).

    Under the same BLAS thread policy and over the same workers as `per_sample_directions`.
    """
    state = prepare(net, theta, X, y)
    parts = map_chunks(state, lambda sub, _: coordinates(sub, Rows.of(net.sizes), 1).newton(
        STACKED_DAMPING, "none", descent=False), *chunk_plan(net, state.B))
    return np.concatenate(parts, axis=0)


def public_rows(sizes=None, quick: bool = False, repeats: int = 3,
                max_system: int = MAX_DENSE_SYSTEM) -> list[dict]:
    """Rows of the public-call table: B = 1 and B = 8 per size, and B = 128 stacked calls.

    A mini-batch row runs only while B r <= ``max_system``.
    """
    sizes = sizes or (QUICK_PUBLIC_SIZES if quick else PUBLIC_SIZES)
    budget = 0.0 if quick else MIN_SECONDS
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotDescentWarning)
        for s in sizes:
            net = MLP(list(s), "tanh", "cross_entropy")
            for B in (1, 8):
                if B == 1 or B * net.rank_bound <= max_system:
                    reps = 1 if B > 1 and net.num_params > 200_000 else repeats
                    rows.append(_batch_row(net, B, reps, budget))
            if net.num_params <= 200_000:
                rows.append(_per_sample_row(net, 8 if quick else 128, 1 if quick else repeats,
                                            budget))
    return rows


def _busy(seconds: float) -> subprocess.Popen:
    """A process that keeps both cores busy (two-threaded matrix products) for ``seconds``."""
    code = ("import numpy as np, time\nA = np.random.rand(600, 600)\nt = time.time()\n"
            f"while time.time() - t < {seconds}:\n    A = A @ A; A /= np.abs(A).max()\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def step_under_load(repeats: int = 20) -> dict:
    """One default ESSO step, idle and with another process keeping both cores busy.

    The step of the default ``esso-ref train``: digits network [64, 32, 10], B = 1, |H|,
    damping 10.
    """
    net = MLP([64, 32, 10], "tanh", "cross_entropy")
    theta, X, y = random_problem(net, 1, 2)

    def step():
        return hessian_factor(net, theta, X, y).newton(10.0, "abs")

    idle = _time(step, repeats)
    busy = _busy(30.0)
    try:
        time.sleep(0.5)
        loaded = _time(step, repeats)
    finally:
        busy.kill()
        busy.wait()
    return {"esso_step_idle_s": idle, "esso_step_loaded_s": loaded, "ratio": loaded / idle}


def format_public(rows: list[dict], load: dict | None = None) -> str:
    """Aligned tables of the public calls: time, floor and ratio, then stacked against a loop.

    The ratio is time / floor; the stacked per-sample calls' speed-up is loop / stacked.
    """
    names = ["newton_none", "newton_abs", "newton_clip", "eigenvalues", "per_sample_none",
             "per_sample_abs", "per_sample_eigenvalues"]
    lines = ["public calls against their floors (gradient + the bare dense routine)",
             f"{'network':24} {'B':>4} {'call':24} {'time ms':>10} {'floor ms':>10} {'ratio':>7}"]
    stacked = []
    for row in rows:
        for name in names:
            if f"{name}_s" in row:
                lines.append(f"{row['sizes']!s:24} {row['B']:>4} {name:24} "
                             f"{1e3 * row[name + '_s']:>10.2f} "
                             f"{1e3 * row[name + '_floor_s']:>10.2f} {row[name + '_ratio']:>6.2f}x")
        for spectral, key in (("none", "per_sample_stacked_speedup_none"),
                              ("abs", "per_sample_stacked_speedup")):
            if key in row:
                stacked.append(f"{row['sizes']!s:24} {row['B']:>4} {row['workers'][spectral]:>7} "
                               f"{spectral:>8} "
                               f"{1e3 * row['per_sample_' + spectral + '_s']:>12.2f} "
                               f"{1e3 * row['per_sample_loop_' + spectral + '_s']:>10.2f} "
                               f"{row[key]:>9.2f}x")
    basis = [f"{row['sizes']!s:24} {row['B']:>4} {1e3 * row['per_sample_none_s']:>12.2f} "
             f"{1e3 * row['per_sample_none_basis_s']:>12.2f} "
             f"{row['per_sample_none_basis_s'] / row['per_sample_none_s']:>9.2f}x"
             for row in rows if "per_sample_none_basis_s" in row]
    if basis:
        lines += ["", "stacked plain directions: the default (layer by layer, eqs. (45)-(49), "
                  "from B r^3 = 2e6 on) against the layer basis (eq. (43))",
                  f"{'network':24} {'B':>4} {'default ms':>12} {'basis ms':>12} {'speed-up':>10}",
                  *basis]
    if stacked:
        lines += ["", "stacked per-sample directions against a loop of newton_direction",
                  f"{'network':24} {'B':>4} {'workers':>7} {'spectral':>8} {'stacked ms':>12} "
                  f"{'loop ms':>10} "
                  f"{'speed-up':>10}", *stacked]
    if load:
        lines += ["", f"ESSO step idle {1e3 * load['esso_step_idle_s']:.2f} ms, with both cores "
                  f"busy {1e3 * load['esso_step_loaded_s']:.2f} ms ({load['ratio']:.2f}x)"]
    return "\n".join(lines)
