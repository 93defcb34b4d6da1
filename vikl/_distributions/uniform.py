"""The continuous Uniform family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl

__all__ = ["Uniform"]


class Uniform(Distribution):
    """Uniform distribution on the interval ``[low, high]``.

    ``p(x) = 1 / (high - low)`` on ``[low, high]``; ``log_prob`` is ``-inf``
    outside. Mean ``(low + high)/2``, variance ``(high - low)²/12``, entropy
    ``log(high - low)`` nats.

    The support depends on the parameters: ``support`` is the per-instance
    ``constraints.interval(low, high)`` (so :func:`vikl.fit` fits a Uniform
    target through ``vikl.bijectors.Interval(low, high)``); samples lie in
    ``[low, high)``.

    Args:
      low: lower bound, finite.
      high: upper bound, finite, ``> low`` elementwise.

    Raises:
      ValueError: ``low >= high`` somewhere, or an infinite bound.

    Sampling is reparameterized: ``x = low + (high - low) u``, ``u ~ U[0, 1)``.
    """

    low: jax.Array = param(constraints.real)
    high: jax.Array = param(constraints.real)

    @property
    def support(self):
        """``constraints.interval(low, high)``: depends on this instance's bounds."""
        return constraints.interval(self.low, self.high)

    def _check_args(self):
        low, high = np.asarray(self.low), np.asarray(self.high)
        for name, v in (("low", low), ("high", high)):
            if not np.isfinite(v).all():
                raise ValueError(
                    f"Uniform: {name} must be finite; got {int((~np.isfinite(v)).sum())} infinite "
                    f"value(s) (shape {v.shape}). A Uniform on an unbounded interval has no density."
                )
        bad = ~(low < high)
        if bad.any():
            i = np.argwhere(bad)[0]
            idx = tuple(int(k) for k in i)
            raise ValueError(
                f"Uniform: low must be < high elementwise; got low >= high at {int(bad.sum())} of "
                f"{bad.size} position(s), first at index {idx}: low={low[idx]!r}, high={high[idx]!r}. "
                "Swap or widen the bounds."
            )

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        u = jax.random.uniform(key, shape, self.dtype)
        return self.low + (self.high - self.low) * u

    def log_prob(self, x):
        inside = (x >= self.low) & (x <= self.high)
        return jnp.where(inside, -jnp.log(self.high - self.low), -jnp.inf)

    def cdf(self, x):
        """``P(X <= x)``, clipped to ``[0, 1]``."""
        return jnp.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)

    def icdf(self, u):
        """Quantile function ``low + u (high - low)``."""
        return self.low + u * (self.high - self.low)

    def entropy(self):
        return jnp.log(self.high - self.low)

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    @property
    def variance(self):
        return jnp.square(self.high - self.low) / 12


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    """KL(U[l1, h1] ‖ U[l2, h2]) in nats.

    ``= log((h2 - l2) / (h1 - l1))`` when ``[l1, h1]`` lies inside ``[l2, h2]``,
    ``+inf`` otherwise. Evaluated as ``log1p(((h2 - h1) - (l2 - l1)) / (h1 - l1))``.
    """
    inside = (q.low <= p.low) & (p.high <= q.high)
    extra = jnp.where(inside, (q.high - p.high) - (q.low - p.low), 0.0)
    width = p.high - p.low
    # Differences of bounds near the largest float overflow; halving every bound first
    # gives the same quotient (scaling by 2 is exact) without overflow. Only used there,
    # since halving bounds near the smallest float would lose them.
    over = ~((extra < jnp.inf) & (width < jnp.inf))
    half_extra = (0.5 * q.high - 0.5 * p.high) - (0.5 * q.low - 0.5 * p.low)
    ratio = jnp.where(over, half_extra / (0.5 * p.high - 0.5 * p.low), extra / width)
    # A ratio past the largest float (a tiny p inside a huge q): log(w2) - log(w1) from
    # the halved widths, which cannot overflow and are far from underflow there.
    huge = ~(ratio < jnp.inf)
    w2_half = jnp.where(huge, 0.5 * q.high - 0.5 * q.low, 1.0)
    w1_half = jnp.where(huge, 0.5 * p.high - 0.5 * p.low, 1.0)
    value = jnp.where(huge, jnp.log(w2_half) - jnp.log(w1_half), jnp.log1p(jnp.where(huge, 0.0, ratio)))
    return jnp.where(inside, value, jnp.inf)
