"""The closed-form one-sample bases of the layer basis (docs/math.md §15) against LAPACK QR."""

import numpy as np
import pytest

from esso_ref.backend import get_namespace
from esso_ref.curvature.basis import _reflector_basis, _unit

EPS = np.finfo(np.float64).eps
XP = get_namespace("numpy")
VECTORS = {
    "generic": [-2.0, 1.0, 0.5, 3.0],
    "first entry zero": [0.0, 1.0, -1.0, 2.0],
    "tiny (squares underflow)": [1e-170, 2e-170, 0.0, -3e-171],
    "huge (squares overflow)": [1e170, -3e170, 2.0, 0.0],
    "one non-zero": [0.0, 0.0, 5.0, 0.0],
    "zero": [0.0, 0.0, 0.0, 0.0],
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_reflector_is_an_orthonormal_basis_whose_first_column_spans_v(name):
    v = np.array([VECTORS[name]])
    q, N = _reflector_basis(XP, v.copy(), np.eye(v.shape[1]))
    Q = np.concatenate([q, N], axis=-1)[0]
    assert np.abs(Q.T @ Q - np.eye(4)).max() <= 10 * EPS
    if not np.any(v):
        np.testing.assert_array_equal(Q, np.eye(4))
        return
    # v lies in span(q): its component along N vanishes relative to |v|
    w = v[0] / np.abs(v).max()
    assert np.linalg.norm(N[0].T @ w) <= 10 * EPS * np.linalg.norm(w)
    # the same subspace as LAPACK's complete QR of the n x 1 matrix
    Q_lapack = np.linalg.qr(w[:, None], mode="complete")[0]
    assert abs(abs(float(Q_lapack[:, 0] @ q[0, :, 0])) - 1.0) <= 10 * EPS


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_unit_vector_spans_v_and_is_e1_for_zero(name):
    v = np.array([VECTORS[name]])
    u = _unit(XP, v.copy())[0, :, 0]
    assert abs(np.linalg.norm(u) - 1.0) <= 4 * EPS
    if not np.any(v):
        np.testing.assert_array_equal(u, np.eye(4)[0])
        return
    w = v[0] / np.abs(v).max()
    np.testing.assert_allclose(u, w / np.linalg.norm(w), rtol=0, atol=4 * EPS)


def test_inputs_are_not_modified():
    v = np.array([VECTORS["generic"], VECTORS["tiny (squares underflow)"]])
    before = v.copy()
    _reflector_basis(XP, v, np.eye(4))
    _unit(XP, v)
    np.testing.assert_array_equal(v, before)
