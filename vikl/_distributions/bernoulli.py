"""The Bernoulli family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._probs import (
    as_value,
    bernoulli_kl,
    logits_of,
    probs_of,
    public_repr,
    setup_one_of,
    success_failure,
    weighted_log_ratio,
)

__all__ = ["Bernoulli"]


class Bernoulli(Distribution):
    """Bernoulli distribution on ``{0, 1}``: ``P(X = 1) = probs = sigmoid(logits)``.

    Args:
      probs: success probability in ``[0, 1]``.
      logits: log-odds ``log(p / (1 - p))``, any real (``+-inf`` allowed).

    Pass exactly one of ``probs`` / ``logits``; ``d.probs`` and ``d.logits``
    both work afterwards. Quantities of a logits-parameterized Bernoulli are
    computed with ``softplus``/``log_sigmoid`` forms, never as ``log(1 - p)``.

    Samples are 0.0 / 1.0 in the parameter's floating dtype, shape
    ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` off ``{0, 1}``.

    Example:
      >>> import vikl
      >>> round(float(vikl.entropy(vikl.Bernoulli(probs=0.5), base=2)), 6)  # a fair coin: 1 bit
      1.0
    """

    _probs: jax.Array = param(constraints.unit_interval)
    _logits: jax.Array = param(constraints.logit)

    reparameterized = False
    __repr__ = public_repr
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None):
        setup_one_of(self, "probs", "logits", {"probs": probs, "logits": logits})

    @property
    def probs(self) -> jax.Array:
        """``P(X = 1)``, shape ``batch_shape``."""
        return probs_of(self)

    @property
    def logits(self) -> jax.Array:
        """Log-odds ``log p - log(1 - p)`` (``+-inf`` at ``p = 1`` / ``p = 0``)."""
        return logits_of(self)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        p = jax.lax.stop_gradient(self.probs)
        return jax.random.bernoulli(key, p, shape).astype(p.dtype)

    def log_prob(self, x):
        _, _, log_p1, log_p0 = success_failure(self)
        x = as_value(x, log_p1.dtype)
        out = jnp.where(x == 1, log_p1, log_p0)
        return jnp.where((x == 0) | (x == 1), out, -jnp.inf)

    def entropy(self):
        """``H = -p log p - (1 - p) log(1 - p)`` in nats (0 at ``p`` in {0, 1})."""
        p1, p0, log_p1, log_p0 = success_failure(self)
        zero = jnp.zeros((), p1.dtype)
        return 0.0 - (weighted_log_ratio(p1, log_p1, zero) + weighted_log_ratio(p0, log_p0, zero))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p1, p0, _, _ = success_failure(self)
        return p1 * p0

    @property
    def mode(self):
        """``1.0`` where ``p > 1/2``, else ``0.0``."""
        p = self.probs
        return (p > 0.5).astype(p.dtype)


@register_kl(Bernoulli, Bernoulli)
@jax.jit
def _kl_bernoulli_bernoulli(p, q):
    """KL(p‖q) = a log(a/b) + (1-a) log((1-a)/(1-b)) = a g(b/a) + (1-a) g((1-b)/(1-a)), in nats.

    ``g(t) = t - 1 - log t >= 0`` (``vikl._probs.bernoulli_kl``): both terms are
    non-negative and computed from ``b - a`` (probs) or ``expm1`` of the logit
    difference (logits), so nearly equal parameters keep float relative
    accuracy and the value is never negative. ``+inf`` where ``q`` puts no mass
    on an outcome ``p`` can take. Mixed probs/logits pairs convert one side and
    are accurate to about ``eps / |b/a - 1|``.
    """
    return bernoulli_kl(p, q)
