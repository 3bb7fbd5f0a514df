"""Checked dense linear algebra: failures are reported, never returned as NaN.

CuPy's solvers return NaN instead of raising unless ``cupyx.errstate(linalg="raise")`` is
set, and NumPy raises its own ``LinAlgError``; these wrappers turn both into
[`LinAlgError`][esso_ref.curvature.LinAlgError] with a message saying which operation failed
on what.
"""

from __future__ import annotations

import array_api_compat

from ..backend import xp_of
from ..threads import single_blas_thread

__all__ = [
    "LU", "LU_MAX", "LU_MIN", "LinAlgError", "eigh", "eigvalsh", "equilibrate", "finite", "qr",
    "solve", "solve_shifted", "work_buffer",
]

LU_MIN, LU_MAX = 32, 256
"""`LU` factorises NumPy matrices of sizes LU_MIN to LU_MAX; the others are solved afresh."""


class LinAlgError(ArithmeticError):
    """A dense factorisation or solve failed (singular matrix, no convergence, NaN)."""


def finite(x) -> bool:
    """True when every entry of ``x`` is finite (one host sync)."""
    xp = xp_of(x)
    return bool(xp.all(xp.isfinite(x)))


def _run(what: str, fn, M, *args, check_finite: bool = True):
    try:
        out = fn(M, *args)
    except Exception as err:
        if type(err).__name__ != "LinAlgError":
            raise
        raise LinAlgError(f"{what} of a {tuple(M.shape)} matrix failed: {err}") from err
    parts = out if isinstance(out, tuple) else (out,)
    if check_finite and not all(finite(p) for p in parts):
        raise LinAlgError(f"{what} of a {tuple(M.shape)} matrix returned non-finite values")
    return out


def eigh(M):
    """Eigenvalues (ascending) and eigenvectors of the symmetric matrix M."""
    xp = xp_of(M)
    return tuple(_run("eigh", xp.linalg.eigh, M))


def eigvalsh(M):
    """Eigenvalues (ascending) of the symmetric matrix M."""
    xp = xp_of(M)
    return _run("eigvalsh", xp.linalg.eigvalsh, M)


def solve(M, b, check_finite: bool = True):
    """Solution x of M x = b (stacked M allowed).

    ``check_finite=False`` skips the host-side finiteness test, for callers that check the
    result themselves (CuPy then returns non-finite values for a singular M instead of raising).
    """
    xp = xp_of(M)
    return _run("solve", xp.linalg.solve, M, b, check_finite=check_finite)


class LU:
    """Stacked square matrices M (G, n, n), ready for repeated solves M_k x_k = b_k.

    On NumPy arrays with `LU_MIN` <= n <= `LU_MAX` and one BLAS thread: one LU factorisation
    with partial pivoting per matrix (LAPACK ?getrf through SciPy, on the C-ordered copy, which
    is M_k^T in Fortran order), then ?getrs with the transpose for every solve: O(n^2) a solve
    instead of O(n^3). Otherwise every solve is `solve`: on CuPy and other namespaces; for
    small n, where one batched call beats a loop over LAPACK calls; for large n or several BLAS
    threads, where NumPy's threaded LAPACK runs alone (SciPy's would start a second BLAS thread
    pool beside NumPy's, and the two contend for the cores: up to 2.5x slower, measured).
    Non-finite entries give non-finite solutions; the caller checks.

    Args:
        M: (G, n, n).
        overwrite: the factors may be written over M (a C-contiguous array the caller no
            longer needs) instead of a copy.

    Raises:
        LinAlgError: some M_k has an exactly zero pivot (singular).
    """

    def __init__(self, M, overwrite: bool = False):
        if len(M.shape) != 3 or M.shape[1] != M.shape[2]:
            raise ValueError(f"expected stacked square matrices (G, n, n), got {tuple(M.shape)}")
        self._M, self._factors, self._shape, self._dtype = M, None, tuple(M.shape), M.dtype
        xp = xp_of(M)
        if (not array_api_compat.is_numpy_namespace(xp) or not LU_MIN <= M.shape[-1] <= LU_MAX
                or not single_blas_thread()):
            return
        own = overwrite and M.flags.c_contiguous
        getrf, work = _lapack("getrf", M), M if own else xp.array(M, copy=True)
        factors = []
        for k in range(M.shape[0]):
            lu, piv, info = getrf(work[k].T, overwrite_a=True)
            if info != 0:
                raise LinAlgError(f"LU factorisation of a {tuple(M.shape)} matrix failed: "
                                  + ("Singular matrix" if info > 0 else f"LAPACK info {info}"))
            factors.append((lu, piv))
        self._M, self._factors = None, factors

    def solve(self, b):
        """The solutions x_k of M_k x_k = b_k, for b of shape (G, n) or (G, n, k), M's dtype."""
        G, n, _ = self._shape
        if tuple(b.shape[:2]) != (G, n) or len(b.shape) > 3 or b.dtype != self._dtype:
            raise ValueError(f"expected right-hand sides of shape ({G}, {n}) or ({G}, {n}, k) "
                             f"and dtype {self._dtype}, got {tuple(b.shape)} {b.dtype}")
        if self._factors is None:
            vector = b.ndim == self._M.ndim - 1
            x = solve(self._M, b[..., None] if vector else b, check_finite=False)
            return x[..., 0] if vector else x
        xp, getrs = xp_of(b), _lapack("getrs", b)
        x = xp.empty_like(b)
        for k, (lu, piv) in enumerate(self._factors):
            x[k], _ = getrs(lu, piv, b[k], trans=1)  # lu holds M_k^T
        return x


def solve_shifted(S, lam: float, b, work=None):
    """Solution x of (S + lam I) x = b for symmetric S (G, q, q) and b (G, q); S is kept.

    One LU factorisation with partial pivoting per matrix, as ``solve``. On NumPy arrays it
    runs LAPACK ``?gesv`` in place on one copy of S, where ``numpy.linalg.solve`` would make a
    second: the C-ordered copy is the Fortran-ordered S^T, which is S (to rounding, when S is
    symmetric only up to rounding: then the system solved is S^T + lam I, as accurate).

    Args:
        S: (G, q, q).
        lam: the shift.
        b: (G, q).
        work: optional buffer that may be overwritten (one the caller no longer needs): when
            `work_buffer` accepts it, the copy is written there instead of into new memory.
    """
    xp = xp_of(S)
    if not array_api_compat.is_numpy_namespace(xp):
        eye = xp.eye(S.shape[-1], dtype=S.dtype, device=array_api_compat.device(S))
        return solve(S + lam * eye, b[..., None])[..., 0]
    work = work_buffer(S, work)
    flat = xp.empty((S.size,), dtype=S.dtype) if work is None else xp.reshape(work, (-1,))
    G, q = S.shape[0], S.shape[-1]
    M = xp.reshape(flat[:S.size], S.shape)  # C-ordered, so the views below are views
    M[...] = S
    xp.reshape(M, (G, q * q))[:, ::q + 1] += lam  # the diagonals
    gesv = _lapack("gesv", M)
    x = xp.empty_like(b)
    for k in range(M.shape[0]):
        _, _, x[k], info = gesv(M[k].T, b[k], overwrite_a=True, overwrite_b=False)
        if info != 0:
            raise LinAlgError(f"solve of a {tuple(S.shape)} matrix failed: "
                              + ("Singular matrix" if info > 0 else f"LAPACK info {info}"))
    if not finite(x):
        raise LinAlgError(f"solve of a {tuple(S.shape)} matrix returned non-finite values")
    return x


def work_buffer(S, work):
    """``work`` when `solve_shifted` can write its copy of S (G, q, q) into it, else None.

    It must be a C-contiguous NumPy array of S's dtype with at least G q^2 entries (other
    namespaces solve out of place).
    """
    if work is None or not array_api_compat.is_numpy_array(S):
        return None
    usable = (array_api_compat.is_numpy_array(work) and work.dtype == S.dtype
              and work.flags.c_contiguous and work.size >= S.size)
    return work if usable else None


_LAPACK: dict = {}


def _lapack(name: str, M):
    """SciPy's LAPACK routine ``name`` for the dtype of the NumPy array M (looked up once)."""
    key = (name, M.dtype.char)
    if key not in _LAPACK:
        from scipy.linalg import lapack

        _LAPACK[key] = lapack.get_lapack_funcs(name, (M,))
    return _LAPACK[key]


def qr(M, mode: str = "reduced"):
    """QR factorisation (Q, R) of M (stacked matrices allowed); ``mode`` as in the array API."""
    xp = xp_of(M)
    return tuple(_run("qr", lambda x: xp.linalg.qr(x, mode=mode), M))


def equilibrate(G):
    """(N^-1 G N^-1, rho) with N = diag(rho), rho_i = sqrt(G_ii) (1 for a zero row), eq. (24).

    The unit-diagonal Gram matrix G' of the row-normalised factor N^-1 A (docs/math.md,
    "Gram route"). Works on stacked matrices (..., n, n); rho has shape (..., n).
    """
    xp = xp_of(G)
    diag = xp.linalg.diagonal(G)
    rho = xp.sqrt(xp.where(diag > 0, diag, 1.0))
    return G / (rho[..., :, None] * rho[..., None, :]), rho
