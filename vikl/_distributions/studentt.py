"""The Student-t family (location-scale)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kernels import studentt_log_normalizer, studentt_standard_entropy

__all__ = ["StudentT"]

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
            studentt_log_normalizer(self.df)
            - jnp.log(self.scale)
            - 0.5 * (self.df + 1) * jnp.log1p(z * z / self.df)
        )

    def cdf(self, x):
        """``P(X <= x)`` through the regularized incomplete beta function."""
        z = (x - self.loc) / self.scale
        tail = 0.5 * jax.scipy.special.betainc(0.5 * self.df, 0.5, self.df / (self.df + z * z))
        return jnp.where(z < 0, tail, 1 - tail)

    def entropy(self):
        return studentt_standard_entropy(self.df) + jnp.log(self.scale)

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
