"""Signs of the eigenvalues: values within rounding of zero count as zero (Spectrum.inertia)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import esso_ref as er
from esso_ref.curvature import Spectrum
from esso_ref.curvature.spectral import rounding_tolerance
from esso_ref.problems import random_problem

EPS = np.finfo(np.float64).eps


def test_values_within_the_tolerance_count_as_zero():
    spec = Spectrum(np.array([-2.0, -1e-20, 1e-19, 3.0]), 5)
    assert spec.inertia() == (1, 7, 1)  # tolerance 4 eps 3
    assert spec.inertia(tol=0.0) == (2, 5, 2)
    assert spec.inertia(tol=2.5) == (0, 8, 1)
    assert Spectrum(np.zeros(0), 4).inertia() == (0, 4, 0)
    assert rounding_tolerance([-2.0, 0.5], EPS) == 2 * EPS * 2.0


def _dense_inertia(net, theta, x, y):
    """Independent: dense Hessian (HVP columns), NumPy eigvalsh; None when some eigenvalue lies
    between the dense rounding level P eps |H|_2 and 1e3 times it (its sign is undecided)."""
    mu = np.linalg.eigvalsh(er.hessian(net, theta, x, y))
    level = mu.size * EPS * np.abs(mu).max()
    if np.any((np.abs(mu) > level) & (np.abs(mu) <= 1e3 * level)):
        return None
    return int(np.sum(mu < -level)), int(np.sum(mu > level))


CASES = [([4, 3, 3, 2], "tanh", "cross_entropy"), ([3, 1, 1, 2], "tanh", "cross_entropy"),
         ([5, 3], "tanh", "cross_entropy"), ([3, 4, 1], "tanh", "mse"),
         ([4, 6, 5, 3], "relu", "cross_entropy"), ([6, 8, 8, 4], "gelu", "cross_entropy")]


@pytest.mark.parametrize("sizes, act, loss", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_sample_inertia_matches_the_dense_spectrum(sizes, act, loss, seed):
    # cross-entropy's Lam has a null vector, so H has an exact zero the structured route
    # returns as a value of order eps |H|: it must count as zero, not as negative or positive
    net = er.MLP(sizes, act, loss)
    theta, X, y = random_problem(net, 1, seed)
    negative, zero, positive = er.eigenvalues(net, theta, X, y).inertia()
    dense = _dense_inertia(net, theta, X, y)
    if dense is None:
        pytest.skip("an eigenvalue of undecided sign")
    assert (negative, positive) == dense
    assert negative + zero + positive == net.num_params


def test_spectrum_command_counts_negative_beyond_rounding(tmp_path):
    out = subprocess.run([sys.executable, "-m", "esso_ref.cli", "spectrum", "--dataset",
                          "spirals", "--sizes", "2,8,8,3", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    mu = np.array(got["eigenvalues"])
    tol = mu.size * EPS * np.abs(mu).max()
    assert got["negative"] == int(np.sum(mu < -tol))
    assert got["zero_to_rounding"] == int(np.sum(np.abs(mu) <= tol))
    assert got["zero_to_rounding"] >= 1  # cross-entropy: the null vector of Lam
