"""The Beta family and its closed-form KL (kernels shared with Dirichlet: ``vikl._kernels``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kernels import beta_kl, beta_neg_entropy
from vikl._kl import register_kl
from vikl._math import xlogy
from vikl._special import lgamma_bregman

__all__ = ["Beta"]


@jax.jit
def _betaln(a, b):
    """``log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b)`` to a few ulps in float32 and float64.

    With ``s = min(a, b)``, ``L = max(a, b)``:
    ``log B = lgamma(s) - s digamma(L) - D(L + s, L)`` (``D``: log-gamma Bregman
    divergence), which avoids the cancellation of ``lgamma(L + s) - lgamma(L)``
    (``jax.scipy.special.betaln`` is off by ~1e-8 relative in float64).
    """
    small, large = jnp.minimum(a, b), jnp.maximum(a, b)
    return gammaln(small) - small * digamma(large) - lgamma_bregman(large + small, large, small)


class Beta(Distribution):
    """Beta distribution on ``[0, 1]`` (torch/NumPyro parameter names).

    ``p(x) = x^(a-1) (1-x)^(b-1) / B(a, b)`` with ``a = concentration1``,
    ``b = concentration0``. Mean ``a / (a+b)``, variance
    ``ab / ((a+b)² (a+b+1))``, entropy
    ``log B(a,b) - (a-1) digamma(a) - (b-1) digamma(b) + (a+b-2) digamma(a+b)`` nats.
    ``log_prob`` is ``-inf`` outside ``[0, 1]``.

    Args:
      concentration1: ``a`` (pseudo-count of ones), > 0.
      concentration0: ``b`` (pseudo-count of zeros), > 0.

    Sampling is reparameterized: ``jax.random.beta`` draws through gamma
    variates, whose implicit-reparameterization gradients flow to both
    concentrations.
    """

    concentration1: jax.Array = param(constraints.positive)
    concentration0: jax.Array = param(constraints.positive)

    support = constraints.unit_interval

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return jax.random.beta(key, self.concentration1, self.concentration0, shape, self.dtype)

    def log_prob(self, x):
        a, b = self.concentration1, self.concentration0
        outside = (x < 0) | (x > 1)
        x_safe = jnp.where(outside, 0.5, x)
        lp = xlogy(a - 1, x_safe) + xlogy(b - 1, 1 - x_safe) - _betaln(a, b)
        return jnp.where(outside, -jnp.inf, lp)

    def cdf(self, x):
        """``P(X <= x)``, the regularized incomplete beta function."""
        x = jnp.clip(x, 0.0, 1.0)
        return jax.scipy.special.betainc(self.concentration1, self.concentration0, x)

    def entropy(self):
        return -beta_neg_entropy(self.concentration1, self.concentration0)

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        s = a + b
        return a * b / (s * s * (s + 1))


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    """KL(Beta(a1, b1) ‖ Beta(a2, b2)) in nats.

    ``= log B(a2,b2) - log B(a1,b1) + (a1-a2) digamma(a1) + (b1-b2) digamma(b1)
    + (a2-a1+b2-b1) digamma(a1+b1)``, evaluated without cancellation both for nearly
    equal Betas and when one concentration dwarfs the other (see ``_kernels.beta_kl_and_size``).
    """
    dtype = jnp.result_type(p.concentration1, q.concentration1)
    a1, b1, a2, b2 = (
        jnp.asarray(v, dtype) for v in (p.concentration1, p.concentration0, q.concentration1, q.concentration0)
    )
    return beta_kl(a1, b1, a2, b2)
