"""Stacked per-sample calls spread over worker threads agree with the same calls on one thread.

`esso_ref.threads.sample_workers` decides the number of workers; these tests force it (every
machine, whatever its cores) and compare with one worker and with dense references, in eps.
"""

import os
import re
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import esso_ref as er
from esso_ref import threads
from esso_ref._memory import InsufficientMemoryError
from esso_ref.curvature import per_sample, stagewise, workers
from esso_ref.curvature.state import prepare
from esso_ref.problems import random_problem


@pytest.fixture(autouse=True)
def _sweeps_for_every_batch(monkeypatch):
    """These tests exercise the sweeps on small networks: take them at any batch size."""
    from esso_ref.curvature import per_sample

    monkeypatch.setattr(per_sample, "SWEEP_MIN_SQUARES", 0)

EPS = np.finfo(np.float64).eps


def _problem(sizes, B, seed, activation="tanh", bias=True):
    net = er.MLP(sizes, activation=activation, bias=bias,
                 loss="mse" if sizes[-1] == 1 else "cross_entropy")
    theta, X, y = random_problem(net, B, seed)
    return net, theta, X, y


@pytest.fixture
def spread(monkeypatch):
    """Force ``k`` workers on every stacked call (k = 1: one thread)."""

    def force(k):
        monkeypatch.setattr(per_sample, "sample_workers",
                            lambda batch, size, *args: min(k, batch))

    return force


@pytest.mark.parametrize("batch, count", [(1, 1), (7, 3), (8, 2), (5, 5), (128, 2)])
def test_chunks_cover_the_batch_in_order(batch, count):
    parts = workers.chunks(batch, count)
    assert [i for part in parts for i in range(batch)[part]] == list(range(batch))
    lengths = [part.stop - part.start for part in parts]
    assert len(parts) == count and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("count", [0, 4])
def test_chunks_refuse_impossible_worker_counts(count):
    with pytest.raises(ValueError, match=r"expected 1 <= workers <= batch = 3, got"):
        workers.chunks(3, count)


def test_map_chunks_raises_the_first_failing_chunk_after_all_ran():
    net, theta, X, y = _problem([3, 4, 2], 6, 0)
    state, seen = prepare(net, theta, X, y), []

    def fn(sub, part):
        seen.append(part.start)
        if part.start > 0:
            raise ValueError(f"chunk at {part.start}")
        return sub.B

    with pytest.raises(ValueError, match="chunk at 2"):
        workers.map_chunks(state, fn, 3)
    assert sorted(seen) == [0, 2, 4]


def test_map_chunks_waits_for_every_chunk_before_raising():
    net, theta, X, y = _problem([3, 4, 2], 4, 0)
    state, finished = prepare(net, theta, X, y), []
    before = threading.active_count()

    def fn(sub, part):
        if part.start == 0:
            raise ValueError("first chunk")
        time.sleep(0.3)
        finished.append(part.start)

    with pytest.raises(ValueError, match="first chunk"):
        workers.map_chunks(state, fn, 2)
    assert finished == [2] and threading.active_count() == before


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_drops_the_chunks_not_started_and_waits_for_the_running_ones():
    net, theta, X, y = _problem([3, 4, 2], 6, 0)
    state, started, finished = prepare(net, theta, X, y), [], []
    before = threading.active_count()
    both = threading.Barrier(2)

    def fn(sub, part):
        started.append(sub.B)
        if both.wait() == 0:  # both workers run: one of them presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        finished.append(part.start)

    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            workers.map_chunks(state, fn, 2, 6)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert started == [1, 1] and len(finished) == 2  # two ran to their end, four never started
    assert threading.active_count() == before


@pytest.mark.parametrize("batch, work, count", [(128, 522.0 ** 3, 2), (128, 266.0 ** 3, 3),
                                                (128, 138.0 ** 3, 2), (3, 1e12, 2), (7, 1e9, 4)])
def test_pieces_keep_every_chunk_small_and_shared_evenly(batch, work, count):
    k = workers.pieces(batch, work, count)
    sizes = [part.stop - part.start for part in workers.chunks(batch, k)]
    assert k == batch or k % count == 0
    assert k == batch or max(sizes) * work <= workers.PIECE_WORK + work
    assert k == count or -(-batch // (k - count)) * work > workers.PIECE_WORK  # none needless


def test_workers_run_one_blas_thread_in_the_callers_context(monkeypatch):
    net, theta, X, y = _problem([3, 4, 2], 4, 0)
    state, seen = prepare(net, theta, X, y), []

    def fn(sub, part):
        seen.append((threads.current_threads(), np.geterr()["over"],
                     threads.sample_workers(10**6, 10)))

    @threads.limit_blas_for(lambda: 10)  # as a public call: records the 2 threads it found
    def call():
        assert threads.sample_workers(10**6, 10) == 2
        workers.map_chunks(state, fn, 2)

    with threadpool_limits(2), np.errstate(over="raise"):
        call()
    assert seen == [(1, "raise", 1)] * 2  # and no worker spreads again


def test_workers_never_exceed_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 1)
    with threadpool_limits(2):
        assert threads.sample_workers(128, threads.SMALL_PROBLEM - 1) == 1
    monkeypatch.setattr(threads, "cores", lambda: 8)
    with threadpool_limits(2):
        assert threads.sample_workers(128, threads.SMALL_PROBLEM - 1) == 2


def test_sample_workers_follow_size_work_and_the_threads_found():
    big, small = 128, threads.SMALL_PROBLEM - 1
    with threadpool_limits(2):
        assert threads.sample_workers(big, small) == 2
        assert threads.sample_workers(big, threads.SMALL_PROBLEM) == 1  # BLAS's own threads
        assert threads.sample_workers(2, 10) == 1  # too little work for a thread
        assert threads.sample_workers(1, small) == 1
    with threadpool_limits(1):  # a user's limit: one worker
        assert threads.sample_workers(big, small) == 1


@pytest.mark.parametrize("sizes, plain, dense", [([64, 32, 32, 10], 1, 2),
                                                  ([64, 64, 64, 10], 2, 2),
                                                  ([784, 128, 128, 10], 2, 2)])
def test_plain_directions_weigh_their_sweeps_not_the_r_x_r_system(sizes, plain, dense):
    r = er.MLP(sizes).rank_bound
    with threadpool_limits(2):
        assert threads.sample_workers(128, r, stagewise.sweep_work(sizes),
                                      stagewise.PARALLEL_SWEEPS) == plain
        assert threads.sample_workers(128, r) == dense


def test_sweeps_spread_from_their_own_threshold():
    sizes = [20, 60, 60, 3]  # 192 samples: 6.1e7 multiply-adds of sweeps, below PARALLEL_WORK
    work = 192 * stagewise.sweep_work(sizes)
    assert stagewise.PARALLEL_SWEEPS <= work < threads.PARALLEL_WORK
    with threadpool_limits(2):
        assert threads.sample_workers(192, er.MLP(sizes).rank_bound, work / 192,
                                      stagewise.PARALLEL_SWEEPS) == 2


def test_the_public_call_spreads_over_the_threads_it_found(monkeypatch):
    net, theta, X, y = _problem([20, 60, 60, 3], 8, 1)  # B r^3 = 8 * 243^3 > PARALLEL_WORK
    assert X.shape[0] * net.rank_bound ** 3 >= threads.PARALLEL_WORK
    used, real = [], workers.map_chunks

    def spy(state, fn, count, *more):
        used.append((count, None, *more))
        return real(state, fn, count, *more)

    monkeypatch.setattr(per_sample, "map_chunks", spy)
    with threadpool_limits(2):
        D2, _ = er.per_sample_directions(net, theta, X, y, 0.1, "abs")
        assert threads.current_threads() == 2  # restored after the call
    with threadpool_limits(1):
        D1, _ = er.per_sample_directions(net, theta, X, y, 0.1, "abs")
    assert used == [(2, None, workers.pieces(8, float(net.rank_bound) ** 3, 2))]  # one thread:
    # no chunks at all
    assert np.max(np.abs(D2 - D1)) <= 64 * EPS * np.max(np.abs(D1))


def test_a_call_from_a_thread_that_cannot_limit_blas_stays_on_one_worker(monkeypatch):
    # threadpoolctl lets one Python thread set OpenBLAS's process-wide thread count: in any
    # other thread the limit does nothing, and workers would each run all of BLAS's threads
    net, theta, X, y = _problem([20, 60, 60, 3], 8, 1)
    used, real = [], workers.map_chunks

    def spy(state, fn, count, *more):
        used.append((count, threads.current_threads()))
        return real(state, fn, count, *more)

    monkeypatch.setattr(per_sample, "map_chunks", spy)
    with threadpool_limits(2):  # this thread controls BLAS and sets 2 threads
        worker = threading.Thread(target=er.per_sample_eigenvalues, args=(net, theta, X, y))
        worker.start()
        worker.join()
        er.per_sample_eigenvalues(net, theta, X, y)
    assert used[1] == (2, 1)  # here: the limit took effect, 2 workers
    assert used[0][0] == 1 or used[0][1] == 1  # there: one worker unless BLAS was limited


CALLS = {
    "none": lambda net, th, X, y: er.per_sample_directions(net, th, X, y, 0.3)[0],
    "abs": lambda net, th, X, y: er.per_sample_directions(net, th, X, y, 0.3, "abs")[0],
    "clip": lambda net, th, X, y: er.per_sample_directions(net, th, X, y, 0.3, "clip")[0],
    "ggn_abs": lambda net, th, X, y: er.per_sample_directions(net, th, X, y, 0.3, "abs",
                                                              curvature="ggn")[0],
    "eigenvalues": lambda net, th, X, y: er.per_sample_eigenvalues(net, th, X, y),
}


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("sizes, B, seed, activation, bias", [
    ([5, 4, 3], 7, 0, "tanh", True), ([6, 1, 4, 1], 5, 1, "tanh", True),  # width 1, output 1
    ([3, 8, 8, 8, 2], 9, 2, "tanh", True), ([4, 6, 2], 2, 3, "relu", True),  # dead units
    ([5, 4, 3], 6, 8, "sigmoid", False)])
def test_workers_agree_with_one_thread(spread, call, sizes, B, seed, activation, bias):
    net, theta, X, y = _problem(sizes, B, seed, activation, bias)
    spread(1)
    one = CALLS[call](net, theta, X, y)
    spread(3)
    many = CALLS[call](net, theta, X, y)
    assert many.shape == one.shape
    assert np.max(np.abs(many - one)) <= 16 * EPS * max(np.max(np.abs(one)), 1e-300)


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
@pytest.mark.parametrize("spectral", ["none", "abs"])
def test_spread_directions_solve_every_dense_system(spread, spectral):
    net, theta, X, y = _problem([5, 6, 6, 3], 9, 4)
    spread(4)
    D, d_mean = er.per_sample_directions(net, theta, X, y, 0.2, spectral)
    Hs = er.hessian(net, theta, X, y, per_sample=True)
    G = net.per_sample_gradients(theta, X, y)
    for i in range(X.shape[0]):
        mu, V = np.linalg.eigh(Hs[i])
        f = mu if spectral == "none" else np.abs(mu)
        M = (V * (f + 0.2)) @ V.T
        r = M @ D[i] + G[i]
        eta = np.linalg.norm(r) / (np.linalg.norm(M, 2) * np.linalg.norm(D[i])
                                   + np.linalg.norm(G[i]))
        assert eta <= 1e3 * EPS, (i, eta / EPS)
    np.testing.assert_allclose(d_mean, D.mean(axis=0), rtol=0, atol=4 * EPS * np.abs(D).max())


def test_spread_call_warns_once_for_all_ascending_samples(spread):
    net, theta, X, y = _problem([6, 5, 5, 3], 12, 2)
    G = net.per_sample_gradients(theta, X, y)
    messages = {}
    for k in (1, 3):
        spread(k)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            D, _ = er.per_sample_directions(net, theta, X, y, 0.5)
        found = [str(w.message) for w in caught if issubclass(w.category, er.NotDescentWarning)]
        ascending = int(np.sum(np.einsum("ip,ip->i", G, D) >= 0))
        assert len(found) == (1 if ascending else 0)
        messages[k] = (ascending, found)
    assert messages[1] == messages[3]
    ascending, found = messages[3]
    assert 0 < ascending < 12, "the configuration must have some ascending directions"
    assert re.search(rf"\b{ascending} of 12 ", found[0])


@pytest.mark.filterwarnings("ignore::esso_ref.NotDescentWarning")
def test_spread_call_with_singular_pivots_uses_the_layer_basis(spread, monkeypatch):
    net, theta, X, y = _problem([5, 4, 4, 3], 7, 5)
    spread(1)
    sequential, _ = er.per_sample_directions(net, theta, X, y, 0.5)

    def singular(*args, **kwargs):
        raise er.curvature.LinAlgError("singular pivot")

    monkeypatch.setattr(stagewise, "factorise", singular)
    spread(3)
    D, _ = er.per_sample_directions(net, theta, X, y, 0.5)
    basis = per_sample.coordinates(prepare(net, theta, X, y), per_sample.Rows.of(net.sizes),
                                   1).newton(0.5, "none", descent=False)
    np.testing.assert_array_equal(D, basis)
    assert np.max(np.abs(D - sequential)) <= 1e-10 * np.max(np.abs(sequential))


def test_an_error_in_one_chunk_reaches_the_caller(spread, monkeypatch):
    net, theta, X, y = _problem([5, 4, 4, 3], 6, 6)
    real = stagewise.solve

    def failing(state, lam, out=None):  # chunks of 2: [0, 2), [2, 4), [4, 6)
        if float(state.fwd.a[0][0, 0]) == float(X[2, 0]):
            raise er.SingularCurvatureError("chunk starting at sample 2")
        return real(state, lam, out)

    monkeypatch.setattr(stagewise, "solve", failing)
    spread(3)
    with pytest.raises(er.SingularCurvatureError, match="chunk starting at sample 2"):
        er.per_sample_directions(net, theta, X, y, 0.5)


def test_memory_check_counts_the_eigendecompositions_of_all_workers(spread, monkeypatch):
    # one sample's coordinates need 3 r^2 entries, its eigendecomposition 5 r^2 (S and four
    # more), its direction 2 P: a limit of 3.5 r^2 + 2 P a sample refuses spectral "abs" before
    # any worker, and lets the spectra (3 r^2, the larger stage; the sum would be 4 r^2) run
    net, theta, X, y = _problem([10, 12, 12, 4], 40, 9)
    r = net.rank_bound
    started = []
    monkeypatch.setattr(per_sample, "map_chunks",
                        lambda *args: started.append(1) or [np.zeros((40, r))])
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(8 * 40 * (3.5 * r * r + 2 * net.num_params)
                                                  / 0.8))
    spread(2)
    with pytest.raises(InsufficientMemoryError, match="40 system"):
        er.per_sample_directions(net, theta, X, y, 0.5, "abs")
    assert not started
    er.per_sample_eigenvalues(net, theta, X, y)  # the larger stage is within the limit
    assert started


def test_memory_check_counts_the_directions_of_a_wide_input(spread, monkeypatch):
    net, theta, X, y = _problem([3072, 8, 3], 16, 10)  # P = 24,611 dwarfs r = 19
    r, P = net.rank_bound, net.num_params
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(8 * 16 * (5 * r * r + P) / 0.8))
    spread(2)
    with pytest.raises(InsufficientMemoryError, match="split the batch"):
        er.per_sample_directions(net, theta, X, y, 0.5, "abs")
    er.per_sample_eigenvalues(net, theta, X, y)  # no P-sized results


def test_memory_of_the_whole_batch_is_checked_before_any_worker(spread, monkeypatch):
    net, theta, X, y = _problem([30, 40, 40, 5], 64, 7)
    started = []
    monkeypatch.setattr(per_sample, "map_chunks", lambda *args: started.append(1))
    monkeypatch.setenv("ESSO_REF_MAX_MEMORY", str(8 * 64 * net.num_params // 2))
    spread(2)
    for spectral in ("none", "abs"):
        with pytest.raises(InsufficientMemoryError, match=r"64.*split the batch") as caught:
            er.per_sample_directions(net, theta, X, y, 0.5, spectral)
        assert "layerwise" not in str(caught.value)  # no option these calls do not have
    with pytest.raises(InsufficientMemoryError, match=r"64.*split the batch"):
        er.per_sample_eigenvalues(net, theta, X, y)
    assert not started
