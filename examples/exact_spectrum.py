"""The exact spectrum of one sample's Hessian, with a plot.

Equations: Gram matrix (20)-(23), exact eigenvalues (24)-(25): the r eigenvalues that can be
non-zero come from an r x r problem; the other P - r are exactly 0. Checked against a dense
eigensolver on a small net, and on a larger one (P = 85,002, where a dense P x P Hessian would
take 58 GB) by the trace identity and by Lanczos on Hessian-vector products, which never form
a P x P matrix. Writes spectrum.png (needs matplotlib). Ends with asserts.
"""

import time

import numpy as np
from scipy.sparse.linalg import eigsh

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

# larger: only the structured route is practical (O(r^3 + r^2 P), no P x P matrix)
sizes = [64, 256, 256, 10]
net = er.MLP(sizes, "tanh", "cross_entropy")
theta = net.init(seed=0)
t0 = time.perf_counter()
spec = er.eigenvalues(net, theta, x, label)
seconds = time.perf_counter() - t0
print(f"P = {net.num_params}, r = {net.rank_bound}: all eigenvalues in {seconds:.2f} s; "
      f"min {spec.values.min():.3e}, max {spec.values.max():.3e}, "
      f"{spec.inertia()[0]} negative (beyond rounding)")
f = er.hessian_factor(net, theta, x, label)
trace_C_G = float(np.trace(f.apply_C(f.G)))                     # trace(H) = trace(C G)
assert abs(np.sum(spec.values) - trace_C_G) <= 1e-10 * np.sum(np.abs(spec.values))

# independent route: Lanczos on Hessian-vector products (eqs. (9)-(11)) for the extremes
H = er.as_linear_operator(net, theta, x, label)
top = eigsh(H, k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0]
bottom = eigsh(H, k=1, which="SA", tol=1e-12, return_eigenvectors=False)[0]
scale = np.max(np.abs(spec.values))
err_top = abs(top - spec.values.max()) / scale
err_bottom = abs(bottom - spec.values.min()) / scale
print(f"Lanczos on HVPs: largest {top:.6e} (rel. diff {err_top:.1e}), "
      f"smallest {bottom:.6e} (rel. diff {err_bottom:.1e})")
assert err_top <= 1e-9 and err_bottom <= 1e-9

try:
    from esso_ref.plots import plot_spectrum

    plot_spectrum(spec.values, spec.num_zeros, "spectrum.png",
                  f"Hessian of digits training sample 0, MLP {sizes} tanh, "
                  "cross-entropy, at initialisation (seed 0)")
    print("wrote spectrum.png")
except ImportError:
    print("matplotlib not installed: no plot")
