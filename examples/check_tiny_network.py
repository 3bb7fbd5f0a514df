"""Gradient and Hessian of a tiny network, each checked by two independent routes.

Equations: backprop gradient (8) vs complex step (38); R-operator H v (9)-(11) vs complex step
on the gradient; dense H (12) vs the exact factorisation H = A^T C A (14)-(17) with
r = n_L + 2 * sum of hidden widths rows. Ends with asserts.
"""

import numpy as np

import esso_ref as er
from esso_ref.problems import random_problem
from esso_ref.verification import complex_step_gradient, complex_step_hvp, richardson_gradient

eps = np.finfo(np.float64).eps
net = er.MLP([3, 4, 2], activation="tanh", loss="cross_entropy")
theta, X, y = random_problem(net, batch=1, seed=0)
print(net, "P =", net.num_params, "r =", net.rank_bound)

g = net.gradient(theta, X, y)                                   # eq. (8)
err_cs = np.max(np.abs(g - complex_step_gradient(net, theta, X, y))) / np.max(np.abs(g))
err_fd = np.max(np.abs(g - richardson_gradient(net, theta, X, y))) / np.max(np.abs(g))
print(f"gradient vs complex step: {err_cs:.1e} ({err_cs / eps:.1f} eps); "
      f"vs Richardson: {err_fd:.1e}")

v = np.random.default_rng(1).standard_normal(net.num_params)
Hv = er.hvp(net, theta, X, y, v)                                # eqs. (9)-(11)
err_hv = np.max(np.abs(Hv - complex_step_hvp(net, theta, X, y, v))) / np.max(np.abs(Hv))
print(f"Hv vs complex step on the gradient: {err_hv:.1e}")

H = er.hessian(net, theta, X, y)                                # eq. (12)
f = er.hessian_factor(net, theta, X, y)                         # eqs. (14)-(17)
err_f = np.max(np.abs(f.to_dense() - H)) / np.max(np.abs(H))
print(f"A^T C A vs dense: {err_f:.1e}; rank(H) = {np.linalg.matrix_rank(H)} <= r = {f.rank_bound}")

assert err_cs <= 1e-13 and err_fd <= 1e-8 and err_hv <= 1e-13 and err_f <= 1e-13
assert np.linalg.matrix_rank(H) <= f.rank_bound
print("all checks passed")
