"""The Laplace (double-exponential) family and its closed-form KL."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import log_of_ratio, x_minus_log1p

__all__ = ["Laplace"]

_LOG2 = math.log(2.0)


def _exp_minus_one_plus(t):
    """``exp(-t) - 1 + t`` (>= 0) without cancellation for small ``t``.

    With ``u = expm1(-t)`` one has ``log1p(u) = -t``, so the value is ``u - log1p(u)``.
    """
    return x_minus_log1p(jnp.expm1(-t), -t)


class Laplace(Distribution):
    """Laplace distribution with scalar events.

    ``p(x) = exp(-|x - loc| / scale) / (2 scale)``. Mean ``loc``, variance
    ``2 scale²``, entropy ``1 + log(2 scale)`` nats.

    Args:
      loc: location (mean and median), any real array.
      scale: > 0.

    Sampling is reparameterized: ``x = loc + scale * e``, ``e ~ Laplace(0, 1)``.
    """

    loc: jax.Array = param(constraints.real)
    scale: jax.Array = param(constraints.positive)

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * jax.random.laplace(key, shape, self.loc.dtype)

    def log_prob(self, x):
        return -jnp.abs(x - self.loc) / self.scale - jnp.log(self.scale) - _LOG2

    def cdf(self, x):
        """``P(X <= x)``."""
        z = (x - self.loc) / self.scale
        half_tail = 0.5 * jnp.exp(-jnp.abs(z))
        return jnp.where(z < 0, half_tail, 1 - half_tail)

    def icdf(self, u):
        """Quantile function, the inverse of :meth:`cdf`."""
        v = u - 0.5
        return self.loc - self.scale * jnp.sign(v) * jnp.log1p(-2 * jnp.abs(v))

    def entropy(self):
        return 1.0 + _LOG2 + jnp.log(self.scale)

    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return 2 * jnp.square(self.scale)

    @property
    def mode(self):
        return self.loc


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    """KL(Laplace(m1, b1) ‖ Laplace(m2, b2)) in nats.

    ``= log(b2/b1) + d/b2 + (b1/b2) exp(-d/b1) - 1`` with ``d = |m1 - m2|``,
    evaluated as ``[r - 1 - log r] + r [exp(-t) - 1 + t]`` with ``r = b1/b2`` and
    ``t = d/b1``: two non-negative terms, each free of cancellation.
    """
    r = p.scale / q.scale
    scale_term = x_minus_log1p((p.scale - q.scale) / q.scale, log_of_ratio(p.scale, q.scale))
    dist = jnp.abs(p.loc - q.loc)
    t = dist / p.scale
    # The product r (e^-t - 1 + t) is safe while r is a normal float and t finite. Else
    # (r underflowed with b1 << b2, or d / b1 overflowed) it is written as
    # d / b2 - r (1 - e^-t), whose pieces stay finite whenever the KL is; it is only
    # needed where one of them dominates, so the cancellation for small t is harmless.
    safe = (r >= jnp.finfo(r.dtype).tiny) & (t < jnp.inf)
    t_safe = jnp.where(safe, t, 1.0)
    product = r * _exp_minus_one_plus(t_safe)
    split = dist / q.scale + r * jnp.expm1(-jnp.where(safe, 1.0, t))
    # t = 0 makes the second term exactly 0, also when r overflows to inf.
    location_term = jnp.where(t > 0, jnp.where(safe, product, split), 0.0)
    # b1 / b2 overflowing means the KL (>= r - 1 - log r) does too; +inf, not inf - inf.
    return jnp.where(r == jnp.inf, jnp.inf, scale_term + location_term)
