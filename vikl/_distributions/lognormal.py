"""The LogNormal family and its closed-form KL."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import half_square_sum, scaled_reciprocal, square_ratio_term

__all__ = ["LogNormal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class LogNormal(Distribution):
    """Log-normal distribution: ``log X ~ Normal(loc, scale)``, ``x > 0``.

    ``p(x) = exp(-(log x - loc)² / (2 scale²)) / (x scale sqrt(2 pi))``.
    Mean ``exp(loc + scale²/2)``, variance ``(exp(scale²) - 1) exp(2 loc + scale²)``,
    entropy ``loc + ½ + ½ log(2 pi) + log scale`` nats. ``log_prob`` is ``-inf``
    for ``x <= 0``.

    Args:
      loc: mean of ``log X``, any real array.
      scale: standard deviation of ``log X``, > 0.

    Sampling is reparameterized: ``x = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.
    """

    loc: jax.Array = param(constraints.real)
    scale: jax.Array = param(constraints.positive)

    support = constraints.positive

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        eps = jax.random.normal(key, shape, self.loc.dtype)
        return jnp.exp(self.loc + self.scale * eps)

    def log_prob(self, x):
        nonpositive = x <= 0
        log_x = jnp.log(jnp.where(nonpositive, 1.0, x))
        z = (log_x - self.loc) / self.scale
        lp = -0.5 * z * z - log_x - jnp.log(self.scale) - _HALF_LOG_2PI
        return jnp.where(nonpositive, -jnp.inf, lp)

    def cdf(self, x):
        """``P(X <= x) = Phi((log x - loc) / scale)`` (0 for ``x <= 0``)."""
        positive = x > 0
        z = (jnp.log(jnp.where(positive, x, 1.0)) - self.loc) / self.scale
        return jnp.where(positive, jax.scipy.special.ndtr(z), 0.0)

    def icdf(self, u):
        """Quantile function ``exp(loc + scale Phi^-1(u))``."""
        return jnp.exp(self.loc + self.scale * jax.scipy.special.ndtri(u))

    def entropy(self):
        return self.loc + 0.5 + _HALF_LOG_2PI + jnp.log(self.scale)

    @property
    def mean(self):
        return jnp.exp(self.loc + 0.5 * jnp.square(self.scale))

    @property
    def variance(self):
        s2 = jnp.square(self.scale)
        return jnp.expm1(s2) * jnp.exp(2 * self.loc + s2)

    @property
    def mode(self):
        return jnp.exp(self.loc - jnp.square(self.scale))


@register_kl(LogNormal, LogNormal)
def _kl_lognormal_lognormal(p, q):
    """KL(LogNormal(m1, s1) ‖ LogNormal(m2, s2)) = KL(N(m1, s1²) ‖ N(m2, s2²)), in nats.

    KL is invariant under the bijection ``x -> log x``:
    ``½[(s1/s2)² - 1 - log (s1/s2)²] + (m1 - m2)² / (2 s2²)``, with the bracket
    computed by the cancellation-free kernel of ``Normal``.
    """
    s, inv = scaled_reciprocal(q.scale)
    z = (p.loc - q.loc) / q.scale
    return half_square_sum(square_ratio_term(p.scale, q.scale), z, (p.scale * s) * inv)
