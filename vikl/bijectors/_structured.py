"""Structured bijectors: maps onto simplices, ordered vectors and Cholesky factors.

They act on vectors (``event_ndims_in = 1``) and some change the event shape:

============================  ==================  ==================  =========================
bijector                      input event         output event        output
============================  ==================  ==================  =========================
:class:`StickBreaking`        ``(K - 1,)``        ``(K,)``            open simplex
:class:`SoftmaxCentered`      ``(K - 1,)``        ``(K,)``            open simplex
:class:`Ordered`              ``(K,)``            ``(K,)``            increasing vector
:class:`FillTriangular`       ``(n (n + 1)/2,)``  ``(n, n)``          lower-triangular matrix
:class:`LowerCholesky`        ``(n (n + 1)/2,)``  ``(n, n)``          positive-diagonal tril
:class:`CorrCholesky`         ``(n (n - 1)/2,)``  ``(n, n)``          correlation Cholesky
============================  ==================  ==================  =========================

Log-determinants of the maps that change the dimension are those of the map
onto the *free* coordinates of the output (NumPyro's convention): the first
``K - 1`` simplex coordinates; the strictly lower triangle of a correlation
Cholesky factor. With these conventions, a density on the output written in
the free coordinates (as NumPyro's ``Dirichlet`` and ``LKJCholesky`` are)
pulls back correctly.

Numerics: the maps are evaluated in log space (``softplus``/``log_sigmoid``,
``log cosh``), so saturated inputs (``+-40`` in float32) give finite values,
finite log-determinants and finite gradients; no ``log(exp(.))`` and no
``log(1 - tanh(x)**2)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vikl.bijectors._bijector import Bijector

__all__ = [
    "CorrCholesky",
    "FillTriangular",
    "LowerCholesky",
    "Ordered",
    "SoftmaxCentered",
    "StickBreaking",
]


# ---------------------------------------------------------------------------- shared helpers
def _side_from_count(m: int, strict: bool):
    """The ``n`` with ``m = n (n + 1) / 2`` (``strict``: ``n (n - 1) / 2``), or None."""
    n = (math.isqrt(8 * m + 1) - 1) // 2  # n (n + 1) / 2 = m
    if n * (n + 1) // 2 != m:
        return None
    return n + 1 if strict else n


def _tri_count(n: int, strict: bool) -> int:
    return n * (n - 1) // 2 if strict else n * (n + 1) // 2


def _vector_size(bij, x, what: str = "x") -> int:
    """Checks that ``x`` has at least one axis and returns the size of its last axis."""
    bij._check_event(x, 1, what)
    return jnp.shape(x)[-1]


def _side(bij, m: int, strict: bool, what: str = "x") -> int:
    """The matrix side ``n`` for a vector of ``m`` entries, or a ValueError."""
    n = _side_from_count(m, strict)
    if n is None:
        formula = "n(n-1)/2" if strict else "n(n+1)/2"
        raise ValueError(
            f"{type(bij).__name__}: the last axis of {what} must have {formula} entries for "
            f"some n; got {m}"
        )
    return n


def _square_side(bij, y, what: str = "y") -> int:
    """Checks that ``y`` ends in a square ``(n, n)`` and returns ``n``."""
    bij._check_event(y, 2, what)
    n, n2 = jnp.shape(y)[-2:]
    if n != n2:
        raise ValueError(
            f"{type(bij).__name__}: the last two axes of {what} must be square (n, n); got "
            f"shape {tuple(jnp.shape(y))}"
        )
    return n


def _fill_tril(v, n: int, k: int):
    """Places ``v[..., m]`` on the ``tril_indices(n, k)`` entries of a zero ``(n, n)`` matrix."""
    rows, cols = np.tril_indices(n, k)
    out = jnp.zeros(jnp.shape(v)[:-1] + (n, n), jnp.result_type(v))
    return out.at[..., rows, cols].set(v)


def _read_tril(y, k: int):
    """The ``tril_indices(n, k)`` entries of ``y[..., n, n]`` as a vector (row-major order)."""
    rows, cols = np.tril_indices(jnp.shape(y)[-1], k)
    return y[..., rows, cols]


def _float(x):
    """``x`` as a floating JAX array (Python numbers and ints in the default float dtype)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.zeros(()).dtype)


def _shape_of(bij, shape, ndims: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < ndims:
        raise ValueError(
            f"{type(bij).__name__}: {what} must have at least {ndims} axis/axes; got {shape}"
        )
    return shape


# ---------------------------------------------------------------------------- simplex maps
def _simplex_event_shapes(bij, shape, forward: bool):
    shape = _shape_of(bij, shape, 1, "the event shape")
    if forward:
        return shape[:-1] + (shape[-1] + 1,)
    if shape[-1] < 1:
        raise ValueError(
            f"{type(bij).__name__}: the last axis of y must have at least 1 entry; got {shape}"
        )
    return shape[:-1] + (shape[-1] - 1,)


def _check_simplex_input(bij, y):
    y = _float(y)
    if _vector_size(bij, y, "y") < 1:
        raise ValueError(
            f"{type(bij).__name__}: the last axis of y must have at least 1 entry (a simplex in "
            f"R^K, K >= 1); got shape {tuple(y.shape)}"
        )
    return y


class StickBreaking(Bijector):
    """Stick-breaking map from ``R^{K-1}`` onto the open simplex in ``R^K``.

    NumPyro's ``StickBreakingTransform``: with ``x'_i = x_i - log(K - 1 - i)``
    (so that ``x = 0`` maps to the uniform vector) and ``z_i = sigmoid(x'_i)``,
    ``y_i = z_i prod_{j<i} (1 - z_j)`` for ``i < K - 1`` and
    ``y_{K-1} = prod_j (1 - z_j)``. The log-determinant is that of the map onto
    the first ``K - 1`` coordinates (triangular),
    ``sum_{i<K-1} [log y_i + log(1 - z_i)]``; the inverse's is ``-sum_i log y_i``.
    """

    event_ndims_in = 1
    event_ndims_out = 1

    def forward_event_shape(self, shape):
        return _simplex_event_shapes(self, shape, True)

    def inverse_event_shape(self, shape):
        return _simplex_event_shapes(self, shape, False)

    def forward_and_log_det(self, x):
        x = _float(x)
        m = _vector_size(self, x)
        xs = x - jnp.log(jnp.arange(m, 0, -1).astype(x.dtype))
        log_z = -jax.nn.softplus(-xs)  # log sigmoid(x')
        log_1mz = -jax.nn.softplus(xs)  # log (1 - sigmoid(x'))
        log_rest = jnp.cumsum(log_1mz, axis=-1)  # log of the stick left after piece i
        log_before = log_rest - log_1mz  # ... before piece i
        # The last piece is the stick left at the end (all of it when K = 1).
        log_last = log_rest[..., -1:] if m else jnp.zeros(x.shape[:-1] + (1,), x.dtype)
        log_y = jnp.concatenate([log_z + log_before, log_last], axis=-1)
        log_det = jnp.sum(log_z + log_before + log_1mz, axis=-1)
        return jnp.exp(log_y), log_det

    def inverse_and_log_det(self, y):
        y = _check_simplex_input(self, y)
        m = y.shape[-1] - 1
        # Stick left before piece i, summed from the tail (exact for small remainders).
        rest = jnp.flip(jnp.cumsum(jnp.flip(y, -1), axis=-1), -1)
        log_y = jnp.log(y)
        xs = log_y[..., :-1] - jnp.log(rest[..., 1:])
        x = xs + jnp.log(jnp.arange(m, 0, -1).astype(y.dtype))
        # log|det| of the forward map at x: sum_i log y_i - log(sum y) (a telescoping sum).
        log_det = jnp.log(rest[..., 0]) - jnp.sum(log_y, axis=-1)
        return x, log_det


class SoftmaxCentered(Bijector):
    """Centred softmax from ``R^{K-1}`` onto the open simplex in ``R^K``: ``y = softmax([x, 0])``.

    The inverse is ``x = log y[:-1] - log y[-1]`` (the map vikl uses for simplex
    parameters). The log-determinant is that of the map onto the first
    ``K - 1`` coordinates, ``sum_{i<K} log y_i`` (by the matrix determinant
    lemma, ``det(diag(y') - y' y'^T) = prod(y') (1 - sum y')``).
    """

    event_ndims_in = 1
    event_ndims_out = 1

    def forward_event_shape(self, shape):
        return _simplex_event_shapes(self, shape, True)

    def inverse_event_shape(self, shape):
        return _simplex_event_shapes(self, shape, False)

    def forward_and_log_det(self, x):
        x = _float(x)
        _vector_size(self, x)
        full = jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (1,), x.dtype)], axis=-1)
        log_y = jax.nn.log_softmax(full, axis=-1)
        return jnp.exp(log_y), jnp.sum(log_y, axis=-1)

    def inverse_and_log_det(self, y):
        y = _check_simplex_input(self, y)
        log_y = jnp.log(y)
        x = log_y[..., :-1] - log_y[..., -1:]
        # Scale-invariant like the inverse: log-det at the normalized y / sum(y).
        log_det = y.shape[-1] * jnp.log(jnp.sum(y, axis=-1)) - jnp.sum(log_y, axis=-1)
        return x, log_det


# ---------------------------------------------------------------------------- ordered
class Ordered(Bijector):
    """Map from ``R^K`` onto increasing vectors: ``y_0 = x_0``, ``y_i = y_{i-1} + exp(x_i)``.

    NumPyro's ``OrderedTransform`` (Stan's ordered-vector transform);
    ``log|det J| = sum_{i>0} x_i``.
    """

    event_ndims_in = 1
    event_ndims_out = 1

    def forward_and_log_det(self, x):
        x = _float(x)
        _vector_size(self, x)
        steps = jnp.concatenate([x[..., :1], jnp.exp(x[..., 1:])], axis=-1)
        return jnp.cumsum(steps, axis=-1), jnp.sum(x[..., 1:], axis=-1)

    def inverse_and_log_det(self, y):
        y = _float(y)
        _vector_size(self, y, "y")
        log_gaps = jnp.log(jnp.diff(y, axis=-1))
        x = jnp.concatenate([y[..., :1], log_gaps], axis=-1)
        return x, -jnp.sum(log_gaps, axis=-1)


# ---------------------------------------------------------------------------- triangular
class _VecToMatrix(Bijector):
    """Shared shape logic of the vector -> ``(n, n)`` matrix bijectors."""

    event_ndims_in = 1
    event_ndims_out = 2
    _strict = False  # input has n (n - 1) / 2 entries instead of n (n + 1) / 2

    def forward_event_shape(self, shape):
        shape = _shape_of(self, shape, 1, "the input event shape")
        n = _side(self, shape[-1], self._strict)
        return shape[:-1] + (n, n)

    def inverse_event_shape(self, shape):
        shape = _shape_of(self, shape, 2, "the output event shape")
        if shape[-1] != shape[-2]:
            raise ValueError(
                f"{type(self).__name__}: the output event shape must end in a square (n, n); "
                f"got {shape}"
            )
        return shape[:-2] + (_tri_count(shape[-1], self._strict),)

    def _in(self, x):
        x = _float(x)
        return x, _side(self, _vector_size(self, x), self._strict)

    def _out(self, y):
        y = _float(y)
        return y, _square_side(self, y)


class FillTriangular(_VecToMatrix):
    """Fills a vector of ``n (n + 1) / 2`` entries into a lower-triangular ``(n, n)`` matrix.

    Row-major order of ``numpy.tril_indices(n)`` (NumPyro's ``vec_to_tril_matrix``);
    the upper triangle is zero; log-Jacobian 0. The inverse reads the lower
    triangle (ignoring the upper one).
    """

    is_constant_jacobian = True

    def forward_and_log_det(self, x):
        x, n = self._in(x)
        return _fill_tril(x, n, 0), jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        y, _ = self._out(y)
        return _read_tril(y, 0), jnp.zeros(y.shape[:-2], y.dtype)


class LowerCholesky(_VecToMatrix):
    """Map from ``R^{n(n+1)/2}`` onto lower-triangular matrices with positive diagonal.

    NumPyro's ``LowerCholeskyTransform``: the first ``n (n - 1) / 2`` entries
    fill the strictly lower triangle (row-major ``tril_indices(n, -1)`` order),
    the last ``n`` are the logs of the diagonal; ``log|det J| = sum x[-n:]``.
    """

    def forward_and_log_det(self, x):
        x, n = self._in(x)
        log_diag = x[..., x.shape[-1] - n:]
        y = _fill_tril(x[..., : x.shape[-1] - n], n, -1)
        y = y + jnp.exp(log_diag)[..., :, None] * jnp.eye(n, dtype=x.dtype)
        return y, jnp.sum(log_diag, axis=-1)

    def inverse_and_log_det(self, y):
        y, _ = self._out(y)
        log_diag = jnp.log(jnp.diagonal(y, axis1=-2, axis2=-1))
        x = jnp.concatenate([_read_tril(y, -1), log_diag], axis=-1)
        return x, -jnp.sum(log_diag, axis=-1)


def _log_cosh(x):
    """``log cosh x = |x| + log1p(exp(-2|x|)) - log 2`` without overflow."""
    a = jnp.abs(x)
    return a + jax.nn.softplus(-2 * a) - jnp.log(jnp.asarray(2, x.dtype))


class CorrCholesky(_VecToMatrix):
    """Map from ``R^{n(n-1)/2}`` onto Cholesky factors of ``n x n`` correlation matrices.

    NumPyro's ``CorrCholeskyTransform``: ``t = tanh(x)`` fills the strictly
    lower triangle (row-major), and each row is turned into a unit vector by a
    signed stick-breaking, ``y_ij = t_ij prod_{k<j} sqrt(1 - t_ik^2)`` for
    ``j < i`` and ``y_ii = prod_{k<i} sqrt(1 - t_ik^2)``. The log-determinant is
    that of the map from ``x`` onto the strictly lower triangle of ``y``,
    ``sum_{j<i} [log(1 - t_ij^2) + sum_{k<j} log sqrt(1 - t_ik^2)]``, computed
    with ``log sqrt(1 - tanh(x)^2) = -log cosh(x)`` (finite at any ``x``).
    """

    _strict = True

    def forward_and_log_det(self, x):
        x, n = self._in(x)
        t = _fill_tril(jnp.tanh(x), n, -1)
        h = _fill_tril(-_log_cosh(x), n, -1)  # log sqrt(1 - t^2), zero off the triangle
        cum = jnp.cumsum(h, axis=-1)
        before = cum - h  # sum_{k<j} h_ik
        diag = jnp.exp(cum[..., -1])  # row norms left for the diagonal
        y = t * jnp.exp(before) + diag[..., :, None] * jnp.eye(n, dtype=x.dtype)
        log_det = jnp.sum(_read_tril(2 * h + before, -1), axis=-1)
        return y, log_det

    def inverse_and_log_det(self, y):
        y, _ = self._out(y)
        low = jnp.tril(y)
        # rest_ij = sum_{k >= j} y_ik^2 (to the diagonal): the squared norm left at column j.
        rest_mat = jnp.flip(jnp.cumsum(jnp.flip(low * low, -1), axis=-1), -1)
        v = _read_tril(y, -1)
        rest = _read_tril(rest_mat, -1)
        # rest at column j + 1 (> 0: it holds y_ii^2), read off rather than rest - v^2.
        rest_next = _read_tril(jnp.concatenate([rest_mat[..., 1:], rest_mat[..., :1]], -1), -1)
        x = _arctanh_ratio(v, rest, rest_next)
        # fldj = sum_{j<i} [log rest_{i,j+1} - log rest_ij / 2] (rows of unit norm).
        return x, -jnp.sum(jnp.log(rest_next) - 0.5 * jnp.log(rest), axis=-1)


def _arctanh_ratio(v, rest, rest_next):
    """``arctanh(v / sqrt(rest))`` given ``rest_next = rest - v^2 > 0``.

    Near ``|t| = 1`` it uses ``sign(v) (log(sqrt(rest) + |v|) - log(rest_next) / 2)``,
    which does not cancel; near 0 ``arctanh`` itself (smooth through ``v = 0``).
    """
    t = v / jnp.sqrt(rest)
    small = jnp.abs(t) < 0.5
    t_small = jnp.where(small, t, 0)
    a = jnp.where(small, 1, jnp.abs(v))
    far = jnp.sign(v) * (jnp.log(jnp.sqrt(rest) + a) - 0.5 * jnp.log(rest_next))
    return jnp.where(small, jnp.arctanh(t_small), far)
