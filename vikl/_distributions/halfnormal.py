"""The HalfNormal family and its closed-form KL."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import half_square_sum, scaled_reciprocal, square_ratio_term

__all__ = ["HalfNormal"]

_HALF_LOG_2_OVER_PI = 0.5 * math.log(2 / math.pi)
_SQRT2 = math.sqrt(2.0)


class HalfNormal(Distribution):
    """Half-normal distribution: ``|Z| scale`` with ``Z ~ N(0, 1)``, ``x >= 0``.

    ``p(x) = sqrt(2/pi) / scale exp(-x² / (2 scale²))``. Mean
    ``scale sqrt(2/pi)``, variance ``scale² (1 - 2/pi)``, entropy
    ``½ log(pi e / 2) + log scale`` nats. ``log_prob`` is ``-inf`` for ``x < 0``.

    Args:
      scale: > 0.

    Sampling is reparameterized: ``x = scale |eps|``, ``eps ~ N(0, 1)``.
    """

    scale: jax.Array = param(constraints.positive)

    support = constraints.positive

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return self.scale * jnp.abs(jax.random.normal(key, shape, self.scale.dtype))

    def log_prob(self, x):
        z = jnp.where(x < 0, 0.0, x) / self.scale
        lp = _HALF_LOG_2_OVER_PI - jnp.log(self.scale) - 0.5 * z * z
        return jnp.where(x < 0, -jnp.inf, lp)

    def cdf(self, x):
        """``P(X <= x) = erf(x / (scale sqrt 2))`` (0 for ``x < 0``)."""
        return jax.scipy.special.erf(jnp.maximum(x, 0.0) / (self.scale * _SQRT2))

    def icdf(self, u):
        """Quantile function ``scale sqrt(2) erfinv(u)``."""
        return self.scale * _SQRT2 * jax.scipy.special.erfinv(u)

    def entropy(self):
        return 0.5 - _HALF_LOG_2_OVER_PI + jnp.log(self.scale)

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def variance(self):
        return jnp.square(self.scale) * (1 - 2 / math.pi)

    @property
    def mode(self):
        return jnp.zeros_like(self.scale)


@register_kl(HalfNormal, HalfNormal)
def _kl_halfnormal_halfnormal(p, q):
    """KL(HalfNormal(s1) ‖ HalfNormal(s2)) = ½[(s1/s2)² - 1 - log (s1/s2)²], in nats.

    Same as the Normal KL with equal means; the bracket is the cancellation-free
    :func:`vikl._math.square_ratio_term`.
    """
    s, inv = scaled_reciprocal(q.scale)
    r = (p.scale * s) * inv
    return half_square_sum(square_ratio_term(p.scale, q.scale), jnp.zeros_like(r), r)
