"""Triangular, Cholesky and QR helpers on plain arrays, shared by the Gaussian families
(``_distributions/mvn.py``) and their KLs (``_distributions/mvn_kl.py``).

No family module is imported here.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

__all__ = ["diag_embed", "gram_tril", "log_diag_sum", "solve_lower", "trsm"]


def trsm(tril, b, trans):
    """``tril^{-1} b`` (``tril^{-T} b`` with ``trans=1``), solved as the upper-triangular
    system of ``tril^T``: LAPACK wants column-major operands, and ``tril^T`` in column-major
    order is ``tril`` itself in JAX's row-major order, so no transposed copy of the factor
    (or of the masks that built it) is made inside a compiled loop."""
    return solve_triangular(jnp.swapaxes(tril, -1, -2), b, lower=False, trans=1 - trans)


def solve_lower(tril, v, trans=0):
    """``tril^{-1} v`` (``tril^{-T} v`` with ``trans=1``) for ``v`` of shape ``(...,) + batch' + (n,)``
    (batch' broadcasting with ``tril``'s batch). Extra leading axes of ``v`` become right-hand-side
    columns of one batched triangular solve, so ``tril`` is never copied per sample."""
    n = tril.shape[-1]
    batch = tril.shape[:-2]
    full = tuple(jnp.broadcast_shapes(v.shape[:-1], batch))
    nb, k = len(batch), len(full) - len(batch)
    tail, extra = full[k:], full[:k]
    v = jnp.broadcast_to(v, full + (n,))
    if tail != batch:
        tril = jnp.broadcast_to(tril, tail + (n, n))
    if k == 0:
        return trsm(tril, v[..., None], trans)[..., 0]
    perm = tuple(range(k, k + nb + 1)) + tuple(range(k))
    cols = jnp.transpose(v, perm).reshape(tail + (n, math.prod(extra)))
    z = trsm(tril, cols, trans).reshape(tail + (n,) + extra)
    return jnp.transpose(z, tuple(range(nb + 1, nb + 1 + k)) + tuple(range(nb + 1)))


def diag_embed(v):
    """The diagonal matrices with diagonals ``v`` (last axis), shape ``v.shape + (n,)``."""
    return v[..., :, None] * jnp.eye(v.shape[-1], dtype=v.dtype)


def log_diag_sum(tril):
    """``sum_i log tril_ii`` (half the log-determinant of ``tril tril^T``)."""
    return jnp.sum(jnp.log(jnp.diagonal(tril, axis1=-2, axis2=-1)), axis=-1)


def gram_tril(top, bottom):
    """Lower Cholesky factor of ``top^T top + diag(bottom)^2`` from a QR factorization of
    ``[top; diag(bottom)]``, without forming the Gram matrix (whose rounding, about ``eps |top|^2``,
    swamps ``bottom^2`` when it is small: the factorization then fails or loses every digit).
    The factor's error is that of a relative perturbation of the stacked matrix's rows.
    """
    n = top.shape[-1]
    batch = jnp.broadcast_shapes(top.shape[:-2], bottom.shape[:-1])
    stacked = jnp.concatenate(
        [jnp.broadcast_to(top, batch + top.shape[-2:]), diag_embed(jnp.broadcast_to(bottom, batch + (n,)))],
        axis=-2,
    )
    r = jnp.linalg.qr(stacked, mode="r")
    sign = jnp.where(jnp.diagonal(r, axis1=-2, axis2=-1) < 0, -1, 1).astype(r.dtype)
    return jnp.swapaxes(r * sign[..., :, None], -2, -1)
