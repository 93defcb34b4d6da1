"""The Gumbel (type-I extreme value, maximum) family and its closed-form KL."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import x_minus_log1p
from vikl._special import lgamma_bregmans

__all__ = ["Gumbel"]

EULER_GAMMA = 0.57721566490153286061


class Gumbel(Distribution):
    """Gumbel distribution (of maxima) with scalar events.

    ``p(x) = exp(-z - exp(-z)) / scale``, ``z = (x - loc) / scale``. Mean
    ``loc + gamma scale`` (``gamma`` = Euler's constant), variance
    ``pi² scale² / 6``, entropy ``log scale + gamma + 1`` nats.

    Args:
      loc: location (mode), any real array.
      scale: > 0.

    Sampling is reparameterized: ``x = loc + scale * g``, ``g = -log(-log u)``.
    """

    loc: jax.Array = param(constraints.real)
    scale: jax.Array = param(constraints.positive)

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * jax.random.gumbel(key, shape, self.loc.dtype)

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return -z - jnp.exp(-z) - jnp.log(self.scale)

    def cdf(self, x):
        """``P(X <= x) = exp(-exp(-z))``."""
        return jnp.exp(-jnp.exp(-(x - self.loc) / self.scale))

    def icdf(self, u):
        """Quantile function ``loc - scale log(-log u)``."""
        return self.loc - self.scale * jnp.log(-jnp.log(u))

    def entropy(self):
        return jnp.log(self.scale) + (EULER_GAMMA + 1.0)

    @property
    def mean(self):
        return self.loc + EULER_GAMMA * self.scale

    @property
    def variance(self):
        return (math.pi**2 / 6) * jnp.square(self.scale)

    @property
    def mode(self):
        return self.loc


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p, q):
    """KL(Gumbel(m1, s1) ‖ Gumbel(m2, s2)) in nats.

    ``= log(s2/s1) + gamma (r - 1) + d + exp(lgamma(1 + r) - d) - 1`` with
    ``r = s1/s2``, ``d = (m1 - m2)/s2`` and ``gamma`` Euler's constant.
    Evaluated as ``[e^y - 1 - y] + D(r, 1)`` with ``y = lgamma(1 + r) - d``
    and ``D`` the log-gamma Bregman divergence (``D(r, 1) = lgamma(r) + gamma (r - 1)``);
    ``lgamma(1 + r) = (1 - gamma)(r - 1) + D(1 + r, 2)``. Both terms are >= 0,
    so nearly equal Gumbels give an accurate small KL.
    """
    r = p.scale / q.scale
    # A ratio below the smallest normal float (s1 << s2) is 0 or subnormal: lgamma(r) is
    # then -log r - gamma r + O(r^2), so D(r, 1) = -log r - gamma to far below an ulp,
    # with log r taken from log s1 - log s2 (finite). The Bregman terms get r = 1 there.
    tiny = r < jnp.finfo(r.dtype).tiny
    r = jnp.where(tiny, 1.0, r)
    r_minus_1 = jnp.where(tiny, 0.0, (p.scale - q.scale) / q.scale)
    d = (p.loc - q.loc) / q.scale
    one = jnp.ones_like(r)
    d_shifted, d_r = lgamma_bregmans((1 + r, 2 * one, r_minus_1), (r, one, r_minus_1))
    d_r = jnp.where(tiny, (jnp.log(q.scale) - jnp.log(p.scale)) - EULER_GAMMA, d_r)
    # lgamma(1 + r) - d; lgamma(1 + r) = 0 for the tiny ratios.
    y = jnp.where(tiny, 0.0, (1 - EULER_GAMMA) * r_minus_1 + d_shifted) - d
    kl = x_minus_log1p(jnp.expm1(y), y) + d_r
    # s1 / s2 overflowing (> 3e38 in float32) makes exp(lgamma(1 + r)) and the KL +inf;
    # the two +inf terms above would give inf - inf on the way.
    # Past r = max / (log(max) - 8) the term D(r, 1) = lgamma(r) + gamma (r - 1) >= 0 alone
    # exceeds the largest float (Stirling: D >= r (log r - 1 + gamma) - log r / 2 - gamma),
    # so the KL is +inf; the log-gamma pieces would meet as inf - inf there.
    big = float(jnp.finfo(kl.dtype).max) / (math.log(float(jnp.finfo(kl.dtype).max)) - 8.0)
    return jnp.where(r > big, jnp.inf, kl)
