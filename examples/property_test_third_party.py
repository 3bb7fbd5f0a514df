"""Property-test a third-party Hessian-vector product with esso_ref.testing.

The "third-party" code is a finite-difference HVP on esso_ref's gradient, deliberately coarse:
its property test passes at a loose tolerance and fails at a sharp one. Equations: H v (11) as
the reference. Runs hypothesis directly (no pytest needed). Ends with asserts.
"""

import sys

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:
    sys.exit("this example needs hypothesis: pip install hypothesis (or the test extra, "
             "pip install -e '.[test]')")

from esso_ref.testing import assert_hvp_matches, directions, networks


def third_party_hvp(net, theta, X, y, v, h=1e-5):
    """A user's HVP: central differences of the gradient (error ~ h^2 and eps / h)."""
    return (net.gradient(theta + h * v, X, y) - net.gradient(theta - h * v, X, y)) / (2 * h)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.data())
def test_loose(data):
    problem = data.draw(networks(max_layers=3, max_width=6, activations=["tanh", "gelu"]))
    assert_hvp_matches(third_party_hvp, problem, data.draw(directions(problem)), tol_eps=1e8)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.data())
def test_sharp(data):
    problem = data.draw(networks(max_layers=3, max_width=6, activations=["tanh", "gelu"]))
    assert_hvp_matches(third_party_hvp, problem, data.draw(directions(problem)), tol_eps=100)


test_loose()
print("loose property (1e8 eps ~ 2e-8): holds on 30 drawn networks")
try:
    test_sharp()
except AssertionError as err:
    print("sharp property (100 eps) fails, as it should for finite differences:")
    print("   ", str(err).splitlines()[0])
else:
    raise AssertionError("a finite-difference HVP cannot be exact to 100 eps")
