"""er.verify raises no false alarm on seeded random valid configurations.

The configurations (esso_ref.verification.configs) span depth 1-5, widths 1-40, every
activation and loss, bias on / off, batch 1-6 and parameter scales 0.01-5, and force edge cases
on one seed in three (width 1, output 1, depth 1, r > P, dead ReLU, saturated units, zero
gradient, repeated samples, inputs on a ReLU kink). The default run takes the first 300 seeds
with P <= 150 (the dense references cost O(P^3)); the slow run takes 1000 seeds with P <= 400.
"""

import warnings

import pytest

import esso_ref as er
from esso_ref.verification.configs import EDGE_CASES, random_configuration


def _configs(count: int, max_params: int):
    seed = 0
    while count:
        config = random_configuration(seed, return_edges=True)
        if config[0].num_params <= max_params:
            yield seed, config
            count -= 1
        seed += 1


def _false_alarms(count: int, max_params: int) -> tuple[list, set]:
    alarms, edges_seen = [], set()
    for seed, (net, theta, X, y, edges) in _configs(count, max_params):
        edges_seen.update(edges)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = er.verify(net, theta, X, y)
        if not report.passed:
            alarms.append((seed, repr(net), edges, [(c.name, c.error, c.tolerance, c.note)
                                                   for c in report.failed()]))
    return alarms, edges_seen


def test_generator_is_seeded_and_forces_every_edge_case():
    a, b = random_configuration(12, return_edges=True), random_configuration(12, return_edges=True)
    assert repr(a[0]) == repr(b[0]) and (a[1] == b[1]).all() and (a[2] == b[2]).all()
    seen = set()
    for seed in range(0, 300, 3):
        seen.update(random_configuration(seed, return_edges=True)[4])
    assert seen == set(EDGE_CASES)
    net, theta, X, y = random_configuration(next(
        s for s in range(0, 300, 3) if "zero_gradient" in random_configuration(
            s, return_edges=True)[4]))
    assert float(abs(net.gradient(theta, X, y)).max()) == 0.0


def test_no_false_alarm_on_300_random_configurations():
    alarms, edges = _false_alarms(300, 150)
    assert edges == set(EDGE_CASES)
    assert not alarms, f"{len(alarms)} false alarms: {alarms}"


@pytest.mark.slow
def test_no_false_alarm_on_1000_random_configurations():
    alarms, _ = _false_alarms(1000, 400)
    assert not alarms, f"{len(alarms)} false alarms: {alarms}"


def test_no_false_alarm_in_float32():
    """The tolerances scale with the dtype's eps (docs/verification.md, float32)."""
    alarms = []
    for seed, (net, theta, X, y, _) in _configs(60, 150):
        y32 = y if net.loss_fn.integer_targets else y.astype("float32")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = er.verify(net, theta.astype("float32"), X.astype("float32"), y32)
        assert report.meta["dtype"] == "float32"
        if not report.passed:
            alarms.append((seed, repr(net), [(c.name, c.error, c.tolerance, c.note)
                                             for c in report.failed()]))
    assert not alarms, f"{len(alarms)} false alarms: {alarms}"
