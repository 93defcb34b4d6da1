"""Multivariate Normal families: diagonal, full (Cholesky) and low-rank-plus-diagonal.

Events are vectors along the last axis; batch shapes broadcast like NumPy.
All three store only what their name says (a Cholesky factor, a diagonal, a
factor and a diagonal) and compute with triangular solves, never with explicit
inverses or determinants. Their closed-form KL pairs live in ``mvn_kl.py`` (registered when
``vikl._distributions`` is imported); the triangular helpers in ``vikl._linalg``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from vikl import _base
from vikl import _constraints as constraints
from vikl._base import Distribution, _FromNoise, is_concrete, param
from vikl._linalg import diag_embed, gram_tril, log_diag_sum, solve_lower

__all__ = ["MultivariateNormalDiag", "MultivariateNormal", "LowRankMultivariateNormal"]

_LOG_2PI = math.log(2 * math.pi)

# A d x r real matrix per batch member (the low-rank covariance factor).
real_matrix = constraints._Real(event_dim=2)
real_matrix.name = "real_matrix"


def _check_size(name, loc, arg, value, axis, expected):
    """Raises unless ``value.shape[axis]`` equals the event size ``d = loc.shape[-1]``."""
    d = loc.shape[-1]
    if value.shape[axis] != d:
        raise ValueError(
            f"{name}: loc has {d} coordinates (shape {tuple(loc.shape)}) but {arg} has shape "
            f"{tuple(value.shape)}; expected {arg} of shape {expected.format(d=d)}."
        )


class MultivariateNormalDiag(_FromNoise, Distribution):
    """Multivariate Normal with diagonal covariance ``diag(scale_diag^2)``.

    ``log p(x) = -1/2 sum_i ((x_i - loc_i) / scale_diag_i)^2 - sum_i log scale_diag_i
    - d/2 log(2 pi)``.

    Args:
      loc: mean, shape ``batch + (d,)``.
      scale_diag: per-coordinate standard deviations, > 0, shape ``batch + (d,)``.

    Sampling is reparameterized: ``x = loc + scale_diag * eps``, ``eps ~ N(0, I)``.
    """

    loc: jax.Array = param(constraints.real_vector)
    scale_diag: jax.Array = param(constraints.positive_vector)

    def _check_shapes(self):
        _check_size(type(self).__name__, self.loc, "scale_diag", self.scale_diag, -1, "(..., {d})")

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    def _sample_eps(self, key, sample_shape):
        eps = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        return self.loc + self.scale_diag * eps, eps

    def _log_prob_std(self, z):
        """``log p`` at the point whose standardized coordinates are ``z``."""
        d = self.loc.shape[-1]
        return (
            -0.5 * jnp.sum(z * z, axis=-1)
            - jnp.sum(jnp.log(self.scale_diag), axis=-1)
            - 0.5 * d * _LOG_2PI
        )

    def log_prob(self, x):
        return self._log_prob_std((x - self.loc) / self.scale_diag)

    def _score(self, eps):
        return -eps / self.scale_diag

    def entropy(self):
        d = self.loc.shape[-1]
        return 0.5 * d * (1.0 + _LOG_2PI) + jnp.sum(jnp.log(self.scale_diag), axis=-1)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return jnp.square(self.scale_diag)

    @property
    def scale_tril(self):
        """Cholesky factor of the covariance, ``diag(scale_diag)``."""
        return diag_embed(self.scale_diag)

    @property
    def covariance_matrix(self):
        """``diag(scale_diag^2)``, shape ``batch + (d, d)``."""
        return diag_embed(jnp.square(self.scale_diag))

    @property
    def precision_matrix(self):
        """``diag(scale_diag^-2)``, shape ``batch + (d, d)``."""
        return diag_embed(1.0 / jnp.square(self.scale_diag))


def _check_symmetric(name, arg, m):
    """Raises unless ``|A_ij - A_ji| <= sqrt(eps) * max(sqrt(|A_ii A_jj|), |A_ij|, |A_ji|)``.

    The tolerance is relative to each entry's natural scale (``sqrt(A_ii A_jj)`` bounds
    ``|A_ij|`` for a positive-definite matrix) and set by the dtype: an inverse computed in
    floating point is symmetric only to about ``eps`` times the condition number (measured:
    ``5e3 eps`` for ``np.linalg.inv`` at condition number 1e5 in float64), and the Cholesky
    factorization uses the symmetric part anyway. ``sqrt(eps)`` (1.5e-8 in float64, 3.5e-4 in
    float32) accepts such inverses up to a condition number of about 1e7-1e8 and still
    rejects a matrix that is not meant to be symmetric.
    """
    mt = np.swapaxes(m, -1, -2)
    diag = np.abs(np.diagonal(m, axis1=-2, axis2=-1))
    scale = np.maximum(np.sqrt(diag[..., :, None] * diag[..., None, :]), np.maximum(np.abs(m), np.abs(mt)))
    asym = np.abs(m - mt)
    rtol = np.sqrt(np.finfo(m.dtype).eps)
    if not np.all(asym <= rtol * scale):
        rel = np.max(np.where(asym == 0, 0.0, asym / np.where(scale > 0, scale, 1.0)), initial=0.0)
        raise ValueError(
            f"{name}: {arg} must be symmetric positive definite; got a matrix with "
            f"max |A - A^T| = {asym.max(initial=0.0):.3g}, {rel:.3g} relative to "
            f"sqrt(|A_ii A_jj|) (shape {m.shape}, dtype {m.dtype}); expected at most "
            f"{rtol:.2g} relative (sqrt(eps) of the dtype)."
        )


def _precision_to_scale_tril(prec):
    """Lower Cholesky factor of ``prec^{-1}`` without forming the inverse.

    With ``J`` the reversal permutation, ``chol(J P J) = Lf`` gives ``P = U U^T`` for the
    upper-triangular ``U = J Lf J``, so ``P^{-1} = (U^{-T})(U^{-T})^T`` and ``U^{-T}`` is lower.
    """
    lf = jnp.linalg.cholesky(jnp.flip(prec, (-2, -1)))
    ut = jnp.swapaxes(jnp.flip(lf, (-2, -1)), -2, -1)  # U^T, lower-triangular
    eye = jnp.broadcast_to(jnp.eye(prec.shape[-1], dtype=prec.dtype), prec.shape)
    return solve_triangular(ut, eye, lower=True)


class MultivariateNormal(_FromNoise, Distribution):
    """Multivariate Normal ``N(loc, L L^T)`` stored by its Cholesky factor ``L = scale_tril``.

    ``log p(x) = -1/2 |L^{-1}(x - loc)|^2 - sum_i log L_ii - d/2 log(2 pi)``.

    Exactly one of ``scale_tril``, ``covariance_matrix`` and ``precision_matrix`` is given;
    the latter two are converted to ``scale_tril`` once, at construction (a Cholesky
    factorization), and only ``loc`` and ``scale_tril`` are stored.

    Args:
      loc: mean, shape ``batch + (d,)``.
      scale_tril: lower-triangular ``(d, d)`` factor with a positive diagonal.
      covariance_matrix: symmetric positive-definite ``(d, d)`` covariance.
      precision_matrix: symmetric positive-definite ``(d, d)`` inverse covariance.

    Raises:
      ValueError: not exactly one of the three is given; shapes do not match ``loc``;
        ``scale_tril`` is not lower-triangular with a positive diagonal; or (on concrete
        input) ``covariance_matrix``/``precision_matrix`` is not symmetric positive definite.
        Under ``jit`` a non-positive-definite matrix gives NaN instead.

    Sampling is reparameterized: ``x = loc + L eps``, ``eps ~ N(0, I)``.
    """

    loc: jax.Array = param(constraints.real_vector)
    scale_tril: jax.Array = param(constraints.lower_cholesky)

    def __init__(self, loc, scale_tril=None, covariance_matrix=None, precision_matrix=None):
        name = type(self).__name__
        given = {
            k: v
            for k, v in (
                ("scale_tril", scale_tril),
                ("covariance_matrix", covariance_matrix),
                ("precision_matrix", precision_matrix),
            )
            if v is not None
        }
        if len(given) != 1:
            got = ", ".join(given) if given else "none"
            raise ValueError(
                f"{name}: pass exactly one of scale_tril, covariance_matrix, precision_matrix; "
                f"got {got}."
            )
        (arg, matrix), = given.items()
        if arg != "scale_tril":
            matrix = self._factor(name, arg, loc, matrix)
        self._setup(loc=loc, scale_tril=matrix)

    @staticmethod
    def _factor(name, arg, loc, matrix):
        """Cholesky factor of the covariance from ``covariance_matrix``/``precision_matrix``."""
        matrix = _base._to_float_array(name, arg, matrix, constraints.real)
        loc_arr = _base._to_float_array(name, "loc", loc, constraints.real_vector)
        if np.dtype(loc_arr.dtype).itemsize > np.dtype(matrix.dtype).itemsize:
            matrix = matrix.astype(loc_arr.dtype)
        if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
            raise ValueError(
                f"{name}: {arg} must be a square matrix in its last two axes; got shape "
                f"{tuple(matrix.shape)}."
            )
        check = _base._VALIDATE[0] and is_concrete(matrix)
        if check:
            _check_symmetric(name, arg, np.asarray(matrix))
        if arg == "covariance_matrix":
            tril = jnp.linalg.cholesky(matrix)
        else:
            tril = _precision_to_scale_tril(matrix)
        if check and not np.all(np.isfinite(np.asarray(tril))):
            raise ValueError(
                f"{name}: {arg} must be symmetric positive definite; its Cholesky "
                f"factorization failed (shape {tuple(matrix.shape)}, dtype {matrix.dtype})."
            )
        return tril

    def _check_shapes(self):
        s = self.scale_tril.shape
        if s[-1] != s[-2]:
            raise ValueError(
                f"{type(self).__name__}: scale_tril must be square in its last two axes; "
                f"got shape {tuple(s)}."
            )
        _check_size(type(self).__name__, self.loc, "scale_tril", self.scale_tril, -1, "(..., {d}, {d})")

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    def _sample_eps(self, key, sample_shape):
        eps = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        if self.scale_tril.ndim == 2:  # one factor for every draw: a single matrix product
            return self.loc + eps @ self.scale_tril.T, eps
        return self.loc + jnp.matmul(self.scale_tril, eps[..., None])[..., 0], eps

    def _log_prob_std(self, z):
        """``log p`` at the point ``loc + scale_tril z``."""
        d = self.loc.shape[-1]
        return -0.5 * jnp.sum(z * z, axis=-1) - log_diag_sum(self.scale_tril) - 0.5 * d * _LOG_2PI

    def log_prob(self, x):
        return self._log_prob_std(solve_lower(self.scale_tril, x - self.loc))

    def _score(self, eps):
        # d log p / dx = -Sigma^{-1} (x - loc) = -scale_tril^{-T} eps: one triangular solve
        return -solve_lower(self.scale_tril, eps, trans=1)

    def entropy(self):
        d = self.loc.shape[-1]
        return 0.5 * d * (1.0 + _LOG_2PI) + log_diag_sum(self.scale_tril)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return jnp.sum(jnp.square(self.scale_tril), axis=-1)

    @property
    def covariance_matrix(self):
        """``L L^T``, shape ``batch + (d, d)``."""
        return jnp.matmul(self.scale_tril, jnp.swapaxes(self.scale_tril, -2, -1))

    @property
    def precision_matrix(self):
        """``L^{-T} L^{-1}``, from one triangular solve."""
        eye = jnp.broadcast_to(jnp.eye(self.loc.shape[-1], dtype=self.dtype), self.scale_tril.shape)
        linv = solve_triangular(self.scale_tril, eye, lower=True)
        return jnp.matmul(jnp.swapaxes(linv, -2, -1), linv)


class LowRankMultivariateNormal(Distribution):
    """Multivariate Normal with covariance ``W W^T + diag(cov_diag)``, ``W = cov_factor`` (d x r).

    Log-density, entropy and KL use the ``r x r`` capacitance matrix
    ``C = I + W^T diag(cov_diag)^{-1} W`` (Woodbury identity and matrix-determinant lemma):
    ``log det Sigma = sum_i log cov_diag_i + log det C`` and
    ``x^T Sigma^{-1} x = |y|^2 - |L_C^{-1} A^T y|^2`` with ``y = x / sqrt(cov_diag)``,
    ``A = W / sqrt(cov_diag)``, ``L_C = chol(C)``; cost ``O(d r^2)`` per evaluation.
    That holds for a rank ``r < d``. For ``r >= d`` (a static choice, from the shapes) they
    use the ``d x d`` Cholesky factor of ``Sigma`` itself, which is then both cheaper
    (``O(d^2 r)``) and accurate: ``C`` has ``r - d`` eigenvalues equal to 1 beside ``d`` of
    size ``|W|^2 / cov_diag``, so with a small ``cov_diag`` its factorization fails (NaN) and
    the Woodbury difference ``|y|^2 - |L_C^{-1} A^T y|^2`` cancels every digit, even for a
    well-conditioned ``Sigma`` (``d = 5``, ``r = 50``, ``cov_diag = 1e-6``: condition number 3).

    Args:
      loc: mean, shape ``batch + (d,)``.
      cov_factor: ``W``, shape ``batch + (d, r)``.
      cov_diag: the diagonal part, > 0, shape ``batch + (d,)``.

    Sampling is reparameterized: ``x = loc + W z1 + sqrt(cov_diag) z2`` with independent
    ``z1 ~ N(0, I_r)``, ``z2 ~ N(0, I_d)``.
    """

    loc: jax.Array = param(constraints.real_vector)
    cov_factor: jax.Array = param(real_matrix)
    cov_diag: jax.Array = param(constraints.positive_vector)

    def _check_shapes(self):
        name = type(self).__name__
        _check_size(name, self.loc, "cov_factor", self.cov_factor, -2, "(..., {d}, rank)")
        _check_size(name, self.loc, "cov_diag", self.cov_diag, -1, "(..., {d})")

    @property
    def event_shape(self):
        return tuple(self.loc.shape[-1:])

    @property
    def _dense(self):
        """Static: compute with the ``d x d`` Cholesky factor of ``Sigma`` (rank ``r >= d``)."""
        return self.cov_factor.shape[-1] >= self.loc.shape[-1]

    def _capacitance_tril(self):
        """``(A, L_C)``: ``A = W / sqrt(cov_diag)`` and ``L_C = chol(I + A^T A)``."""
        a = self.cov_factor * jax.lax.rsqrt(self.cov_diag)[..., None]
        return a, gram_tril(a, jnp.ones(a.shape[-1:], a.dtype))

    def _log_det_cov(self, cap_tril):
        log_diag = jnp.log(jnp.abs(jnp.diagonal(cap_tril, axis1=-2, axis2=-1)))
        return jnp.sum(jnp.log(self.cov_diag), axis=-1) + 2.0 * jnp.sum(log_diag, axis=-1)

    def sample(self, key, sample_shape=()):
        key_w, key_d = jax.random.split(key)
        r = self.cov_factor.shape[-1]
        shape = tuple(sample_shape) + tuple(self.batch_shape)
        z1 = jax.random.normal(key_w, shape + (r,), self.loc.dtype)
        z2 = jax.random.normal(key_d, self._extended_shape(sample_shape), self.loc.dtype)
        return (
            self.loc
            + jnp.matmul(self.cov_factor, z1[..., None])[..., 0]
            + jnp.sqrt(self.cov_diag) * z2
        )

    def log_prob(self, x):
        d = self.loc.shape[-1]
        if self._dense:
            tril = self.scale_tril
            z = solve_lower(tril, x - self.loc)
            return -0.5 * jnp.sum(z * z, axis=-1) - log_diag_sum(tril) - 0.5 * d * _LOG_2PI
        # y^T (I + A A^T)^{-1} y = min_z |y - A z|^2 + |z|^2: a least-squares problem in
        # [A; I], solved with its QR factorization (never with C = R^T R, whose condition
        # number is squared, nor as |y|^2 - |L_C^{-1} A^T y|^2, which cancels when the
        # diagonal is small next to W W^T: |y|^2 is then ~|W|^2 / cov_diag times the result).
        a = self.cov_factor * jax.lax.rsqrt(self.cov_diag)[..., None]
        r = a.shape[-1]
        eye = jnp.broadcast_to(jnp.eye(r, dtype=a.dtype), a.shape[:-2] + (r, r))
        q, upper = jnp.linalg.qr(jnp.concatenate([a, eye], axis=-2))
        cap_tril = jnp.swapaxes(upper, -2, -1)  # C = L L^T up to the signs of L's columns
        y = (x - self.loc) * jax.lax.rsqrt(self.cov_diag)
        u = jnp.einsum("...dr,...d->...r", q[..., :d, :], y)
        z = solve_lower(cap_tril, u, trans=1)
        res = y - jnp.einsum("...dr,...r->...d", a, z)
        maha = jnp.sum(res * res, axis=-1) + jnp.sum(z * z, axis=-1)
        return -0.5 * (maha + self._log_det_cov(cap_tril) + d * _LOG_2PI)

    def entropy(self):
        d = self.loc.shape[-1]
        if self._dense:
            return 0.5 * d * (1.0 + _LOG_2PI) + log_diag_sum(self.scale_tril)
        _, cap_tril = self._capacitance_tril()
        return 0.5 * (d * (1.0 + _LOG_2PI) + self._log_det_cov(cap_tril))

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return jnp.sum(jnp.square(self.cov_factor), axis=-1) + self.cov_diag

    @property
    def covariance_matrix(self):
        """``W W^T + diag(cov_diag)``, shape ``batch + (d, d)``."""
        w = self.cov_factor
        return jnp.matmul(w, jnp.swapaxes(w, -2, -1)) + diag_embed(self.cov_diag)

    @property
    def scale_tril(self):
        """Cholesky factor of :attr:`covariance_matrix`, ``O(d^2 (r + d))``: from a QR
        factorization of ``[W | diag(sqrt(cov_diag))]^T``, never forming the covariance, so a
        ``cov_diag`` far below ``W W^T`` keeps its digits."""
        return gram_tril(jnp.swapaxes(self.cov_factor, -2, -1), jnp.sqrt(self.cov_diag))

    @property
    def precision_matrix(self):
        """``diag(1/D) - Q^T Q`` with ``Q = L_C^{-1} A^T diag(D)^{-1/2}`` (Woodbury); for
        rank ``r >= d``, ``L^{-T} L^{-1}`` from the Cholesky factor ``L`` of ``Sigma``."""
        if self._dense:
            tril = self.scale_tril
            eye = jnp.broadcast_to(jnp.eye(tril.shape[-1], dtype=tril.dtype), tril.shape)
            linv = solve_triangular(tril, eye, lower=True)
            return jnp.matmul(jnp.swapaxes(linv, -2, -1), linv)
        a, cap_tril = self._capacitance_tril()
        inv_sqrt = jax.lax.rsqrt(self.cov_diag)
        q = solve_triangular(cap_tril, jnp.swapaxes(a, -2, -1), lower=True) * inv_sqrt[..., None, :]
        return diag_embed(1.0 / self.cov_diag) - jnp.matmul(jnp.swapaxes(q, -2, -1), q)
