"""The Student-t family (location-scale)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._distributions.gamma import _is64, _lgamma_bregman

__all__ = ["StudentT"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@jax.jit
def _log_normalizer(df):
    """``lgamma((df+1)/2) - lgamma(df/2) - ½ log(df pi)``, without the large-``df`` cancellation.

    With ``a = df/2``: ``lgamma(a + ½) - lgamma(a) = D(a + ½, a) + ½ digamma(a)``
    (``D`` the log-gamma Bregman divergence), so the value is
    ``D(a + ½, a) + ½ (digamma(a) - log a) - ½ log(2 pi)``.
    """
    a = 0.5 * df
    lgamma_ratio_minus_half_digamma = _lgamma_bregman(a + 0.5, a, jnp.full_like(a, 0.5))
    return lgamma_ratio_minus_half_digamma + 0.5 * (digamma(a) - jnp.log(a)) - _HALF_LOG_2PI


@jax.jit
def _standard_entropy(df):
    """Entropy of ``StudentT(df, 0, 1)`` in nats.

    ``(df+1)/2 [digamma((df+1)/2) - digamma(df/2)] + log(sqrt(df) B(df/2, ½))``;
    for large ``df`` (where the digamma difference cancels) the series
    ``½ log(2 pi e) + e + e²/4 - e³/6 - e⁴/8 + 3e⁵/10 + e⁶/4``, ``e = 1/df``.
    """
    threshold = 100.0 if _is64(df.dtype) else 10.0
    large = df > threshold
    d_small = jnp.where(large, 1.0, df)
    h = 0.5 * (d_small + 1)
    # log(sqrt(df) B(df/2, ½)) is minus the log normalizer.
    direct = h * (digamma(h) - digamma(0.5 * d_small)) - _log_normalizer(d_small)
    e = 1 / jnp.where(large, df, threshold)
    series = e * (1 + e * (0.25 + e * (-1 / 6 + e * (-0.125 + e * (0.3 + 0.25 * e)))))
    return jnp.where(large, 0.5 + _HALF_LOG_2PI + series, direct)


class StudentT(Distribution):
    """Student's t distribution with ``df`` degrees of freedom, location and scale.

    ``p(x) = Gamma((df+1)/2) / (Gamma(df/2) sqrt(df pi) scale) (1 + z²/df)^(-(df+1)/2)``,
    ``z = (x - loc) / scale``. Mean ``loc`` (NaN for ``df <= 1``), variance
    ``scale² df / (df - 2)`` (``+inf`` for ``1 < df <= 2``, NaN for ``df <= 1``),
    as in SciPy. ``df = 1`` is the Cauchy distribution.

    Args:
      df: degrees of freedom, > 0.
      loc: location, any real array (default 0).
      scale: > 0 (default 1).

    Sampling is reparameterized: ``x = loc + scale * t`` with ``jax.random.t``,
    which draws ``t`` from a normal and a gamma variate and so carries
    implicit-reparameterization gradients with respect to ``df`` too.
    """

    df: jax.Array = param(constraints.positive)
    loc: jax.Array = param(constraints.real, default=0.0)
    scale: jax.Array = param(constraints.positive, default=1.0)

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        t = jax.random.t(key, self.df, shape, self.df.dtype)
        return self.loc + self.scale * t

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return (
            _log_normalizer(self.df)
            - jnp.log(self.scale)
            - 0.5 * (self.df + 1) * jnp.log1p(z * z / self.df)
        )

    def cdf(self, x):
        """``P(X <= x)`` through the regularized incomplete beta function."""
        z = (x - self.loc) / self.scale
        tail = 0.5 * jax.scipy.special.betainc(0.5 * self.df, 0.5, self.df / (self.df + z * z))
        return jnp.where(z < 0, tail, 1 - tail)

    def entropy(self):
        return _standard_entropy(self.df) + jnp.log(self.scale)

    @property
    def mean(self):
        return jnp.where(self.df > 1, self.loc, jnp.nan)

    @property
    def variance(self):
        df = self.df
        finite = df > 2
        v = jnp.square(self.scale) * df / jnp.where(finite, df - 2, 1.0)
        return jnp.where(finite, v, jnp.where(df > 1, jnp.inf, jnp.nan))

    @property
    def mode(self):
        return self.loc
