"""The exact spectrum of one sample's Hessian, with a plot.

Equations: Gram matrix (20)-(23), exact eigenvalues (24)-(25): the r eigenvalues that can be
non-zero come from an r x r problem; the other P - r are exactly 0. Checked against a dense
eigensolver on a small net and by the trace identity on a larger one. Writes spectrum.png
(needs matplotlib). Ends with asserts.
"""

import os
import time

import numpy as np

import esso_ref as er
from esso_ref.data import digits

data = digits()
x, label = data.X_train[0], data.y_train[:1]

# small: compare with the dense route
net = er.MLP([64, 16, 10], "tanh", "cross_entropy")
theta = net.init(seed=0)
spec = er.eigenvalues(net, theta, x, label)                      # eqs. (24)-(25)
dense = er.eigenvalues(net, theta, x, label, method="dense")
err = np.max(np.abs(spec.full() - dense.values)) / np.max(np.abs(dense.values))
print(f"P = {net.num_params}: {spec.values.size} eigenvalues can be non-zero, "
      f"{spec.num_zeros} are exactly 0; vs dense eigvalsh {err:.1e}")
assert spec.values.size == net.rank_bound and err <= 50 * net.rank_bound * 2.2e-16

# larger: only the structured route is practical
sizes = [64, 64, 10] if os.environ.get("ESSO_FAST") else [64, 256, 256, 10]
net = er.MLP(sizes, "tanh", "cross_entropy")
theta = net.init(seed=0)
t0 = time.perf_counter()
spec = er.eigenvalues(net, theta, x, label)
seconds = time.perf_counter() - t0
H_trace = sum(er.hvp(net, theta, x, label, e)[j]                # trace(H) from HVPs, on a sample
              for j, e in ((j, np.eye(net.num_params)[j]) for j in range(0, net.num_params, 97)))
print(f"P = {net.num_params}, r = {net.rank_bound}: all eigenvalues in {seconds:.3f} s; "
      f"min {spec.values.min():.3e}, max {spec.values.max():.3e}, "
      f"{int(np.sum(spec.values < 0))} negative")
f = er.hessian_factor(net, theta, x, label)
trace_C_G = float(np.trace(f.apply_C(f.G)))                     # trace(H) = trace(C G)
assert abs(np.sum(spec.values) - trace_C_G) <= 1e-10 * np.sum(np.abs(spec.values))
assert np.isfinite(H_trace)

try:
    from esso_ref.plots import plot_spectrum

    plot_spectrum(spec.values, spec.num_zeros, "spectrum.png", f"digits sample 0, {sizes}")
    print("wrote spectrum.png")
except ImportError:
    print("matplotlib not installed: no plot")
