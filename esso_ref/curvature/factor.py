r"""The exact factorisation H = A^T C A of the batch-mean Hessian (docs/math.md §6, §11).

Per sample, A stacks the linear maps J_l v = zdot_l (l = 1..L) and K_l v = V_l^T delta_l
(l = 2..L): r = n_L + 2 (n_1 + ... + n_{L-1}) rows, eq. (15). C is zero except, eq. (16),

    C[J_L, J_L] = Lam,  C[J_l, J_l] = diag(phi''(z_l) * g_l) (l < L),
    C[K_l, J_{l-1}] = C[J_{l-1}, K_l] = diag(phi'(z_{l-1})) (l = 2..L).

A mini-batch stacks the samples, eq. (34): A_B = [A_1; ...; A_B], C_B = (1/B) blockdiag(C_i).
The Gauss-Newton matrix keeps only the J_L rows and C[J_L, J_L] = Lam, eq. (37). The gradient
is g = A_B^T u with u_i = delta_L^i / B in the J_L slot, eq. (18).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from .._checks import check_stack
from .._memory import check_entries
from ..mlp import flatten
from ..threads import blas_threads, threads_for
from . import stagewise
from .core import Rows, apply_core, core
from .exact import Coordinates, coordinates
from .gram import gram
from .hvp import tangents
from .lowrank import LowRank
from .spectral import Spectrum, check_damping, check_spectral
from .state import State, prepare

__all__ = [
    "CURVATURES",
    "HessianFactor",
    "Rows",
    "adjoint",
    "apply_A",
    "apply_core",
    "core",
    "hessian_factor",
]

CURVATURES = ("hessian", "ggn")

STAGEWISE_MIN_ROWS = 256
"""One sample's plain Hessian direction (route "auto") uses the layer-by-layer elimination of
eqs. (45)-(49) from this many rows r on; below it the r x r solve of eq. (43) costs less than
the sweep's fixed per-layer work (docs/performance.md)."""


def apply_A(state: State, rows: Rows, v):
    """A v for directions v (k, P): returns (k, B, r), eqs. (9) and (14)."""
    zdot, _, V = tangents(state, v)
    parts = [zdot[l] for l in rows.J]
    parts += [state.bwd.delta[l] @ V[l] for l in rows.K]
    return state.xp.concat(parts, axis=-1)


def adjoint(state: State, rows: Rows, w, per_sample: bool = False):
    """A^T w for w of shape (k, B, r), one backward pass with injected signals, eq. (19).

    eta_L = w^J_L, eta_l = w^J_l + phi'(z_l) * (eta_{l+1} W_{l+1});
    W_l-part = sum_i eta_l a_{l-1}^T + delta_l (w^K_l)^T, b_l-part = sum_i eta_l.

    Returns:
        (k, P), or (k, B, P) with ``per_sample`` (each sample's A_i^T w_i, no sum over i).
    """
    xp, fwd, L = state.xp, state.fwd, state.L
    eta, out = None, [None] * L
    for l in range(L, 0, -1):
        w_J = w[..., rows.J[l]] if l in rows.J else None
        if eta is None:
            eta = w_J
        else:
            back = fwd.dphi[l] * (eta @ state.W[l + 1])
            eta = back if w_J is None else w_J + back
        w_K = w[..., rows.K[l]] if l in rows.K else None
        out[l - 1] = _outer(xp, eta, fwd.a[l - 1], state.bwd.delta[l], w_K, per_sample,
                            state.net.bias)
    return flatten(out)


def _outer(xp, eta, a_prev, delta, w_K, per_sample: bool, bias: bool):
    """(W_l-part, b_l-part) of eq. (19), summed over samples unless ``per_sample``."""
    if per_sample:
        dW = eta[..., :, None] * a_prev[:, None, :]
        if w_K is not None:
            dW = dW + delta[:, :, None] * w_K[..., None, :]
        return dW, (eta if bias else None)
    dW = xp.matrix_transpose(eta) @ a_prev
    if w_K is not None:
        dW = dW + xp.matrix_transpose(delta) @ w_K
    return dW, (xp.sum(eta, axis=-2) if bias else None)


def _dense_core(state: State, rows: Rows):
    """C_B = (1/B) blockdiag(C_i) as a dense (B r, B r) matrix, eqs. (16), (34)."""
    B, r = state.B, rows.r
    _check_dense(state, 2 * (B * r) ** 2, f"the dense core C ({B * r} x {B * r})")
    C_i = core(state, rows) / B
    blockdiag = C_i[:, :, None, :] * state.eye(B)[:, None, :, None]
    return state.xp.reshape(blockdiag, (B * r, B * r))


def _check_dense(state: State, numbers: int, what: str) -> None:
    """Refuse a dense array of ``numbers`` entries that would not fit (before allocating)."""
    check_entries(numbers, state.dtype, what, "use the structured calls (eigenvalues, "
                  "newton_direction, matvec) or fewer samples", state.xp)


def _apply_core_flat(state: State, rows: Rows, M):
    """C_B M for M of shape (B r, k) by the block structure of eq. (16)."""
    B, r = state.B, rows.r
    M3 = state.xp.reshape(M, (B, r, M.shape[-1]))
    return state.xp.reshape(apply_core(state, rows, M3), M.shape) / B


def _adjoint_flat(state: State, rows: Rows, w):
    """A^T w for w of shape (k, B r), eq. (19)."""
    return adjoint(state, rows, state.xp.reshape(w, (w.shape[0], state.B, rows.r)))


class HessianFactor(LowRank):
    """H = A^T C A for a batch, exact and structured (eq. (13), eqs. (14)-(26), (34)-(37)).

    A and A^T are applied as forward / backward passes; C and the Gram matrix G = A A^T are
    B r x B r matrices built from their closed forms (never from a P-sized object).

    Attributes:
        rank_bound: rows of A_B: B r (B n_L for the Gauss-Newton matrix); rank(H) <= rank_bound.
        curvature: ``"hessian"`` or ``"ggn"``.
    """

    def __init__(self, state: State, curvature: str = "hessian", route: str = "auto"):
        self.state = state
        self.curvature = curvature
        self.rows = Rows.of(state.net.sizes, ggn=curvature == "ggn")
        self.rank_bound = state.B * self.rows.r
        xp, B, r = state.xp, state.B, self.rows.r
        self._coords = None
        u = state.zeros((B, r))
        u[:, self.rows.J[state.L]] = state.bwd.delta[state.L] / B
        rows = self.rows  # the callables below take (state, rows), never self: no cycle
        super().__init__(
            partial(_dense_core, state, rows),
            partial(gram, state, rows),
            xp.reshape(u, (B * r,)),
            partial(_adjoint_flat, state, rows),
            state.net.num_params,
            route=route,
            apply_C=partial(_apply_core_flat, state, rows),
        )

    @property
    def route(self) -> str:
        """The route of spectra and directions: ``"basis"``, ``"gram"`` or ``"qr"``.

        ``"auto"`` (the default) is ``"basis"``, eqs. (40)-(44); see `ROUTES`.
        """
        return "basis" if self._route in ("auto", "basis") else self._route

    @property
    def solve_route(self) -> str:
        """The route of the plain damped direction: the same as `route`."""
        return self.route

    def coordinates(self) -> Coordinates:
        """H = E S E^T and g = E b in the layer basis, eqs. (40)-(42) (built once)."""
        if self._coords is None:
            self._coords = coordinates(self.state, self.rows, self.state.B)
        return self._coords

    def eigh(self, vectors: bool = False) -> Spectrum:
        """Exact eigenvalues of H and the count of exact zeros, eq. (42) (or (24)-(26)).

        Args:
            vectors: also return orthonormal eigenvectors (P x len(values)).

        Returns:
            A `Spectrum`; eigenvalues computed as exactly 0.0 are counted in
            ``num_zeros`` (without ``vectors``).
        """
        with blas_threads(threads_for(self.rank_bound)):
            return self._eigh(vectors)

    def _eigh(self, vectors: bool) -> Spectrum:
        if self.route != "basis":
            return super().eigh(vectors)
        xp, co = self.xp, self.coordinates()
        if vectors:
            mu, V = co.eigh()
            vecs = xp.matrix_transpose(co.expand(xp.matrix_transpose(V))[0, ...])
            return Spectrum(mu[0, :], co.num_zeros, vecs)
        mu = co.eigvalsh()[0, :]
        nonzero = mu != 0
        return Spectrum(mu[nonzero], co.num_zeros + int(xp.count_nonzero(~nonzero)))

    def newton(self, damping: float, spectral: str | Callable = "none"):
        """Exact damped Newton direction d = -(f(H) + lam I)^{-1} g, eqs. (43)-(44), (45)-(49).

        One sample's plain direction of the Hessian on route "auto" with r >= 256 rows
        (`STAGEWISE_MIN_ROWS`) is computed layer by layer, eqs. (45)-(49).

        Args:
            damping: lam > 0.
            spectral: ``"none"``, ``"abs"``, ``"clip"`` or a callable (see
                `esso_ref.newton_direction`).

        Returns:
            d, shape (P,).

        Raises:
            SingularCurvatureError: f(H) + lam I singular to working precision.
        """
        with blas_threads(threads_for(self.rank_bound)):
            if self.route != "basis":
                return super().newton(damping, spectral)
            lam, spectral = check_damping(damping), check_spectral(spectral)
            if self._stagewise(spectral):
                return stagewise.directions(self.state, lam)[0, :]
            return self.coordinates().newton(lam, spectral)[0, :]

    def _stagewise(self, spectral) -> bool:
        """One sample's plain Hessian direction on route "auto" with r >= STAGEWISE_MIN_ROWS."""
        return (self._route == "auto" and spectral == "none" and self.curvature == "hessian"
                and self.state.B == 1 and self.rows.r >= STAGEWISE_MIN_ROWS)

    def _apply_flat(self, v):
        w = apply_A(self.state, self.rows, v)
        return self.xp.reshape(w, (w.shape[0], self.rank_bound))

    def gram(self):
        """G = A A^T (B r x B r) from the structured formulas, eqs. (20)-(23)."""
        return self.G

    def core(self):
        """C_B = (1/B) blockdiag(C_i) (B r x B r), eqs. (16), (34)."""
        return self.C

    def apply_A(self, v):
        """A v for v of shape (P,) or (k, P); returns (B r,) or (k, B r)."""
        check_stack("v", v, self.num_params, self.state.W[1])
        single = v.ndim == 1
        w = self._apply_flat(v[None, :] if single else v)
        return w[0, :] if single else w

    def apply_AT(self, w):
        """A^T w for w of shape (B r,) or (k, B r); returns (P,) or (k, P), eq. (19)."""
        check_stack("w", w, self.rank_bound, self.state.W[1])
        single = w.ndim == 1
        out = _adjoint_flat(self.state, self.rows, w[None, :] if single else w)
        return out[0, :] if single else out

    def matvec(self, v):
        """H v = A^T (C (A v)) for v of shape (P,) or (k, P)."""
        check_stack("v", v, self.num_params, self.state.W[1])
        single = v.ndim == 1
        Av = self.apply_A(v[None, :] if single else v)
        out = self.apply_AT(Av @ self.C)
        return out[0, :] if single else out

    def materialize_A(self):
        """A as a dense (B r, P) matrix (tests and small nets only): row i is A^T e_i."""
        n, P = self.rank_bound, self.num_params
        _check_dense(self.state, 2 * n * P + n * n, f"A ({n} x {P})")
        return _adjoint_flat(self.state, self.rows, self.state.eye(n))

    def to_dense(self):
        """H = A^T C A as a dense P x P matrix (tests and small nets only)."""
        n, P = self.rank_bound, self.num_params
        _check_dense(self.state, 2 * P * P + 3 * n * P, f"the dense H (P x P, P = {P})")
        A = self.materialize_A()
        return self.xp.matrix_transpose(A) @ self.C @ A

    def gradient(self):
        """G = A^T u, eq. (18)."""
        return self.apply_AT(self.u)

    def eigenvalues(self) -> Spectrum:
        """Exact spectrum: the eigenvalues that can be non-zero and the count of exact zeros."""
        return self.eigh(vectors=False)


def hessian_factor(net, theta, X, y, curvature: str = "hessian",
                   route: str = "auto") -> HessianFactor:
    """The exact factorisation H = A^T C A of the batch-mean Hessian, eqs. (14)-(26).

    Args:
        net: the [`esso_ref.MLP`][esso_ref.mlp.MLP].
        theta: parameters, shape (P,).
        X: inputs, (B, n_0) or (n_0,).
        y: labels (cross_entropy) or targets (mse).
        curvature: ``"hessian"`` (default) or ``"ggn"`` (Gauss-Newton, eq. (37)).
        route: basis of range(A^T) for spectra and adjusted directions: ``"auto"`` (default),
            ``"gram"`` (eqs. (24)-(25), no P x n array) or ``"qr"`` (eq. (26), backward stable).

    Returns:
        The [`HessianFactor`][esso_ref.curvature.HessianFactor], with ``rank_bound``,
        ``gram()``, ``core()``, ``matvec(v)``, ``to_dense()``, ``eigh()``,
        ``newton(damping, spectral)``.

    Raises:
        ValueError, TypeError: for bad inputs or an unknown curvature name.
    """
    from .._checks import check_choice

    check_choice("curvature", curvature, CURVATURES)
    return HessianFactor(prepare(net, theta, X, y), curvature, route)
