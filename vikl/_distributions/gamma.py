"""The Gamma family and its closed-form KL.

The KL and entropy kernels (shared with the Exponential and cross-family KLs) live in
``vikl._kernels``, the log-gamma numerics under them in ``vikl._special``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kernels import gamma_entropy_shape, gamma_kl
from vikl._kl import register_kl
from vikl._math import xlogy

__all__ = ["Gamma"]


class Gamma(Distribution):
    """Gamma distribution on ``x >= 0`` (shape/rate parameterization).

    ``p(x) = rate^a x^(a - 1) exp(-rate x) / Gamma(a)`` with ``a = concentration``.
    Mean ``a / rate``, variance ``a / rate²``; entropy
    ``a - log rate + lgamma(a) + (1 - a) digamma(a)`` nats.

    Args:
      concentration: shape ``a``, > 0.
      rate: inverse scale, > 0.

    Sampling is reparameterized: ``jax.random.gamma`` has implicit-reparameterization
    gradients with respect to ``concentration``, and ``x = g / rate``.
    """

    concentration: jax.Array = param(constraints.positive)
    rate: jax.Array = param(constraints.positive)

    support = constraints.positive

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        g = jax.random.gamma(key, self.concentration, shape, self.concentration.dtype)
        return g / self.rate

    def log_prob(self, x):
        a, b = self.concentration, self.rate
        negative = x < 0
        x_safe = jnp.where(negative | (x == jnp.inf), 1.0, x)
        lp = xlogy(a - 1, x_safe) + a * jnp.log(b) - b * x_safe - gammaln(a)
        return jnp.where(negative | (x == jnp.inf), -jnp.inf, lp)

    def cdf(self, x):
        """``P(X <= x)``, the regularized lower incomplete gamma function."""
        return jax.scipy.special.gammainc(self.concentration, jnp.maximum(self.rate * x, 0.0))

    def entropy(self):
        return gamma_entropy_shape(self.concentration) - jnp.log(self.rate)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / jnp.square(self.rate)

    @property
    def mode(self):
        return jnp.maximum(self.concentration - 1, 0.0) / self.rate


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    """KL(Gamma(a1, b1) ‖ Gamma(a2, b2)) in nats.

    ``= (a1 - a2) digamma(a1) - lgamma(a1) + lgamma(a2) + a2 log(b1/b2) + a1 (b2 - b1)/b1``,
    from whichever of two exact forms sums the smaller terms (see ``_kernels.gamma_kl``).
    """
    dtype = jnp.result_type(p.concentration, q.concentration)
    args = (jnp.asarray(v, dtype) for v in (p.concentration, p.rate, q.concentration, q.rate))
    return gamma_kl(*args)
