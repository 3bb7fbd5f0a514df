r"""Every sample's own exact spectrum and damped Newton direction in one stacked call.

docs/math.md eq. (36): for samples i = 1..B, d_i = -(f(H_i) + lam I)^{-1} g_i with
H_i = A_i^T C_i A_i the Hessian of sample i's own loss l_i. Each sample gets its own layer basis
E_i (eqs. (40)-(41), groups of one sample), so H_i = E_i S_i E_i^T with S_i of size q
(q = r with biases, r - (L - 1) without, never more than P); the B systems are solved or
eigendecomposed in one stacked call (eqs. (42)-(44)) and mapped back in one pass. The plain
directions of the Hessian (spectral "none") come from the layer-by-layer elimination of §16
(eqs. (45)-(49)), certified sample by sample, at O(sum_l n_l^3) a sample instead of O(q^3),
once the batch is large enough for that to pay (`SWEEP_MIN_SQUARES`).
"""

from __future__ import annotations

from collections.abc import Callable

import array_api_compat

from .._checks import check_choice
from ..threads import (
    PARALLEL_WORK,
    limit_blas_for,
    sample_system_size,
    sample_workers,
    single_blas_thread,
)
from . import stagewise
from .core import Rows
from .exact import FEWER_SAMPLES, check_coordinates, coordinates
from .factor import CURVATURES
from .spectral import check_damping, check_spectral
from .state import State, prepare
from .workers import PIECE_WORK, map_chunks, pieces

__all__ = ["chunk_plan", "per_sample_directions", "per_sample_eigenvalues"]

SWEEP_MIN_SQUARES = 2.5e4
"""The stacked plain directions of the Hessian are computed layer by layer (eqs. (45)-(49))
once B r^2 >= SWEEP_MIN_SQUARES L; below it the layer basis's r x r solves (eq. (43)) cost
less than the sweeps' fixed work, some 0.4 ms a layer. The basis costs about r^2 a sample
(B r^3 multiply-adds at a rate that grows with r for these small systems). Measured crossovers
on eight networks (r = 42 to 266, L = 2 to 5) lie at B r^2 / L = 1.8e4 to 4e4,
docs/performance.md."""

SWEEP_PIECE = PIECE_WORK * stagewise.PARALLEL_SWEEPS / PARALLEL_WORK
"""The most multiply-adds of sweeps in one chunk: as long as `PIECE_WORK` of r x r routes (the
sweeps' small stacked products run slower per multiply-add, in the ratio of the thresholds)."""


@limit_blas_for(sample_system_size)
def per_sample_directions(net, theta, X, y, damping: float = 1e-3,
                          spectral: str | Callable = "none", curvature: str = "hessian"):
    """Each sample's exact damped Newton direction, all in one stacked call, eqs. (36), (42)-(49).

    Spectral ``"none"`` with the Hessian: the certified layer-by-layer elimination, eqs.
    (45)-(49) (a sample whose certificate fails is solved by eq. (43)) from B r^2 >= 2.5e4 L
    (`SWEEP_MIN_SQUARES`); otherwise eqs. (42)-(44).
    Large batches of small systems are spread over worker threads, one BLAS thread each
    (`esso_ref.threads.sample_workers`; ``threadpoolctl.threadpool_limits(1)`` keeps the call
    on one); a callable ``spectral`` then runs in several threads at once, on each worker's
    eigenvalues, so it must act entry by entry and be thread-safe.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0).
        y: labels (cross_entropy) or targets (mse).
        damping: lam > 0.
        spectral: ``"none"``, ``"abs"``, ``"clip"`` or a callable (see newton_direction).
        curvature: ``"hessian"`` or ``"ggn"``.

    Returns:
        (D, d_mean): D of shape (B, P) with D[i] = -(f(H_i) + lam I)^{-1} g_i, and its mean
        (the layer-by-layer route sums it from its pairs: equal to ``mean(D, axis=0)`` to
        rounding, not bit for bit).

    Raises:
        ValueError, TypeError: bad inputs, damping <= 0, unknown names.
        SingularCurvatureError: some f(H_i) + damping I is singular to working precision.

    Warns:
        NotDescentWarning: with spectral ``"none"``, when some d_i is not a descent direction.
    """
    lam = check_damping(damping)
    spectral = check_spectral(spectral)
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    if spectral == "none" and curvature == "hessian" and _sweeps_pay(state):
        return _plain_directions(state, lam)
    if spectral == "none":  # the descent test warns from inside: one worker
        D = coordinates(state, Rows.of(net.sizes, ggn=curvature == "ggn"), 1).newton(lam,
                                                                                  spectral)
    else:
        rows = Rows.of(net.sizes, ggn=curvature == "ggn")
        P = net.num_params  # the directions, and a chunk's own before it is written in
        check_coordinates(state, rows, 1, squares=4, extra=2 * P, hint=FEWER_SAMPLES)
        D = _dense_directions(state, lambda sub: coordinates(sub, rows, 1).newton(lam, spectral))
    return D, state.xp.mean(D, axis=0)


def _sweeps_pay(state: State) -> bool:
    """Whether the layer-by-layer sweeps beat the layer basis here (`SWEEP_MIN_SQUARES`)."""
    return state.B * float(state.net.rank_bound) ** 2 >= SWEEP_MIN_SQUARES * state.L


def chunk_plan(net, batch: int, sweeps: bool = False) -> tuple[int, int]:
    """(workers, chunks) of a stacked call of ``batch`` samples on ``net`` (NumPy, BLAS limited).

    The work of a sample: its r x r factorisation of eq. (42) (threads from
    `esso_ref.threads.PARALLEL_WORK`, chunks of at most `workers.PIECE_WORK`), or with
    ``sweeps`` its sweeps of eq. (47) (`stagewise.sweep_work`, from `stagewise.PARALLEL_SWEEPS`,
    chunks of at most `SWEEP_PIECE`).
    """
    r = net.rank_bound
    if sweeps:
        work, least, cap = stagewise.sweep_work(net.sizes), stagewise.PARALLEL_SWEEPS, SWEEP_PIECE
    else:
        work, least, cap = float(r) ** 3, PARALLEL_WORK, PIECE_WORK
    workers = sample_workers(batch, r, work, least)
    return (1, 1) if workers == 1 else (workers, pieces(batch, work, workers, cap))


def _plan(state: State, sweeps: bool = False) -> tuple[int, int]:
    """`chunk_plan` of the call on ``state``, or one worker.

    One worker off NumPy, and where the call's BLAS limit did not take effect (threadpoolctl
    lets only one Python thread set OpenBLAS's process-wide thread count; in any other thread
    BLAS keeps its threads).
    """
    if not array_api_compat.is_numpy_namespace(state.xp) or not single_blas_thread():
        return 1, 1
    return chunk_plan(state.net, state.B, sweeps)


def _rows_by_chunks(state: State, plan: tuple[int, int], solve: Callable) -> tuple:
    """(D, returns): one (B, P) array whose rows the chunks of ``plan`` write, and their returns.

    Each chunk calls ``solve(sub, part, out)`` with ``out`` its rows of D; returns in order.
    """
    D = state.zeros((state.B, state.net.num_params))
    return D, map_chunks(state, lambda sub, part: solve(sub, part, D[part, :]), *plan)


def _dense_directions(state: State, solve: Callable):
    """The (B, P) directions of the r x r routes, ``solve(state of a chunk)`` for each chunk."""
    plan = _plan(state)
    if plan[0] == 1:
        return solve(state)

    def chunk(sub, part, out):
        out[...] = solve(sub)

    return _rows_by_chunks(state, plan, chunk)[0]


def _joined(state: State, parts: list):
    """The chunks' (B_k, ...) results, stacked along the samples."""
    return parts[0] if len(parts) == 1 else state.xp.concat(parts, axis=0)


def _plain_directions(state: State, lam: float) -> tuple:
    """(D, mean): the layer-by-layer directions of every sample and their mean, eqs. (45)-(49).

    `stagewise.solve` on one worker or on chunks. The workers write into one (B, P) array and
    sum their own samples from the pairs (no pass over the array); one NotDescentWarning
    counts the ascending samples of all of them.
    """
    plan = _plan(state, sweeps=True)
    if plan[0] == 1:
        D, ascending, total = stagewise.solve(state, lam)
        parts = [(ascending, total)]
    else:
        stagewise.check_memory(state)

        def chunk(sub, part, out):
            _, ascending, total = stagewise.solve(sub, lam, out)
            return [part.start + i for i in ascending], total

        D, parts = _rows_by_chunks(state, plan, chunk)
    ascending = [i for chunk_ascending, _ in parts for i in chunk_ascending]
    if ascending:
        stagewise.warn_ascending(state, ascending, lam)
    total = parts[0][1]
    for _, more in parts[1:]:
        total = total + more
    return D, total / state.B


@limit_blas_for(sample_system_size)
def per_sample_eigenvalues(net, theta, X, y, curvature: str = "hessian"):
    """Every sample's exact spectrum in one stacked call, eqs. (36), (42).

    Large batches of small systems are spread over worker threads, as in
    `per_sample_directions`.

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0).
        y: labels (cross_entropy) or targets (mse).
        curvature: ``"hessian"`` or ``"ggn"``.

    Raises:
        ValueError, TypeError: bad inputs or an unknown curvature.

    Returns:
        (B, q) array, ascending per row: the eigenvalues of S_i (eq. (42)), i.e. every
        eigenvalue of H_i that can be non-zero (eq. (40): q = r with
        biases, r - (L - 1) without; GGN: n_L); H_i has P - q further exact zeros.
    """
    check_choice("curvature", curvature, CURVATURES)
    state = prepare(net, theta, X, y)
    rows = Rows.of(net.sizes, ggn=curvature == "ggn")
    check_coordinates(state, rows, 1, squares=1, hint=FEWER_SAMPLES)  # every worker's copy at once
    return _joined(state, map_chunks(state, lambda sub, _: coordinates(sub, rows, 1).eigvalsh(),
                                     *_plan(state)))
