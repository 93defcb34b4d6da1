"""The Dirichlet family on the probability simplex and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kernels import beta_kl_and_size, bregman_lgamma_grads
from vikl._kl import register_kl
from vikl._math import xlogy
from vikl._special import (
    dirichlet_kl_stirling,
    dirichlet_neg_entropy,
    lgamma_bregman,
)

__all__ = ["Dirichlet"]


def _log_beta(alpha):
    """``log B(alpha) = sum_i log Gamma(alpha_i) - log Gamma(sum_i alpha_i)``."""
    return jnp.sum(gammaln(alpha), axis=-1) - gammaln(jnp.sum(alpha, axis=-1))


class Dirichlet(Distribution):
    """Dirichlet distribution over probability vectors (the last axis).

    ``p(x) = prod_i x_i^(alpha_i - 1) / B(alpha)`` on the simplex
    ``{x : x_i >= 0, sum_i x_i = 1}``, with ``B(alpha) = prod_i Gamma(alpha_i) / Gamma(alpha_0)``
    and ``alpha_0 = sum_i alpha_i``.

    Args:
      concentration: ``alpha``, > 0, shape ``batch + (K,)``.

    Sampling uses ``jax.random.dirichlet`` (normalized Gamma draws, generated in log space so
    small concentrations do not underflow) and is reparameterized through implicit
    differentiation of the Gamma sampler.

    Example:
      >>> import jax.numpy as jnp, vikl
      >>> float(vikl.Dirichlet(jnp.ones(3)).entropy())  # log(1/2) = -0.6931472: uniform on the 2-simplex
      -0.69314...
    """

    concentration: jax.Array = param(constraints.positive_vector)

    support = constraints.simplex

    @property
    def event_shape(self):
        return tuple(self.concentration.shape[-1:])

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + tuple(self.batch_shape)
        alpha = self.concentration
        return jax.random.dirichlet(key, alpha, shape, alpha.dtype)

    def log_prob(self, x):
        """``sum_i (alpha_i - 1) log x_i - log B(alpha)``; ``-inf`` off the simplex.

        Points whose entries are negative, or whose sum is off 1 by more than the
        tolerance of ``constraints.simplex``, get ``-inf``. On the boundary (some
        ``x_i = 0``) the density is 0 where ``alpha_i > 1`` and ``+inf`` where ``alpha_i < 1``.
        """
        alpha = self.concentration
        x = jnp.asarray(x, alpha.dtype) if not hasattr(x, "dtype") else x
        inside = constraints.simplex.check(x)
        k = alpha.shape[-1]
        safe = jnp.where(inside[..., None], x, jnp.asarray(1.0 / k, x.dtype))
        value = jnp.sum(xlogy(alpha - 1, safe), axis=-1) - _log_beta(alpha)
        return jnp.where(inside, value, -jnp.inf)

    def entropy(self):
        """``log B(alpha) + (alpha_0 - K) psi(alpha_0) - sum_i (alpha_i - 1) psi(alpha_i)``, nats.

        Evaluated without the cancellation of its large terms at large concentrations
        (``_special.dirichlet_neg_entropy``).
        """
        return -dirichlet_neg_entropy(self.concentration)

    @property
    def mean(self):
        alpha = self.concentration
        return alpha / jnp.sum(alpha, axis=-1, keepdims=True)

    @property
    def variance(self):
        alpha = self.concentration
        a0 = jnp.sum(alpha, axis=-1, keepdims=True)
        return alpha * (a0 - alpha) / (a0 * a0 * (a0 + 1))

    @property
    def covariance_matrix(self):
        """``(diag(m) - m m^T) / (alpha_0 + 1)`` with ``m`` the mean; shape ``batch + (K, K)``."""
        alpha = self.concentration
        a0 = jnp.sum(alpha, axis=-1, keepdims=True)
        m = alpha / a0
        outer = m[..., :, None] * m[..., None, :]
        diag = m[..., :, None] * jnp.eye(alpha.shape[-1], dtype=alpha.dtype)
        return (diag - outer) / (a0[..., None] + 1)


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    """KL(Dir(a) ‖ Dir(b)), in nats::

        log Gamma(a_0) - log Gamma(b_0) - sum_i [log Gamma(a_i) - log Gamma(b_i)]
          + sum_i (a_i - b_i) (psi(a_i) - psi(a_0)),        a_0 = sum_i a_i.

    This is the Bregman divergence of the log-normalizer, so it is evaluated as
    ``sum_i B(a_i, b_i - a_i) - B(a_0, b_0 - a_0)`` with
    ``B(x, h) = log Gamma(x + h) - log Gamma(x) - psi(x) h`` computed without cancellation
    (``_special.lgamma_bregman``): nearly equal concentrations keep their digits instead
    of losing them to the difference of ``gammaln`` values.
    """
    a, b = p.concentration, q.concentration
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            "kl_divergence(Dirichlet, Dirichlet): the two have different numbers of "
            f"categories, {a.shape[-1]} and {b.shape[-1]} (concentration shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)})."
        )
    dtype = jnp.result_type(a, b)  # mixed precisions promote (the scan-free kernels need one dtype)
    a, b = jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    value = _kl_concentrations(a, b)
    # As for Beta (``_kernels.beta_kl``): NaN from finite inputs is inf - inf of terms that
    # overflowed next to a concentration near the float minimum (Dir(1e-300, 1e-300) ‖
    # Dir(1e-300, 1e10) in float64: KL 5e309), so the KL is +inf.
    finite = jnp.all(jnp.isfinite(a) & jnp.isfinite(b), axis=-1)
    return jnp.where(jnp.isnan(value) & finite, jnp.inf, value)


@jax.custom_jvp
def _kl_concentrations(a, b):
    """KL(Dir(a) ‖ Dir(b)) for concentrations of equal shape (see ``_kl_dirichlet_dirichlet``).

    Three exact forms, and the one with the smaller sum of term magnitudes wins:

    * the Bregman form ``sum_i B(a_i, h_i) - B(a_0, h_0)``, ``h = b - a``: right for
      nearly equal Dirichlets, but when one component ``k`` carries almost all the
      mass, ``B(a_k, h_k)`` and ``B(a_0, h_0)`` are large and nearly equal;
    * the chain rule split at that component, ``KL(Beta(r, a_k) ‖ Beta(r', b_k))``
      (``r``, ``r'`` the rest's totals; the Beta KL picks its own form, see
      ``_kernels.beta_kl_and_size``) plus the Bregman form of the rest,
      ``sum_{i != k} B(a_i, h_i) - B(r, r' - r)``;
    * the large-concentration form ``_special.dirichlet_kl_stirling``, where both of the
      above sum terms of size ``a log a``.
    """
    h = b - a
    parts = lgamma_bregman(b, a, h)
    a0, h0 = jnp.sum(a, axis=-1), jnp.sum(h, axis=-1)
    whole = lgamma_bregman(jnp.sum(b, axis=-1), a0, h0)
    bregman = jnp.sum(parts, axis=-1) - whole
    if a.shape[-1] < 2:
        return bregman
    bregman_size = jnp.sum(parts, axis=-1) + whole
    k = jnp.argmax(a + b, axis=-1)
    top = jax.nn.one_hot(k, a.shape[-1], dtype=bool)

    def pick(v):
        return jnp.sum(jnp.where(top, v, 0.0), axis=-1)

    def rest(v):
        return jnp.sum(jnp.where(top, 0.0, v), axis=-1)

    r, r2, hr = rest(a), rest(b), rest(h)
    beta, beta_size = beta_kl_and_size(r, pick(a), r2, pick(b))
    rest_parts = rest(parts)
    rest_whole = lgamma_bregman(r2, r, hr)
    chain = beta + (rest_parts - rest_whole)
    chain_size = beta_size + rest_parts + rest_whole
    use = chain_size < bregman_size
    value, size = jnp.where(use, chain, bregman), jnp.where(use, chain_size, bregman_size)
    stirling, stirling_size = dirichlet_kl_stirling(a, b)
    return jnp.where(stirling_size < size, stirling, value)


@_kl_concentrations.defjvp
def _kl_concentrations_jvp(primals, tangents):
    # Closed-form derivatives of the Bregman divergence of F(a) = sum log Gamma(a_i) - log Gamma(a_0):
    #   dKL/da = F''(a) (a - b),   dKL/db = F'(b) - F'(a),   F'(a)_i = psi(a_i) - psi(a_0),
    # shared with the Beta KL (``_kernels.bregman_lgamma_grads``: digamma differences without
    # cancellation, exact zeros at a_i = b_i also near the float minimum).
    a, b = primals
    da, db = tangents
    grad_a, grad_b = bregman_lgamma_grads(a, b)
    return _kl_concentrations(a, b), jnp.sum(grad_a * da + grad_b * db, axis=-1)
