r"""An orthonormal basis of range(A^T) built layer by layer, and A^T's coordinates in it.

docs/math.md §15, eqs. (40)-(41). In layer m, every row of A touches the parameters
[W_m | b_m] (an n_m x ñ_{m-1} block, ñ = n_{m-1} + 1 with biases) only through outer products

    J rows:  t ã^T        (t = row of T_{l<-m}, ã = ã_{m-1} of the sample)
    K_m rows: delta_m ē_j^T  (ē_j = e_j with a zero bias entry)

For a group of s samples let Q_a (ñ x k_a) be an orthonormal basis of a space holding every
ã^i, N its orthonormal complement in R^ñ, and Q_delta (n_m x k_delta) one holding every
delta^i_m. Then, eq. (40),

    E_m = [ I_{n_m} (x) Q_a ,  Q_delta (x) N ]

has orthonormal columns and holds every row of A restricted to layer m, and eq. (41) gives the
coordinates Y of A^T = E Y (E = blockdiag_m E_m) in closed form:

    J row of sample i:     t (x) (Q_a^T ã^i)                  (top part of layer m)
    K_m row j of sample i: delta^i (x) Q_a[j, :]  and  (Q_delta^T delta^i) (x) N[j, :].

With k_a = min(s, ñ) and k_delta = min(s, n_m) taken from Householder QR factorisations
(complete where N is needed; for one sample the same reflectors in closed form), no rank
decision is made. One sample (s = 1) gives q = r coordinates with
biases (q = r - (L - 1) without), a mini-batch gives q_B = B r - (L - 1) B (B - 1) (exactly the
rank deficiency of its Gram matrix): A^T is represented by a q x (s r) matrix Y with
Y^T Y = G, computed without squaring anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import xp_of
from ..mlp import flatten
from . import linalg
from .gram import transfer
from .state import State

__all__ = ["Basis", "LayerBasis", "basis_columns", "basis_size", "build_basis"]


@dataclass
class LayerBasis:
    """E_m of eq. (40) for every group: Q_a (G, ñ, k_a), N (G, ñ, ñ - k_a), Q_delta (G, n_m, k_d).

    N and Q_delta are None in a layer without K rows (layer 1, the Gauss-Newton matrix).
    """

    Q_a: Any
    N: Any
    Q_delta: Any

    @property
    def top(self) -> int:
        """Coordinates of the I (x) Q_a part per output unit: k_a."""
        return int(self.Q_a.shape[-1])

    def size(self, n_m: int) -> int:
        """Columns of E_m: n_m k_a (+ k_delta (ñ - k_a) when the layer has K rows)."""
        bottom = 0 if self.Q_delta is None else self.Q_delta.shape[-1] * self.N.shape[-1]
        return n_m * self.top + int(bottom)


@dataclass
class Basis:
    """E = blockdiag_m E_m for G groups of s samples, and A^T's coordinates Yt = Y^T.

    The columns are ordered [I (x) Q_a parts of layers 1..L, Q_delta (x) N parts of layers
    2..L], so that the J_l rows of Y^T, which touch only the first parts of layers 1..l
    (eq. (41)), are zero beyond a prefix of the columns.

    Attributes:
        layers: [None, E_1, ..., E_L].
        Yt: (G, s r, q): row (i, row of A_i) holds that row's coordinates in E, eq. (41);
            None once `esso_ref.curvature.exact.coordinates` has formed S and b from it (its
            memory then serves the solve of eq. (43)).
        groups: G.
        spans: [None, (top, bottom) of layer m, ...]: the column slices of its I (x) Q_a part
            and of its Q_delta (x) N part (empty without K rows).
    """

    state: State
    layers: list
    Yt: Any
    groups: int
    spans: list

    def prefix(self, m: int) -> slice:
        """The columns of the I (x) Q_a parts of layers 1..m: all that J_l rows (l <= m) touch."""
        return slice(0, self.spans[m][0].stop)

    @property
    def size(self) -> int:
        """q: the number of basis vectors."""
        return int(self.Yt.shape[-1])

    def expand(self, y):
        """E y for coordinates y of shape (G, k, q); returns (G, k, P), eq. (40)."""
        xp, sizes, out = self.state.xp, self.state.net.sizes, []
        for m in range(1, self.state.L + 1):
            E, (top, bottom) = self.layers[m], self.spans[m]
            n_m, n_prev = sizes[m], sizes[m - 1]
            c = xp.reshape(y[..., top], (*y.shape[:2], n_m, E.top))
            X = c @ xp.matrix_transpose(E.Q_a)[:, None, :, :]
            if E.Q_delta is not None:
                k_d, k_n = E.Q_delta.shape[-1], E.N.shape[-1]
                c = xp.reshape(y[..., bottom], (*y.shape[:2], k_d, k_n))
                X = X + E.Q_delta[:, None, :, :] @ (c @ xp.matrix_transpose(E.N)[:, None, :, :])
            b = X[..., n_prev] if self.state.net.bias else None
            out.append((X[..., :n_prev], b))
        return flatten(out)


def _complete_basis(M, k: int):
    """(first k, remaining) columns of the complete Householder QR of M (G, n, s)."""
    Q = linalg.qr(M, mode="complete")[0]
    return Q[..., :k], Q[..., k:]


def _scaled(xp, v):
    """Each row of v divided by its largest |entry| (zero rows stay): no under- or overflow."""
    big = xp.max(xp.abs(v), axis=-1, keepdims=True)
    return v / xp.where(big > 0, big, xp.ones_like(big))


def _unit(xp, v):
    """The unit vectors v / |v| of the rows of v (..., n); e_1 where v = 0 (e_1 spans v)."""
    w = _scaled(xp, v)
    norm = xp.sqrt(xp.sum(w * w, axis=-1, keepdims=True))
    u = w / xp.where(norm > 0, norm, xp.ones_like(norm))
    u[..., 0] = xp.where(norm[..., 0] > 0, u[..., 0], xp.ones_like(u[..., 0]))
    return u


def _complement(xp, u, eye):
    """N for unit rows u (G, n): the last n - 1 columns of the reflector I - w w^T / (1 + |u_1|).

    w = u + sign(u_1) e_1 (what a complete QR of an n x 1 matrix computes, in closed form):
    w^T w = 2 (1 + |u_1|) >= 2, so nothing under- or overflows, and the reflector's first
    column is -sign(u_1) u: N is an orthonormal basis of the complement of u. ``eye``: I_n.
    """
    first = u[:, 0]
    w = xp.concat([xp.where(first >= 0, first + 1.0, first - 1.0)[:, None], u[:, 1:]], axis=1)
    coef = 1.0 / (1.0 + xp.abs(first))
    return eye[:, 1:] - (coef[:, None] * w)[:, :, None] * w[:, None, 1:]


def _sample_layers(state: State, rows) -> list:
    """E_m of eq. (40) for every sample on its own (s = 1), eqs. (40)-(41) in closed form.

    Q_a = â_{m-1} and Q_delta = delta_m / |delta_m|, all from one stacked normalisation of the
    zero-padded vectors (their padding stays zero). The network's input ã_0, whose width n_0
    is not bounded by the system's size r, joins the stack only while it is at most twice as
    long as the others; otherwise it is normalised on its own. N is the complement of
    â_{m-1} from its reflector.
    """
    xp, L, B = state.xp, state.L, state.B
    vectors = ([state.a_tilde(m - 1) for m in range(1, L + 1)]
               + [state.bwd.delta[m] for m in rows.K])
    widths = [int(v.shape[1]) for v in vectors]
    alone = len(vectors) > 1 and widths[0] > 2 * max(widths[1:])
    stack = vectors[1:] if alone else vectors
    V = state.zeros((len(stack), B, max(widths[1:] if alone else widths)))
    for k, v in enumerate(stack):
        V[k, :, :v.shape[1]] = v
    U = _unit(xp, V)
    units = ([_unit(xp, vectors[0])] if alone else []) + [
        U[k, :, :v.shape[1]] for k, v in enumerate(stack)]
    layers = [None]
    for m in range(1, L + 1):
        a_hat = units[m - 1]
        if m not in rows.K:
            layers.append(LayerBasis(a_hat[..., None], None, None))
            continue
        N = _complement(xp, a_hat, state.eye(int(a_hat.shape[1])))
        delta_hat = units[L + list(rows.K).index(m)]
        layers.append(LayerBasis(a_hat[..., None], N, delta_hat[..., None]))
    return layers


def _layer_basis(state: State, m: int, s: int, with_k: bool) -> LayerBasis:
    """E_m of eq. (40) for groups of s > 1 consecutive samples (Householder QR)."""
    xp, B = state.xp, state.B
    a_t = state.a_tilde(m - 1)
    n_t = a_t.shape[1]
    A_g = xp.matrix_transpose(xp.reshape(a_t, (B // s, s, n_t)))
    if not with_k:
        return LayerBasis(linalg.qr(A_g)[0], None, None)
    Q_a, N = _complete_basis(A_g, min(s, n_t))
    D_g = xp.matrix_transpose(xp.reshape(state.bwd.delta[m], (B // s, s, -1)))
    return LayerBasis(Q_a, N, linalg.qr(D_g)[0])


def _repeat(x, s: int):
    """Repeat a per-group array (G, ...) for each of its s samples: (G s, ...)."""
    if s == 1:
        return x
    xp = xp_of(x)
    return xp.reshape(xp.broadcast_to(x[:, None, ...], (x.shape[0], s, *x.shape[1:])),
                      (x.shape[0] * s, *x.shape[1:]))


def _layer_columns(state: State, rows, m: int, E: LayerBasis, s: int, Yt, span) -> None:
    """Write the coordinate columns of layer m into Yt (B, r, q), eq. (41).

    ``span`` = (top, bottom): the column slices of layer m's two parts; rows of A that do not
    touch layer m keep their zeros.
    """
    xp, B, sizes = state.xp, state.B, state.net.sizes
    n_m, n_prev, k_a = sizes[m], sizes[m - 1], E.top
    top, bottom = span
    Q_a = _repeat(E.Q_a, s)
    c = (state.a_tilde(m - 1)[:, None, :] @ Q_a)[:, 0, :]
    T, first = transfer(state, m, rows.J)
    J_rows = slice(rows.J[first].start, rows.J[max(rows.J)].stop)
    Yt[:, J_rows, top] = xp.reshape(T[:, :, :, None] * c[:, None, None, :],
                                    (B, T.shape[1], n_m * k_a))
    if E.Q_delta is None:
        return
    delta = state.bwd.delta[m]
    Yt[:, rows.K[m], top] = xp.reshape(
        Q_a[:, :n_prev, None, :] * delta[:, None, :, None], (B, n_prev, n_m * k_a))
    e = (delta[:, None, :] @ _repeat(E.Q_delta, s))[:, 0, :]
    N = _repeat(E.N, s)
    Yt[:, rows.K[m], bottom] = xp.reshape(
        e[:, None, :, None] * N[:, :n_prev, None, :], (B, n_prev, bottom.stop - bottom.start))


def _sample_columns(state: State, rows, layers: list, spans: list, Yt) -> None:
    """Every sample's own coordinates Yt (B, r, q) for s = 1, eq. (41), layer after layer.

    With k_a = 1, Q_a = â and c_m = ã_{m-1} . â_{m-1} = rho_{m-1}, the J_l rows are
    [rho_0 T_{l<-1}, ..., rho_{l-1} I] on the first parts of layers 1..l, and
    T_{l<-m} = F_l T_{l-1<-m}, F_l = W_l D_{l-1} (eq. (20)), gives them from the layer below
    with one product a layer (and F_l itself where T_{l-1<-l-1} = I). The Hessian's J_l rows
    are all rows of A, and the recursion runs on them in place; the Gauss-Newton matrix keeps
    the J_L rows only, so the recursion runs on the T_{l<-m} and the rho are applied to the
    J_L rows (rho T_{l<-m} of a layer below may overflow where rho T_{L<-m} does not). The
    K_m rows are â_{m-1} (x) delta_m and |delta_m| N on layer m's parts.
    """
    xp, B, L, sizes = state.xp, state.B, state.L, state.net.sizes
    rho = [xp.vecdot(state.a_tilde(m - 1), layers[m].Q_a[..., 0]) for m in range(1, L + 1)]
    in_place = len(rows.J) == L

    def first(m: int, M):
        """Layer m's first part: c_m M on the rows in place, M itself on the T."""
        return rho[m - 1][:, None, None] * M if in_place else M

    T_prev = None
    for m in range(1, L + 1):
        E, (top, bottom) = layers[m], spans[m]
        n_m, n_prev = sizes[m], sizes[m - 1]
        T = Yt[:, rows.J[m], :] if in_place else state.zeros((B, n_m, top.stop))
        if T_prev is not None:
            F = state.W[m] * state.fwd.dphi[m - 1][:, None, :]  # F_m = W_m D_{m-1}
            last, earlier = spans[m - 1][0], slice(0, spans[m - 1][0].start)
            T[:, :, last] = first(m - 1, F)  # F_m T_{m-1<-m-1}, T_{m-1<-m-1} = I
            if earlier.stop:
                T[:, :, earlier] = F @ T_prev[:, :, earlier]
        T[:, :, top] = first(m, state.eye(n_m))
        T_prev = T
        if E.Q_delta is None:
            continue
        delta = state.bwd.delta[m]
        Yt[:, rows.K[m], top] = E.Q_a[:, :n_prev, :] * delta[:, None, :]
        e = xp.vecdot(delta, E.Q_delta[..., 0])
        Yt[:, rows.K[m], bottom] = e[:, None, None] * E.N[:, :n_prev, :]
    if not in_place:  # J_L = [rho_0 T_{L<-1}, ..., rho_{L-1} I]
        scale = xp.concat([xp.broadcast_to(c[:, None], (B, n))
                           for c, n in zip(rho, sizes[1:], strict=True)], axis=1)
        Yt[:, rows.J[L], :T_prev.shape[2]] = T_prev * scale[:, None, :]


def build_basis(state: State, rows, s: int) -> Basis:
    """E and Yt of eqs. (40)-(41) for groups of s consecutive samples (s = B or s = 1)."""
    xp, B, L, sizes = state.xp, state.B, state.L, state.net.sizes
    if s == 1:
        layers = _sample_layers(state, rows)
    else:
        layers = [None] + [_layer_basis(state, m, s, with_k=m in rows.K)
                           for m in range(1, L + 1)]
    tops = [sizes[m] * layers[m].top for m in range(1, L + 1)]
    q_top, start, spans = sum(tops), 0, [None]
    bottom = q_top
    for m in range(1, L + 1):
        width = layers[m].size(sizes[m]) - tops[m - 1]
        spans.append((slice(start, start + tops[m - 1]), slice(bottom, bottom + width)))
        start, bottom = start + tops[m - 1], bottom + width
    Yt = state.zeros((B, rows.r, bottom))
    if s == 1:
        _sample_columns(state, rows, layers, spans, Yt)
    else:
        for m in range(1, L + 1):
            _layer_columns(state, rows, m, layers[m], s, Yt, spans[m])
    Yt = xp.reshape(Yt, (B // s, s * rows.r, bottom))
    return Basis(state, layers, Yt, B // s, spans)


def basis_size(sizes, bias: bool, s: int, ggn: bool = False) -> int:
    """q: the size of S for groups of s samples, from the shapes alone, eqs. (40)-(42).

    The number of basis columns (`basis_columns`); the Gauss-Newton matrix keeps at most s n_L
    of them (its Y is compressed by a QR). H then has P - q exact zero eigenvalues.
    """
    q = basis_columns(sizes, bias, s, ggn)
    return min(q, s * sizes[-1]) if ggn else q


def basis_columns(sizes, bias: bool, s: int, ggn: bool = False) -> int:
    """The columns of E (and of Y^T) for groups of s samples, eq. (40).

    sum over layers of n_m k_a + k_delta (ñ_{m-1} - k_a) (the second term for m >= 2, Hessian
    only), with k_a = min(s, ñ_{m-1}) and k_delta = min(s, n_m).
    """
    q = 0
    for m in range(1, len(sizes)):
        n_t = sizes[m - 1] + (1 if bias else 0)
        k_a = min(s, n_t)
        q += sizes[m] * k_a
        if m >= 2 and not ggn:
            q += min(s, sizes[m]) * (n_t - k_a)
    return q
