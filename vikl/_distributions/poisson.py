"""The Poisson family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._probs import (
    as_value,
    bregman_term,
    is_integer,
    lattice_entropy,
    lattice_window,
)

__all__ = ["Poisson"]


@jax.jit
def _poisson_entropy(rate):
    """Poisson entropy in nats: window sum for moderate rates, asymptotic series beyond.

    ``H(λ) = ½ log(2πeλ) - 1/(12λ) - 1/(24λ²) - 19/(360λ³) - 9/(80λ⁴) + O(λ⁻⁵)``
    (the series is used only where its truncation error is far below round-off).
    Jitted, so that an eager call compiles one program rather than op by op.
    """
    size, v_max = lattice_window(rate.dtype)
    large = rate > v_max
    small_rate = jnp.where(large, 1.0, rate)
    mode = jnp.floor(small_rate)
    log_rate = jnp.log(small_rate)
    exact = lattice_entropy(
        mode,
        lambda k: log_rate[..., None] - jnp.log1p(k),
        jnp.zeros_like(mode),
        jnp.full_like(mode, jnp.inf),
        size,
    )
    lam = jnp.where(large, rate, v_max)
    u = 1.0 / lam
    series = 0.5 * jnp.log(2 * jnp.pi * jnp.e * lam) - u * (
        1.0 / 12 + u * (1.0 / 24 + u * (19.0 / 360 + u * (9.0 / 80)))
    )
    return jnp.where(large, series, exact)


class Poisson(Distribution):
    """Poisson distribution on ``{0, 1, 2, ...}``: ``P(X = k) = rate^k exp(-rate) / k!``.

    Args:
      rate: mean number of events, > 0.

    Samples are counts in the parameter's floating dtype (exact integers),
    shape ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` at negative or
    non-integer values.

    The entropy has no closed form: :meth:`entropy` sums ``-p log p`` over a
    fixed window of 256 (float32) / 2048 (float64) points around the mode —
    exact to round-off — for ``rate <= 300`` / ``10_000``, and uses the
    asymptotic series ``½ log(2πe rate) - 1/(12 rate) - ...`` above that.

    Example:
      >>> import vikl
      >>> round(float(vikl.Poisson(3.0).mean), 6)
      3.0
    """

    rate: jax.Array = param(constraints.positive)

    reparameterized = False
    support = constraints.nonnegative_integer

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        rate = jax.lax.stop_gradient(self.rate)
        return jax.random.poisson(key, rate, shape).astype(rate.dtype)

    def log_prob(self, x):
        x = as_value(x, self.rate.dtype)
        valid = (x >= 0) & is_integer(x)
        xs = jnp.where(valid, x, 0.0)  # inf, NaN, negative, fractional: -inf
        out = xs * jnp.log(self.rate) - self.rate - gammaln(xs + 1)
        return jnp.where(valid, out, -jnp.inf)

    def entropy(self):
        """Shannon entropy in nats (window sum or asymptotic series; see the class doc)."""
        return _poisson_entropy(self.rate)

    @property
    def mean(self):
        return self.rate

    @property
    def variance(self):
        return self.rate

    @property
    def mode(self):
        """``floor(rate)`` (also ``rate - 1`` when ``rate`` is an integer)."""
        return jnp.floor(self.rate)


@register_kl(Poisson, Poisson)
@jax.jit
def _kl_poisson_poisson(p, q):
    """KL(Poi(a)‖Poi(b)) = a log(a/b) - a + b = a g(b/a), ``g(t) = t - 1 - log t``, in nats.

    With ``x = (b - a) / a`` (an exact difference for ``a ≈ b``) the kernel
    ``a (x - log1p(x))`` has no cancellation, so the value keeps float relative
    accuracy however close the rates are and is never negative; far apart,
    ``(b - a) - a (log b - log a)`` (no overflow of ``b / a``).
    """
    a, b = jnp.broadcast_arrays(p.rate, q.rate)
    return bregman_term(a, b, jnp.log(a), jnp.log(b), (b - a) / a)
