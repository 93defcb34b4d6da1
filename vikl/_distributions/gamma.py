"""The Gamma family and its closed-form KL.

The log-gamma numerics it needs (``_lgamma_bregman``, the large-argument forms) live in
``vikl._special``; the names other modules imported from here are re-exported.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import x_minus_log1p, xlogy
from vikl._special import (  # noqa: F401  (re-exported: beta, gumbel, studentt, cross KLs import them here)
    _cross_ratio_minus_one,
    _digamma_difference,
    _digamma_minus_log,
    _is64,
    _lgamma_bregman,
    _lgamma_bregmans,
    _lgamma_remainder_bregman,
    _log_ratio,
    _stirling_remainder,
    _trigamma,
)

__all__ = ["Gamma"]


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@jax.jit
def _gamma_entropy_shape(a):
    """``a + lgamma(a) + (1 - a) digamma(a)``: the entropy of ``Gamma(a, 1)``.

    The three terms are each of size ``a log a`` and cancel to about ``½ log(2 pi e a)``;
    with Stirling's remainder ``mu`` and ``psi~(a) = digamma(a) - log a`` (both from
    convergent series, ``vikl._special``) the same value is
    ``½ log(2 pi) + ½ log a + mu(a) + (1 - a) psi~(a)``, whose terms are of size
    ``log a`` (and ``1/a`` for small ``a``, where the entropy is that large).
    """
    a = jnp.asarray(a)
    return _HALF_LOG_2PI + 0.5 * jnp.log(a) + _stirling_remainder(a) + (1 - a) * _digamma_minus_log(a)


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
        return _gamma_entropy_shape(self.concentration) - jnp.log(self.rate)

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
    from whichever of two exact forms sums the smaller terms (see ``_gamma_kl``).
    """
    dtype = jnp.result_type(p.concentration, q.concentration)
    args = (jnp.asarray(v, dtype) for v in (p.concentration, p.rate, q.concentration, q.rate))
    return _gamma_kl(*args)


def _mean_ratio(a1, b1, a2, b2, log_r):
    """``(t - 1, log t)`` for ``t = (a1 / b1) / (a2 / b2)``, the ratio of two Gamma means.

    Near ``t = 1`` (means agreeing to many digits, however large the concentrations)
    ``t - 1`` is formed from exact products (``_special._cross_ratio_minus_one``); elsewhere
    from the rounded quotient, which is then accurate to a few ulps relative.
    """
    t = (a1 / a2) * (b2 / b1)
    near = jnp.abs(t - 1) < 0.5
    t_minus_1 = jnp.where(near, _cross_ratio_minus_one(a1, a2, b1, b2), t - 1)
    finite = (t > jnp.finfo(t.dtype).tiny) & (t < jnp.finfo(t.dtype).max)
    log_t = jnp.where(finite, jnp.log(jnp.where(finite, t, 1.0)), _log_ratio(a1, a2, a1 - a2) + log_r)
    return t_minus_1, log_t


@jax.jit
def _gamma_kl(a1, b1, a2, b2):
    """KL(Gamma(a1, b1) ‖ Gamma(a2, b2)) for arrays of one dtype.

    With ``r = b2 / b1``, ``D`` the log-gamma Bregman divergence and ``phi(u) = u - 1 - log u``:

    * ``D(a2, a1) + a1 phi(r) + (a1 - a2) log r``: right for nearly equal Gammas, but
      at large concentrations its terms are of size ``a log a`` (1e7 for Gamma(1e6, 1e3)
      ‖ Gamma(1, 1e-3), whose KL is 6.49);
    * ``a2 phi(t) + R(a2, a1)``, ``t = (a1 / b1) / (a2 / b2)`` the ratio of the means and
      ``R`` the Bregman divergence of ``lgamma(a) - a log a + a``
      (``_special._lgamma_remainder_bregman``), of size ``log(a2 / a1)``: right whenever
      a concentration is large.

    The rounding error of each is a few ulps of the sum of its terms' magnitudes; the
    smaller sum picks the form.
    """
    r_minus_1 = (b2 - b1) / b1
    log_r = _log_ratio(b2, b1, b2 - b1)
    scale_term = x_minus_log1p(r_minus_1, log_r)
    d = _lgamma_bregman(a2, a1, a2 - a1)
    shape_term = (a1 - a2) * log_r
    bregman = d + a1 * scale_term + shape_term
    bregman_size = d + a1 * scale_term + jnp.abs(shape_term)
    t_minus_1, log_t = _mean_ratio(a1, b1, a2, b2, log_r)
    mean_term = a2 * x_minus_log1p(t_minus_1, log_t)
    rem, rem_size = _lgamma_remainder_bregman(a2, a1, a2 - a1)
    use = mean_term + rem_size < bregman_size
    return jnp.where(use, mean_term + rem, bregman)
