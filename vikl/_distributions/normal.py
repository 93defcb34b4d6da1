"""The univariate Normal family and its closed-form KL."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, _FromNoise, param
from vikl._kl import register_kl
from vikl._math import half_square_sum, scaled_reciprocal, square_ratio_term

__all__ = ["Normal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Normal(_FromNoise, Distribution):
    """Normal (Gaussian) distribution with scalar events.

    ``p(x) = exp(-(x - loc)^2 / (2 scale^2)) / (scale sqrt(2 pi))``.

    Args:
      loc: mean, any real array.
      scale: standard deviation, > 0.

    Sampling is reparameterized: ``x = loc + scale * eps``, ``eps ~ N(0, 1)``.

    Example:
      >>> import jax, vikl
      >>> float(vikl.Normal(0.0, 2.0).entropy())  # 0.5 log(2 pi e 4)
      2.112085...
    """

    loc: jax.Array = param(constraints.real)
    scale: jax.Array = param(constraints.positive)

    def _sample_eps(self, key, sample_shape):
        eps = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        return self.loc + self.scale * eps, eps

    def _log_prob_std(self, z):
        """``log p`` at ``loc + scale z``."""
        return -0.5 * z * z - jnp.log(self.scale) - _HALF_LOG_2PI

    def _score(self, eps):
        return -eps / self.scale

    def log_prob(self, x):
        return self._log_prob_std((x - self.loc) / self.scale)

    def cdf(self, x):
        """``P(X <= x)``."""
        return jax.scipy.special.ndtr((x - self.loc) / self.scale)

    def icdf(self, u):
        """Quantile function, the inverse of :meth:`cdf`."""
        return self.loc + self.scale * jax.scipy.special.ndtri(u)

    def entropy(self):
        return 0.5 + _HALF_LOG_2PI + jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return jnp.square(self.scale)

    @property
    def mode(self):
        return self.loc


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    """KL(N(m1, s1^2) ‖ N(m2, s2^2)) = ½[(s1/s2)² − 1 − log (s1/s2)²] + (m1 − m2)² / (2 s2²).

    The bracket is :func:`vikl._math.square_ratio_term`, which keeps full float32
    precision for nearly equal scales at the cost of the textbook formula. Range: any
    finite parameters (scales from the smallest to the largest normal float, in any
    ratio) give the right value, or +inf where the true KL exceeds the largest float.
    """
    # x / q.scale as (x s) * inv: unlike x * reciprocal(q.scale), right for q.scale > 8.5e37.
    # (A difference of locations that itself overflows, |m1 - m2| > 3.4e38, gives +inf.)
    s, inv = scaled_reciprocal(q.scale)
    z = ((p.loc - q.loc) * s) * inv
    return half_square_sum(square_ratio_term(p.scale, q.scale), z, (p.scale * s) * inv)
